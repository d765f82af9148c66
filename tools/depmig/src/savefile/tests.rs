//! The save file on disk and dom0's TCP ends, over loopback: a saved
//! stream sent by the restore end arrives through the save end as the same
//! bytes; a sender that dies leaves no file; damaged files are refused.

use super::*;
use depmig_stream::savefile::Format;

const VALID: &[u8] = include_bytes!("../../../../crates/stream/fixtures/valid_full.bin");
const MALFORMED: &[u8] =
    include_bytes!("../../../../crates/stream/fixtures/page_length_mismatch.bin");
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const CONFIG: &[u8] = b"name = \"guest\"\ntype = \"pvh\"\nmemory = 128\n";

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("depmig-savefile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn files_in(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A saver on a loopback port, started.
fn saver(path: &Path, format: Format) -> TcpSaver {
    let mut s = TcpSaver::new("127.0.0.1:0".parse().unwrap(), path, format, CONFIG).unwrap();
    s.accept_wait = Duration::from_secs(20);
    s.start(KEY_HEX).unwrap();
    s
}

fn wait_state(s: &mut TcpSaver, want: &[&str]) -> String {
    let t0 = Instant::now();
    loop {
        if let Some(st) = s.state().filter(|st| want.contains(&st.as_str())) {
            return st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "state {:?}",
            s.state()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_save_file_appears_only_when_committed() {
    let d = tmpdir("commit");
    let path = d.join("g.save");
    let mut f = SaveFile::create(&path, Format::Libxc, b"").unwrap();
    f.write(VALID).unwrap();
    assert_eq!(files_in(&d), ["g.save.depmig-partial"]);
    f.commit().unwrap();
    assert_eq!(files_in(&d), ["g.save"]);
    drop(f);
    assert_eq!(std::fs::read(&path).unwrap(), VALID);
    // An existing FILE is never overwritten.
    assert!(SaveFile::create(&path, Format::Libxc, b"").is_err());
    let other = d.join("h.save");
    let mut g = SaveFile::create(&other, Format::Xl, CONFIG).unwrap();
    g.write(VALID).unwrap();
    drop(g);
    assert_eq!(files_in(&d), ["g.save"], "uncommitted: removed");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_restored_stream_arrives_through_the_save_end_unchanged_in_both_formats() {
    for format in [Format::Xl, Format::Libxc] {
        let d = tmpdir(&format!("{format:?}"));
        let input = d.join("in.save");
        std::fs::write(&input, VALID).unwrap();
        let checked = check_file(&input).unwrap();
        assert_eq!(checked.format, Format::Libxc);
        assert_eq!(checked.stats.stream_bytes, VALID.len() as u64);

        let out = d.join("out.save");
        let mut s = saver(&out, format);
        let addr = s.local_addr().unwrap();
        send_file(&input, &checked, addr, KEY_HEX, Duration::from_secs(5)).unwrap();
        assert_eq!(wait_state(&mut s, &["applied", "failed"]), "applied");
        assert!(s.summary().contains("stream bytes"), "{}", s.summary());
        drop(s);

        let saved = std::fs::read(&out).unwrap();
        let back = check_file(&out).unwrap();
        assert_eq!(back.format, format);
        assert_eq!(back.stats, checked.stats);
        match format {
            Format::Libxc => assert_eq!(saved, VALID),
            Format::Xl => {
                assert_eq!(back.config, Some((CONFIG.to_vec(), false)));
                let at = back.offset as usize;
                assert_eq!(&saved[at..at + VALID.len()], VALID);
                assert_eq!(&saved[at + VALID.len()..], savefile::LIBXL_END_RECORD);
                // Sent again from the xl file: the same stream.
                let again = d.join("again.save");
                let mut s2 = saver(&again, Format::Libxc);
                let a2 = s2.local_addr().unwrap();
                send_file(&out, &back, a2, KEY_HEX, Duration::from_secs(5)).unwrap();
                assert_eq!(wait_state(&mut s2, &["applied", "failed"]), "applied");
                drop(s2);
                assert_eq!(std::fs::read(&again).unwrap(), VALID);
            }
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn a_sender_dying_mid_save_leaves_no_file() {
    let d = tmpdir("dies");
    let out = d.join("out.save");
    let mut s = saver(&out, Format::Xl);
    let addr = s.local_addr().unwrap();
    // A source that sends its hello and half the stream, then goes.
    let mut c = TcpStream::connect(addr).unwrap();
    let hello = depmig_stream::Hello {
        role: depmig_stream::Role::Source,
        nonce: [9; 16],
        verify: false,
        caps: depmig_stream::Caps::NONE,
    };
    c.write_all(&hello.to_bytes()).unwrap();
    let mut answer = [0u8; 64];
    c.read_exact(&mut answer).unwrap();
    c.write_all(&VALID[..VALID.len() / 2]).unwrap();
    wait_state(&mut s, &["receiving"]);
    drop(c);
    assert_eq!(wait_state(&mut s, &["applied", "failed"]), "failed");
    assert!(s.failure().unwrap().contains("closed"), "{:?}", s.failure());
    assert!(s.abandon().is_empty());
    assert!(files_in(&d).is_empty(), "{:?}", files_in(&d));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn abandoning_before_the_source_connects_removes_the_partial_file() {
    let d = tmpdir("abandon");
    let out = d.join("out.save");
    let mut s = saver(&out, Format::Xl);
    assert_eq!(files_in(&d), ["out.save.depmig-partial"]);
    assert_eq!(s.state(), None);
    assert!(s.abandon().is_empty());
    assert_eq!(s.state().as_deref(), Some("failed"));
    assert!(files_in(&d).is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn damaged_files_are_refused_by_the_check() {
    let d = tmpdir("damaged");
    let p = d.join("f");
    let check = |bytes: &[u8]| {
        std::fs::write(&p, bytes).unwrap();
        check_file(&p)
    };
    assert!(matches!(check(b""), Err(FileError::Format(_))));
    assert!(matches!(
        check(b"not a save file at all, no"),
        Err(FileError::Format(_))
    ));
    assert!(matches!(
        check(&VALID[..VALID.len() - 4]),
        Err(FileError::Stream(SavedError::Truncated))
    ));
    assert!(matches!(
        check(MALFORMED),
        Err(FileError::Stream(SavedError::Decode(_)))
    ));
    let mut longer = VALID.to_vec();
    longer.push(0);
    assert!(matches!(
        check(&longer),
        Err(FileError::Format(SaveFileError::BadTail))
    ));
    // xl: the header, a stream cut short, no libxl END.
    let mut xl = savefile::xl_prefix(CONFIG);
    xl.extend_from_slice(VALID);
    assert!(matches!(
        check(&xl),
        Err(FileError::Format(SaveFileError::BadTail))
    ));
    xl.extend_from_slice(&savefile::LIBXL_END_RECORD);
    assert!(check(&xl).is_ok());
    let cut = xl.len() - 100;
    assert!(matches!(check(&xl[..cut]), Err(FileError::Stream(_))));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn dom0s_address_is_read_from_ip_addr() {
    let out = "5: xenbr0    inet 10.77.0.1/24 brd 10.77.0.255 scope global xenbr0\n";
    assert_eq!(first_ipv4(out), Some(std::net::Ipv4Addr::new(10, 77, 0, 1)));
    assert_eq!(first_ipv4(""), None);
    assert_eq!(first_ipv4("inet"), None);
}

/// The real roles over loopback TCP with dom0's ends between them: a
/// source appliance's role saves an in-memory guest through [`TcpSaver`]
/// into an xl file, and a destination appliance's role restores it from
/// [`send_file`] into an in-memory shell.
mod roles {
    use super::*;
    use depmig_migrate::params::SAVED;
    use depmig_migrate::{
        dest, source, AnyPolicy, Clock, DestConfig, DestDomain, DirtyBitmap, Mode, NoOracle,
        NoProgress, PolicyKind, PortError, SourceConfig, SourceDomain, TscInfo,
    };
    use std::collections::BTreeMap;

    const NR: u64 = 512;
    const PAGE: usize = 4096;
    const STORE: u64 = NR - 2;
    const CONSOLE: u64 = NR - 1;

    /// A guest (source) or a shell (destination) in memory.
    struct Mem {
        mem: Vec<u8>,
        params: BTreeMap<u32, u64>,
        suspended: bool,
        tsc: Option<TscInfo>,
        context: Option<Vec<u8>>,
    }

    impl Mem {
        fn new(fill: impl Fn(usize) -> u8) -> Mem {
            let mut params: BTreeMap<u32, u64> = SAVED.iter().map(|&p| (p, 0)).collect();
            params.insert(1, STORE);
            params.insert(17, CONSOLE);
            Mem {
                mem: (0..NR as usize * PAGE).map(fill).collect(),
                params,
                suspended: false,
                tsc: None,
                context: None,
            }
        }
        fn page(&self, p: u64) -> &[u8] {
            &self.mem[p as usize * PAGE..][..PAGE]
        }
        fn read(&self, pfns: &[u64], buf: &mut [u8]) {
            for (i, &p) in pfns.iter().enumerate() {
                buf[i * PAGE..][..PAGE].copy_from_slice(self.page(p));
            }
        }
    }

    struct Now(Instant);
    impl Clock for Now {
        fn now_ns(&self) -> u64 {
            self.0.elapsed().as_nanos() as u64
        }
    }

    impl SourceDomain for Mem {
        fn nr_pfns(&self) -> u64 {
            NR
        }
        fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
            for p in 0..NR {
                out.set(p);
            }
            Ok(())
        }
        fn read_pages(&mut self, p: &[u64], b: &mut [u8], _: &mut [bool]) -> Result<(), PortError> {
            self.read(p, b);
            Ok(())
        }
        fn log_dirty_enable(&mut self) -> Result<(), PortError> {
            Ok(())
        }
        fn log_dirty_collect(&mut self, _: &mut DirtyBitmap) -> Result<(), PortError> {
            Ok(())
        }
        fn log_dirty_disable(&mut self) -> Result<(), PortError> {
            Ok(())
        }
        fn suspend(&mut self) -> Result<(), PortError> {
            self.suspended = true;
            Ok(())
        }
        fn resume_cancelled(&mut self) -> Result<bool, PortError> {
            let was = self.suspended;
            self.suspended = false;
            Ok(was)
        }
        fn tsc_info(&mut self) -> Result<TscInfo, PortError> {
            Ok(TscInfo {
                mode: 0,
                khz: 2_000_000,
                nsec: 42,
                incarnation: 1,
            })
        }
        fn hvm_param(&mut self, index: u32) -> Result<u64, PortError> {
            Ok(self.params.get(&index).copied().unwrap_or(0))
        }
        fn hvm_context(&mut self, out: &mut Vec<u8>) -> Result<(), PortError> {
            out.clear();
            out.extend((0..800u32).map(|i| (i * 3) as u8));
            Ok(())
        }
    }

    impl DestDomain for Mem {
        fn nr_pfns(&self) -> u64 {
            NR
        }
        fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
            for p in 0..NR {
                out.set(p);
            }
            Ok(())
        }
        fn populate(&mut self, _: &[u64]) -> Result<(), PortError> {
            Ok(())
        }
        fn write_pages(&mut self, pfns: &[u64], data: &[u8]) -> Result<(), PortError> {
            for (i, &p) in pfns.iter().enumerate() {
                self.mem[p as usize * PAGE..][..PAGE].copy_from_slice(&data[i * PAGE..][..PAGE]);
            }
            Ok(())
        }
        fn zero_frames(&mut self, pfns: &[u64]) -> Result<(), PortError> {
            for &p in pfns {
                self.mem[p as usize * PAGE..][..PAGE].fill(0);
            }
            Ok(())
        }
        fn read_pages(&mut self, p: &[u64], b: &mut [u8], _: &mut [bool]) -> Result<(), PortError> {
            self.read(p, b);
            Ok(())
        }
        fn hvm_param(&mut self, index: u32) -> Result<u64, PortError> {
            Ok(self.params.get(&index).copied().unwrap_or(0))
        }
        fn set_hvm_param(&mut self, index: u32, value: u64) -> Result<(), PortError> {
            self.params.insert(index, value);
            Ok(())
        }
        fn set_tsc_info(&mut self, tsc: &TscInfo) -> Result<(), PortError> {
            self.tsc = Some(*tsc);
            Ok(())
        }
        fn set_hvm_context(&mut self, blob: &[u8]) -> Result<(), PortError> {
            self.context = Some(blob.to_vec());
            Ok(())
        }
    }

    #[test]
    fn a_guest_saved_through_dom0_and_restored_from_the_file_is_the_same() {
        let d = tmpdir("roles");
        let file = d.join("guest.save");
        let key = key_bytes(KEY_HEX).unwrap();
        let mut s = saver(&file, Format::Xl);
        let addr = s.local_addr().unwrap();
        let mut guest = Mem::new(|i| (i / PAGE * 7 + i % 251) as u8);
        let k = key.clone();
        let saved = std::thread::scope(|sc| {
            sc.spawn(|| {
                let mut link = TcpLink(TcpStream::connect(addr).unwrap());
                let cfg = SourceConfig {
                    key: &k,
                    nonce: [5; 16],
                    mode: Mode::Baseline,
                    xen_major: 4,
                    xen_minor: 20,
                    record_pages: 64,
                    verify: false,
                    compress: depmig_migrate::Codec::Raw,
                    encrypt: false,
                    delta_cache_mib: 0,
                    adaptive: false,
                };
                source::run(
                    &mut guest,
                    &mut link,
                    &Now(Instant::now()),
                    &mut NoOracle,
                    &mut AnyPolicy::new(PolicyKind::Xen4),
                    &mut NoProgress,
                    &cfg,
                )
            })
            .join()
            .unwrap()
        });
        assert!(saved.is_ok(), "the source committed: {:?}", saved.err());
        assert_eq!(wait_state(&mut s, &["applied", "failed"]), "applied");
        drop(s);
        let checked = check_file(&file).unwrap();
        assert_eq!(checked.format, Format::Xl);
        assert!(checked.stats.pages >= NR, "{:?}", checked.stats);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let daddr = listener.local_addr().unwrap();
        let mut shell = Mem::new(|_| 0xEE);
        let (sent, applied) = std::thread::scope(|sc| {
            let dst = sc.spawn(|| {
                let (conn, _) = listener.accept().unwrap();
                dest::run(
                    &mut shell,
                    &mut TcpLink(conn),
                    &Now(Instant::now()),
                    &mut NoProgress,
                    &DestConfig::new(&key, [6; 16]),
                )
            });
            let sent = send_file(&file, &checked, daddr, KEY_HEX, Duration::from_secs(5));
            (sent, dst.join().unwrap())
        });
        assert_eq!(sent, Ok(()));
        assert!(applied.is_ok(), "{applied:?}");
        for p in 0..NR {
            if p == STORE || p == CONSOLE {
                assert!(
                    shell.page(p).iter().all(|&b| b == 0xEE),
                    "ring {p} is the shell's"
                );
            } else {
                assert_eq!(shell.page(p), guest.page(p), "pfn {p}");
            }
        }
        assert!(shell.tsc.is_some() && shell.context.is_some());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
