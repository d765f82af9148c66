//! dom0's ends of `depmig save` and `depmig restore` over TCP, and the
//! save file on disk.
//!
//! Saving, [`TcpSaver`] listens on dom0's address on the appliances'
//! bridge, takes one connection from the source appliance and runs
//! `depmig_migrate::saved::receive` on it in a thread of its own, writing
//! through a [`SaveFile`]: `FILE.depmig-partial` first, renamed to FILE
//! only once the trailer's tag matched and before the ACK; removed on any
//! failure. Restoring, [`check_file`] reads a save file, in either
//! format, with the strict decoder before anything is created, and
//! [`send_file`] sends its libxc stream to the destination appliance.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use depmig_migrate::saved::{self, SaveSink, SavedConfig, SavedError, SavedSource, SavedStats};
use depmig_migrate::{Transport, TransportError};
use depmig_stream::savefile::{self, Format, SaveFileError};
use depmig_stream::SinkFull;

use crate::migrate::SaveEnd;

/// Suffix of a save file while it is written.
pub const PARTIAL_SUFFIX: &str = ".depmig-partial";

/// How long the source appliance may take to connect (it boots first).
pub const ACCEPT_WAIT: Duration = Duration::from_secs(300);

/// How long a read or write on the connection may make no progress (the
/// appliance's own stall timeout is shorter).
pub const STALL: Duration = Duration::from_secs(120);

/// The partial name of `path`.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(PARTIAL_SUFFIX);
    PathBuf::from(p)
}

/// A save file being written; removed when dropped uncommitted.
#[derive(Debug)]
pub struct SaveFile {
    path: PathBuf,
    partial: PathBuf,
    format: Format,
    w: Option<BufWriter<File>>,
    committed: bool,
    /// The first error, for the message.
    pub error: Option<io::Error>,
}

impl SaveFile {
    /// Creates `path`'s partial file (refused when it or `path` exists)
    /// and, in xl's format, writes the headers with `config` (xl config
    /// text).
    pub fn create(path: &Path, format: Format, config: &[u8]) -> io::Result<SaveFile> {
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let partial = partial_path(path);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)?;
        let mut s = SaveFile {
            path: path.to_path_buf(),
            partial,
            format,
            w: Some(BufWriter::with_capacity(1 << 20, f)),
            committed: false,
            error: None,
        };
        if format == Format::Xl {
            s.put(&savefile::xl_prefix(config))?;
        }
        Ok(s)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.w.as_mut() {
            Some(w) => w.write_all(bytes),
            None => Err(io::Error::other("closed")),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.format == Format::Xl {
            self.put(&savefile::LIBXL_END_RECORD)?;
        }
        let w = self.w.take().ok_or_else(|| io::Error::other("closed"))?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&self.partial, &self.path)?;
        // The rename itself made durable.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.committed = true;
        Ok(())
    }

    fn keep(&mut self, r: io::Result<()>) -> Result<(), SinkFull> {
        r.map_err(|e| {
            self.error.get_or_insert(e);
            SinkFull
        })
    }

    /// Removes FILE after a commit the source never heard of (its ACK was
    /// lost): the guest runs on, and the file must not be restored.
    pub fn withdraw(&mut self) -> io::Result<bool> {
        if !self.committed {
            return Ok(false);
        }
        std::fs::remove_file(&self.path)?;
        self.committed = false;
        Ok(true)
    }
}

impl SaveSink for SaveFile {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        let r = self.put(bytes);
        self.keep(r)
    }
    fn commit(&mut self) -> Result<(), SinkFull> {
        let r = self.finish();
        self.keep(r)
    }
}

impl Drop for SaveFile {
    fn drop(&mut self) {
        if !self.committed {
            self.w = None;
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// A TCP connection as the migration roles' transport.
pub struct TcpLink(pub TcpStream);

fn transport_error(e: &io::Error) -> TransportError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TransportError::Timeout,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => TransportError::Reset,
        io::ErrorKind::UnexpectedEof => TransportError::Closed,
        _ => TransportError::Failed(e.raw_os_error().unwrap_or(-1)),
    }
}

impl Transport for TcpLink {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        self.0.write_all(data).map_err(|e| transport_error(&e))
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.0.flush().map_err(|e| transport_error(&e))
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r.map_err(|e| transport_error(&e)),
            }
        }
    }
}

/// 16 fresh bytes for a hello's nonce.
pub fn fresh_nonce() -> io::Result<[u8; 16]> {
    let mut n = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut n)?;
    Ok(n)
}

/// The key's 64 hex digits as bytes.
pub fn key_bytes(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim();
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[derive(Default)]
struct Shared {
    state: Option<&'static str>,
    failure: Option<String>,
    stats: Option<SavedStats>,
    conn: Option<TcpStream>,
    file: Option<SaveFile>,
}

/// dom0's end of a save: see the module documentation.
pub struct TcpSaver {
    listener: Option<TcpListener>,
    addr: Option<SocketAddr>,
    file: Option<SaveFile>,
    path: PathBuf,
    accept_wait: Duration,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
}

impl TcpSaver {
    /// Listens on `addr` (dom0's address on the bridge) and creates FILE's
    /// partial file: both before any domain is touched, so that a wrong
    /// address or an unwritable FILE is refused at once.
    pub fn new(
        addr: SocketAddr,
        path: &Path,
        format: Format,
        config: &[u8],
    ) -> Result<TcpSaver, String> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            format!("cannot listen on {addr} ({e}): is that dom0's address on the appliances' bridge? (--dom0-ip)")
        })?;
        let file = SaveFile::create(path, format, config)
            .map_err(|e| format!("cannot create {}: {e}", partial_path(path).display()))?;
        Ok(TcpSaver {
            addr: listener.local_addr().ok(),
            listener: Some(listener),
            file: Some(file),
            path: path.to_path_buf(),
            accept_wait: ACCEPT_WAIT,
            stop: Arc::new(AtomicBool::new(false)),
            shared: Arc::new(Mutex::new(Shared::default())),
            thread: None,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A panicked saver thread leaves its last state; keep reading it.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn serve(
    listener: TcpListener,
    mut file: SaveFile,
    key: Vec<u8>,
    nonce: [u8; 16],
    accept_wait: Duration,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
) {
    let set = |f: &dyn Fn(&mut Shared)| {
        let mut g = shared.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
    };
    let fail = |why: String| {
        set(&|s: &mut Shared| {
            s.state = Some("failed");
            s.failure = Some(why.clone());
        })
    };
    let start = Instant::now();
    let conn = loop {
        if stop.load(Ordering::SeqCst) {
            return fail("abandoned before the source connected".into());
        }
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if start.elapsed() >= accept_wait {
                    return fail(format!(
                        "the source appliance did not connect within {} s",
                        accept_wait.as_secs()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return fail(format!("accept: {e}")),
        }
    };
    drop(listener);
    let prepared = conn
        .set_nonblocking(false)
        .and_then(|()| conn.set_read_timeout(Some(STALL)))
        .and_then(|()| conn.set_write_timeout(Some(STALL)))
        .and_then(|()| conn.set_nodelay(true))
        .and_then(|()| conn.try_clone());
    let clone = match prepared {
        Ok(c) => c,
        Err(e) => return fail(format!("connection: {e}")),
    };
    set(&|s: &mut Shared| {
        s.conn = clone.try_clone().ok();
        s.state = Some("receiving");
    });
    let cfg = SavedConfig::new(&key, nonce);
    let r = saved::receive(&mut TcpLink(conn), &mut file, &cfg);
    match r {
        Ok(stats) => {
            let mut g = shared.lock().unwrap_or_else(|p| p.into_inner());
            g.stats = Some(stats);
            g.state = Some("applied");
            g.file = Some(file);
            g.conn = None;
        }
        Err(e) => {
            let why = match (&e, file.error.take()) {
                (SavedError::File, Some(io)) => format!("writing the file: {io}"),
                _ => saved_error_text(&e),
            };
            // Kept for `abandon`: a partial file goes with it; a file
            // committed before the ACK failed to go out is withdrawn there,
            // once the roll-back runs the guest again.
            let mut g = shared.lock().unwrap_or_else(|p| p.into_inner());
            g.file = Some(file);
            g.state = Some("failed");
            g.failure = Some(why);
            // The NAK went (if it could): closing at once lets the source
            // see the end now rather than at its stall timeout.
            if let Some(c) = g.conn.take() {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl SaveEnd for TcpSaver {
    fn start(&mut self, key_hex: &str) -> Result<(), String> {
        let key = key_bytes(key_hex).ok_or("the key is not hex digits")?;
        let nonce = fresh_nonce().map_err(|e| format!("/dev/urandom: {e}"))?;
        let (Some(listener), Some(file)) = (self.listener.take(), self.file.take()) else {
            return Err("started twice".into());
        };
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("listener: {e}"))?;
        let (stop, shared, wait) = (self.stop.clone(), self.shared.clone(), self.accept_wait);
        self.thread = Some(std::thread::spawn(move || {
            serve(listener, file, key, nonce, wait, stop, shared)
        }));
        Ok(())
    }

    fn state(&mut self) -> Option<String> {
        self.lock().state.map(str::to_string)
    }

    fn failure(&mut self) -> Option<String> {
        self.lock().failure.clone()
    }

    fn abandon(&mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(c) = self.lock().conn.take() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut notes = Vec::new();
        let committed = self.lock().file.take();
        if let Some(mut f) = committed {
            match f.withdraw() {
                Ok(true) => notes.push(format!(
                    "{} was complete but the source did not commit: removed (the guest runs on)",
                    self.path.display()
                )),
                Ok(false) => {}
                Err(e) => notes.push(format!(
                    "{} could not be removed ({e}): delete it, the guest runs on",
                    self.path.display()
                )),
            }
        }
        // Dropping a SaveFile removes its partial file; one left by a
        // thread that could not finish is removed here.
        let _ = std::fs::remove_file(partial_path(&self.path));
        notes
    }

    fn summary(&mut self) -> String {
        match self.lock().stats {
            Some(s) => format!(
                "{} stream bytes, {} pages in {} PAGE_DATA records",
                s.stream_bytes, s.pages, s.page_records
            ),
            None => String::new(),
        }
    }
}

impl Drop for TcpSaver {
    fn drop(&mut self) {
        // The thread ends once its connection or its wait does.
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The first IPv4 address of `ip -4 -o addr show dev BRIDGE`'s output
/// (`... inet 10.77.0.1/24 ...`).
pub fn first_ipv4(ip_output: &str) -> Option<std::net::Ipv4Addr> {
    let mut words = ip_output.split_whitespace();
    while let Some(w) = words.next() {
        if w == "inet" {
            let a = words.next()?;
            return a.split('/').next()?.parse().ok();
        }
    }
    None
}

/// dom0's first IPv4 address on `bridge`, asked of `ip`.
pub fn bridge_ipv4(bridge: &str) -> Result<std::net::Ipv4Addr, String> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", bridge])
        .output()
        .map_err(|e| format!("ip -4 addr show dev {bridge}: {e}"))?;
    first_ipv4(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("dom0 has no IPv4 address on {bridge}: give --dom0-ip"))
}

/// [`send_file`] for a restore run.
pub struct FileSender {
    /// The save file.
    pub path: PathBuf,
    /// What its check found.
    pub checked: CheckedFile,
    /// How long the destination appliance may take to listen.
    pub connect_wait: Duration,
}

impl crate::migrate::RestoreSend for FileSender {
    fn send(&mut self, addr: std::net::SocketAddrV4, key_hex: &str) -> Result<(), String> {
        send_file(
            &self.path,
            &self.checked,
            SocketAddr::V4(addr),
            key_hex,
            self.connect_wait,
        )
    }
}

/// A [`SavedError`] as a sentence.
pub fn saved_error_text(e: &SavedError) -> String {
    match e {
        SavedError::ShortKey => "the key is shorter than 16 bytes".into(),
        SavedError::Transport(t) => format!("the connection failed: {t:?}"),
        SavedError::PeerClosed => "the peer closed the connection before the end".into(),
        SavedError::Stream(r) => format!("the stream was refused: {r:?}"),
        SavedError::VerifyOffered => {
            "the source asked for page verification, which a save cannot do".into()
        }
        SavedError::TrailingBytes => "bytes followed the trailer".into(),
        SavedError::File => "the save file could not be read or written".into(),
        SavedError::Handshake(h) => format!("the destination's hello was refused: {h:?}"),
        SavedError::Decode(d) => format!("the stream is malformed: {d:?}"),
        SavedError::Truncated => "the stream ends before its END record".into(),
        SavedError::Checkpointed => "the stream is checkpointed (COLO/Remus), not a save".into(),
        SavedError::Refused(c) => format!(
            "the destination appliance refused it (NAK {})",
            String::from_utf8_lossy(&c.to_bytes())
        ),
        SavedError::BadReply => "the destination's reply is neither ACK nor NAK".into(),
    }
}

/// Reads a save file in pieces.
struct FileSource<R>(R);

impl<R: Read> SavedSource for FileSource<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SinkFull> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r.map_err(|_| SinkFull),
            }
        }
    }
}

/// A save file as checked: where its libxc stream is, and how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedFile {
    /// Its format.
    pub format: Format,
    /// Offset of the libxc stream.
    pub offset: u64,
    /// What the strict decoder counted.
    pub stats: SavedStats,
    /// The xl config it carries (xl files), if any, and whether it is JSON.
    pub config: Option<(Vec<u8>, bool)>,
}

/// Why a save file was refused.
#[derive(Debug)]
pub enum FileError {
    /// It could not be read.
    Io(io::Error),
    /// Its headers are not a save file's.
    Format(SaveFileError),
    /// Its libxc stream was refused.
    Stream(SavedError),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Io(e) => write!(f, "{e}"),
            FileError::Format(e) => write!(f, "not a save file depmig restores: {e:?}"),
            FileError::Stream(e) => write!(f, "{}", saved_error_text(e)),
        }
    }
}

/// Reads the save file at `path` through: its headers, its libxc stream
/// with the strict decoder, and what follows END.
pub fn check_file(path: &Path) -> Result<CheckedFile, FileError> {
    let mut f = File::open(path).map_err(FileError::Io)?;
    let mut head = vec![0u8; savefile::XL_HEADER_LEN];
    let n = read_up_to(&mut f, &mut head).map_err(FileError::Io)?;
    head.truncate(n);
    let need = savefile::prefix_need(&head);
    if need > head.len() {
        head.resize(need, 0);
        let m = read_up_to(&mut f, &mut head[n..]).map_err(FileError::Io)?;
        head.truncate(n + m);
    }
    let prefix = savefile::parse_prefix(&head).map_err(FileError::Format)?;
    let config = prefix.config.and_then(|(at, len)| {
        let at = usize::try_from(at).ok()?;
        let bytes = head.get(at..at.checked_add(len as usize)?)?.to_vec();
        Some((bytes, prefix.config_json))
    });
    f.seek(SeekFrom::Start(prefix.libxc_offset))
        .map_err(FileError::Io)?;
    let mut src = FileSource(BufReader::with_capacity(1 << 20, f));
    let mut tail = Vec::new();
    let cfg = SavedConfig::new(&[0; 16], [0; 16]);
    let stats = saved::check(&mut src, &cfg, &mut tail).map_err(FileError::Stream)?;
    savefile::check_tail(prefix.format, &tail).map_err(FileError::Format)?;
    Ok(CheckedFile {
        format: prefix.format,
        offset: prefix.libxc_offset,
        stats,
        config,
    })
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut have = 0;
    while have < buf.len() {
        match f.read(&mut buf[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(have)
}

/// Sends the libxc stream of the checked save file at `path` to the
/// destination appliance at `addr` under `key_hex`; `Ok` once it ACKed.
pub fn send_file(
    path: &Path,
    checked: &CheckedFile,
    addr: SocketAddr,
    key_hex: &str,
    connect_wait: Duration,
) -> Result<(), String> {
    let key = key_bytes(key_hex).ok_or("the key is not hex digits")?;
    let nonce = fresh_nonce().map_err(|e| format!("/dev/urandom: {e}"))?;
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.seek(SeekFrom::Start(checked.offset))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // The destination appliance boots before it listens: try again until
    // it does.
    let start = Instant::now();
    let conn = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(c) => break c,
            Err(e) if start.elapsed() < connect_wait => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(format!("cannot connect to {addr}: {e}")),
        }
    };
    conn.set_read_timeout(Some(STALL))
        .and_then(|()| conn.set_write_timeout(Some(STALL)))
        .and_then(|()| conn.set_nodelay(true))
        .map_err(|e| format!("connection: {e}"))?;
    let cfg = SavedConfig::new(&key, nonce);
    let mut src = FileSource(BufReader::with_capacity(1 << 20, f));
    saved::send(
        &mut TcpLink(conn),
        &mut src,
        checked.stats.stream_bytes,
        &cfg,
    )
    .map(|_| ())
    .map_err(|e| saved_error_text(&e))
}

#[cfg(test)]
mod tests;
