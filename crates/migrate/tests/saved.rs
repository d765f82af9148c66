//! Save and restore (`depmig_migrate::saved`) against the real roles: a
//! source that saves a guest which keeps writing while it is copied, a
//! saved stream read back by the strict decoder and restored into a shell
//! through the destination role, damaged files refused before anything is
//! sent, a source that dies mid-save, and (where a Xen source tree is at
//! hand) Xen's own `verify-stream-v2` on the saved file in both formats.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use depmig_migrate::saved::{self, SaveSink, SavedConfig, SavedError, SavedSource};
use depmig_migrate::*;
use depmig_stream::savefile::{self, Format};
use depmig_stream::{Decoder, Event, Limits, SinkFull};

const NR: u64 = 4096;

/// A save file in memory; `committed` once the tag matched.
#[derive(Default)]
struct FileSink {
    bytes: Vec<u8>,
    committed: bool,
}

impl SaveSink for FileSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        assert!(!self.committed, "nothing is written after the commit");
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }
    fn commit(&mut self) -> Result<(), SinkFull> {
        self.committed = true;
        Ok(())
    }
}

/// A saved stream read in small, uneven pieces.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl SavedSource for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SinkFull> {
        let n = buf.len().min(7001).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

struct Saved {
    src: Result<SourceOutcome, Box<SourceFailure>>,
    save: Result<saved::SavedStats, SavedError>,
    file: FileSink,
    guest: Arc<Mutex<Guest>>,
}

fn save(
    seed: u64,
    compress: Codec,
    verify: bool,
    src_wrap: Box<dyn FnOnce(End) -> Boxed + Send>,
) -> Saved {
    let (a, b) = duplex(256 << 10, Duration::from_secs(5));
    let mut guest = Guest::new(NR, seed);
    guest.balloon_out = Some(777);
    let guest = Arc::new(Mutex::new(guest));
    let g = G(guest.clone());
    let (src, (save, file)) = std::thread::scope(|s| {
        let src = s.spawn(move || {
            let mut t = src_wrap(a);
            let mut dom = g.clone();
            let mut oracle = Oracle {
                g,
                thaws: 0,
                census: Vec::new(),
            };
            let cfg = SourceConfig {
                key: KEY,
                nonce: [1; 16],
                mode: Mode::Baseline,
                xen_major: 4,
                xen_minor: 20,
                record_pages: 100,
                verify,
                compress,
                encrypt: false,
                delta_cache_mib: 0,
                adaptive: false,
            };
            source::run(
                &mut dom,
                &mut t,
                &TestClock(Instant::now()),
                &mut oracle,
                &mut AnyPolicy::new(PolicyKind::Xen4),
                &mut Recorder::default(),
                &cfg,
            )
        });
        let dst = s.spawn(move || {
            let mut t = b;
            let mut file = FileSink::default();
            let cfg = SavedConfig {
                max_pfn: NR - 1,
                ..SavedConfig::new(KEY, [2; 16])
            };
            (saved::receive(&mut t, &mut file, &cfg), file)
        });
        (src.join().unwrap(), dst.join().unwrap())
    });
    Saved {
        src,
        save,
        file,
        guest,
    }
}

/// Reads a libxc stream with the strict decoder, nothing negotiated, and
/// returns each pfn's last contents and what followed END.
fn decode(stream: &[u8]) -> (BTreeMap<u64, Vec<u8>>, usize) {
    let mut dec = Decoder::new(Limits {
        max_pfn: NR - 1,
        ..Limits::default()
    });
    let mut pages = BTreeMap::new();
    let mut input = stream;
    loop {
        match dec.next(&mut input).expect("the strict decoder takes it") {
            Some(Event::Page {
                entry,
                data: Some(d),
            }) => {
                pages.insert(entry.pfn, d.to_vec());
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(dec.is_done(), "ends with END");
    (pages, input.len())
}

fn assert_saved_equals_guest(s: &Saved) {
    let (pages, after) = decode(&s.file.bytes);
    assert_eq!(after, 0, "nothing after END");
    let g = s.guest.lock().unwrap();
    let snap = g.snapshot.as_ref().expect("guest was suspended");
    let mut checked = 0;
    for p in 0..NR {
        if !g.populated[p as usize] {
            continue;
        }
        let want = &snap[p as usize * PAGE..(p as usize + 1) * PAGE];
        assert_eq!(pages.get(&p).map(Vec::as_slice), Some(want), "pfn {p}");
        checked += 1;
    }
    assert!(checked > NR - 40, "{checked}");
}

#[test]
fn a_save_holds_the_guest_as_plain_stream_v2() {
    let s = save(11, Codec::Raw, false, Box::new(|e| Boxed(Box::new(e))));
    let st = s.save.as_ref().expect("saved");
    assert!(
        s.src.is_ok(),
        "the source committed: {:?}",
        s.src.as_ref().err()
    );
    assert!(s.file.committed);
    assert_eq!(st.stream_bytes, s.file.bytes.len() as u64);
    assert!(st.pages >= NR - 40, "{st:?}");
    assert_saved_equals_guest(&s);
}

#[test]
fn a_source_offering_lz4_saves_plain_pages() {
    let s = save(12, Codec::Lz4, false, Box::new(|e| Boxed(Box::new(e))));
    assert!(s.save.is_ok() && s.src.is_ok(), "{:?}", s.save);
    // The decoder above refuses depmig's packed record: none is there.
    assert_saved_equals_guest(&s);
}

#[test]
fn a_source_asking_for_verification_is_refused_and_resumed() {
    let s = save(13, Codec::Raw, true, Box::new(|e| Boxed(Box::new(e))));
    assert_eq!(s.save.unwrap_err(), SavedError::VerifyOffered);
    assert!(!s.file.committed);
    let f = s.src.unwrap_err();
    let g = s.guest.lock().unwrap();
    assert!(!g.suspended, "guest runs: {:?}", f.error);
    assert_eq!(g.suspend_calls, 0);
}

#[test]
fn a_source_dying_mid_save_leaves_the_guest_running_and_no_file() {
    let s = save(
        14,
        Codec::Raw,
        false,
        Box::new(|e| Boxed(Box::new(Vanish::new(e, 5 << 20, true)))),
    );
    assert_eq!(s.save.unwrap_err(), SavedError::PeerClosed);
    assert!(!s.file.committed, "never committed");
    assert!(s.src.is_err());
    let g = s.guest.lock().unwrap();
    assert!(!g.suspended, "the guest runs");
    assert!(!g.log_on);
}

#[test]
fn a_saved_stream_restores_into_the_shell() {
    let s = save(15, Codec::Raw, false, Box::new(|e| Boxed(Box::new(e))));
    assert!(s.save.is_ok());
    let file = &s.file.bytes;
    let cfg = SavedConfig::new(KEY, [3; 16]);
    let mut tail = Vec::new();
    let st = saved::check(&mut Reader { bytes: file, at: 0 }, &cfg, &mut tail).unwrap();
    assert_eq!(st.stream_bytes, file.len() as u64);
    assert!(tail.is_empty());

    let (a, b) = duplex(256 << 10, Duration::from_secs(5));
    let (sent, (dst, shell)) = std::thread::scope(|sc| {
        let src = sc.spawn(move || {
            let mut t = a;
            saved::send(
                &mut t,
                &mut Reader { bytes: file, at: 0 },
                st.stream_bytes,
                &cfg,
            )
        });
        let dst = sc.spawn(move || {
            let mut t = b;
            let mut shell = Shell::new(NR);
            let r = dest::run(
                &mut shell,
                &mut t,
                &TestClock(Instant::now()),
                &mut Recorder::default(),
                &DestConfig::new(KEY, [4; 16]),
            );
            (r, shell)
        });
        (src.join().unwrap(), dst.join().unwrap())
    });
    assert!(sent.is_ok(), "{sent:?}");
    assert!(dst.is_ok(), "{dst:?}");
    let g = s.guest.lock().unwrap();
    let snap = g.snapshot.as_ref().unwrap();
    for p in 0..NR {
        if !g.populated[p as usize] {
            continue;
        }
        if p == NR - 2 || p == NR - 1 {
            assert!(shell.page(p).iter().all(|&b| b == 0xEE), "ring {p}");
        } else {
            assert_eq!(shell.page(p), &snap[p as usize * PAGE..][..PAGE], "pfn {p}");
        }
    }
    assert_eq!(shell.tsc, Some(g.tsc));
    assert_eq!(shell.context.as_deref(), Some(&g.context[..]));
}

#[test]
fn a_restore_under_another_key_is_refused_before_the_stream() {
    let s = save(16, Codec::Raw, false, Box::new(|e| Boxed(Box::new(e))));
    let file = &s.file.bytes;
    let (a, b) = duplex(256 << 10, Duration::from_secs(5));
    let (sent, (dst, shell)) = std::thread::scope(|sc| {
        let src = sc.spawn(move || {
            let mut t = a;
            let cfg = SavedConfig::new(b"another key of sixteen bytes", [3; 16]);
            saved::send(
                &mut t,
                &mut Reader { bytes: file, at: 0 },
                file.len() as u64,
                &cfg,
            )
        });
        let dst = sc.spawn(move || {
            let mut t = b;
            let mut shell = Shell::new(NR);
            let r = dest::run(
                &mut shell,
                &mut t,
                &TestClock(Instant::now()),
                &mut Recorder::default(),
                &DestConfig::new(KEY, [4; 16]),
            );
            (r, shell)
        });
        (src.join().unwrap(), dst.join().unwrap())
    });
    assert_eq!(
        sent.unwrap_err(),
        SavedError::Handshake(depmig_stream::HandshakeError::KeyMismatch)
    );
    assert!(dst.is_err());
    assert!(shell.cpu_state_untouched());
    assert_eq!(shell.pages_written, 0);
}

#[test]
fn a_truncated_or_corrupted_file_is_refused_by_the_check() {
    let s = save(17, Codec::Raw, false, Box::new(|e| Boxed(Box::new(e))));
    let file = &s.file.bytes;
    let cfg = SavedConfig::new(KEY, [3; 16]);
    let check = |b: &[u8]| saved::check(&mut Reader { bytes: b, at: 0 }, &cfg, &mut Vec::new());
    for cut in [
        0,
        10,
        24,
        100,
        file.len() / 2,
        file.len() - 8,
        file.len() - 1,
    ] {
        let e = check(&file[..cut]).unwrap_err();
        assert_eq!(e, SavedError::Truncated, "cut at {cut}");
    }
    // The image header's id, the first record's type, a record length.
    for (at, why) in [(8, "image id"), (40, "record type"), (44, "record length")] {
        let mut bad = file.clone();
        bad[at] ^= 0x40;
        assert!(
            matches!(check(&bad), Err(SavedError::Decode(_))),
            "{why}: {:?}",
            check(&bad)
        );
    }
    // Bytes after END are the caller's to judge (an xl file's libxl END).
    let mut longer = file.clone();
    longer.extend_from_slice(&savefile::LIBXL_END_RECORD);
    let mut tail = Vec::new();
    saved::check(
        &mut Reader {
            bytes: &longer,
            at: 0,
        },
        &cfg,
        &mut tail,
    )
    .unwrap();
    assert_eq!(savefile::check_tail(Format::Xl, &tail), Ok(()));
    assert!(savefile::check_tail(Format::Libxc, &tail).is_err());
}

/// The Xen source tree holding `tools/python/scripts/verify-stream-v2`:
/// `DEPMIG_XEN_SRC`, else the newest under the rig's cache.
fn xen_source() -> Option<std::path::PathBuf> {
    let has = |p: &std::path::Path| p.join("tools/python/scripts/verify-stream-v2").is_file();
    if let Some(d) = std::env::var_os("DEPMIG_XEN_SRC") {
        let d = std::path::PathBuf::from(d);
        return has(&d).then_some(d);
    }
    let cache = std::env::var_os("DEPMIG_CACHE").unwrap_or_else(|| "/var/cache/depmig".into());
    let mut found: Vec<_> = std::fs::read_dir(std::path::Path::new(&cache).join("src"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| has(p))
        .collect();
    found.sort();
    found.pop()
}

#[test]
fn xen_verify_stream_v2_accepts_a_saved_file_in_both_formats() {
    let Some(xen) = xen_source() else {
        eprintln!("no Xen source tree with verify-stream-v2: not checked");
        return;
    };
    let s = save(18, Codec::Raw, false, Box::new(|e| Boxed(Box::new(e))));
    assert!(s.save.is_ok());
    let dir = std::env::temp_dir().join(format!("depmig-saved-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let libxc = dir.join("guest.libxc");
    std::fs::write(&libxc, &s.file.bytes).unwrap();
    let mut xl = savefile::xl_prefix(b"name = \"guest\"\ntype = \"pvh\"\nmemory = 16\n");
    xl.extend_from_slice(&s.file.bytes);
    xl.extend_from_slice(&savefile::LIBXL_END_RECORD);
    let xlf = dir.join("guest.xl");
    std::fs::write(&xlf, &xl).unwrap();
    let py = xen.join("tools/python");
    for (f, fmt) in [(&libxc, "libxc"), (&xlf, "xl")] {
        let out = std::process::Command::new("python3")
            .env("PYTHONPATH", &py)
            .arg(py.join("scripts/verify-stream-v2"))
            .args(["--format", fmt, "-i"])
            .arg(f)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "verify-stream-v2 --format {fmt}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
