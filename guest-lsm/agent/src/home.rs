//! The agent's publication and its request/status exchange, kept alive
//! across live migration: the migrated guest runs as a new domain whose
//! xenstore home starts empty while the guest's memory (and so every
//! published frame number) is unchanged, so the agent publishes the same
//! values again and forgets which request it served in the old home.
//!
//! The decisions live here, over the [`Home`] trait, so that they are tested
//! on the host; the agent implements it with xenstore ([`Xenstore`]) or
//! with files ([`FileHome`], `--no-xenstore`).

use crate::xenstore::{Xenstore, XsError};
use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;

/// xenstore directory (relative to the domain's home) the agent publishes in.
pub const XS_DIR: &str = "data/depmig";

/// Errors reading or writing the home.
#[derive(Debug)]
pub enum HomeError {
    /// A xenstore request failed.
    Xenstore(XsError),
    /// A publication, control or status file could not be read or written.
    File(PathBuf, std::io::Error),
}

impl std::fmt::Display for HomeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HomeError::Xenstore(e) => write!(f, "{e}"),
            HomeError::File(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

/// Where the agent's keys live: `key` is relative to [`XS_DIR`]
/// (`version`, `state`, `request`, `status`, ...).
pub trait Home {
    /// Reads `key`; `None` when it does not exist.
    fn read(&mut self, key: &str) -> Result<Option<String>, HomeError>;
    /// Writes `value` at `key`.
    fn write(&mut self, key: &str, value: &str) -> Result<(), HomeError>;
    /// Makes sure the directory exists before a publication.
    fn prepare(&mut self) -> Result<(), HomeError> {
        Ok(())
    }
}

impl<T: Read + Write> Home for Xenstore<T> {
    fn read(&mut self, key: &str) -> Result<Option<String>, HomeError> {
        Xenstore::read(self, &format!("{XS_DIR}/{key}")).map_err(HomeError::Xenstore)
    }

    fn write(&mut self, key: &str, value: &str) -> Result<(), HomeError> {
        Xenstore::write(self, &format!("{XS_DIR}/{key}"), value).map_err(HomeError::Xenstore)
    }

    fn prepare(&mut self) -> Result<(), HomeError> {
        self.mkdir(XS_DIR).map_err(HomeError::Xenstore)
    }
}

/// The home of `--no-xenstore`: the publication is a file of
/// `data/depmig/<key>=<value>` lines, requests come from the control file
/// and answers go to the status file.
pub struct FileHome {
    publish: PathBuf,
    control: PathBuf,
    status: PathBuf,
    keys: Vec<(String, String)>,
}

impl FileHome {
    /// A home publishing to `publish`, reading `control`, answering in `status`.
    pub fn new(publish: PathBuf, control: PathBuf, status: PathBuf) -> Self {
        FileHome {
            publish,
            control,
            status,
            keys: Vec::new(),
        }
    }
}

/// Replaces `path` atomically with `text`.
fn replace(path: &PathBuf, text: &str) -> Result<(), HomeError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| HomeError::File(path.clone(), e))
}

/// Reads `path`; `None` when it does not exist.
fn read_opt(path: &PathBuf) -> Result<Option<String>, HomeError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HomeError::File(path.clone(), e)),
    }
}

impl Home for FileHome {
    fn read(&mut self, key: &str) -> Result<Option<String>, HomeError> {
        match key {
            "request" => read_opt(&self.control),
            "status" => read_opt(&self.status),
            _ => {
                let prefix = format!("{XS_DIR}/{key}=");
                Ok(read_opt(&self.publish)?.and_then(|text| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string))
                }))
            }
        }
    }

    fn write(&mut self, key: &str, value: &str) -> Result<(), HomeError> {
        match key {
            "request" => replace(&self.control, value),
            "status" => replace(&self.status, value),
            _ => {
                self.keys.retain(|(k, _)| k != key);
                self.keys.push((key.to_string(), value.to_string()));
                let text: String = self
                    .keys
                    .iter()
                    .map(|(k, v)| format!("{XS_DIR}/{k}={v}\n"))
                    .collect();
                replace(&self.publish, &text)
            }
        }
    }
}

/// What the agent publishes: the same values before and after a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publication {
    /// Guest frame of table page 0.
    pub table_gfn: u64,
    /// Guest frame of table page 1 (the kernel profile).
    pub profile_gfn: u64,
    /// Pages in the table.
    pub table_pages: u32,
}

impl Publication {
    /// The keys and values, `state` last: a reader that finds
    /// `state` = `tracking` finds the others written before it.
    pub fn entries(&self) -> [(&'static str, String); 5] {
        [
            ("version", "1".to_string()),
            ("table-gfn", format!("{:#x}", self.table_gfn)),
            ("table-pages", self.table_pages.to_string()),
            ("profile-gfn", format!("{:#x}", self.profile_gfn)),
            ("state", "tracking".to_string()),
        ]
    }

    /// Writes every entry to `home`.
    pub fn write_to(&self, home: &mut dyn Home) -> Result<(), HomeError> {
        home.prepare()?;
        for (k, v) in self.entries() {
            home.write(k, &v)?;
        }
        Ok(())
    }
}

/// Outcome of a check of the home.
#[derive(Debug)]
pub enum HomeCheck {
    /// The publication is there.
    Present,
    /// The home had no publication (a new domain after a migration): it
    /// was written again and the last served request forgotten.
    Republished,
    /// The home had no publication and writing it again failed (the last
    /// served request was forgotten; the next check tries again).
    RepublishFailed(HomeError),
}

/// A request to serve: `<seq> <cmd>` read from `request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The sequence text (echoed in the status).
    pub seq: String,
    /// The command (`freeze`, `thaw`, ...).
    pub cmd: String,
}

/// The agent's side of the exchange: which request it served last, and
/// whether the current home holds its publication.
pub struct Session {
    publication: Publication,
    /// Whether the publication was last written completely (false from a
    /// failed re-publication until a successful one).
    published: bool,
    /// The sequence text of the request served last in this home.
    served: Option<String>,
    /// The `request` text (trimmed) seen at the last poll.
    seen: Option<String>,
}

impl Session {
    /// A session that will publish `publication`.
    pub fn new(publication: Publication) -> Self {
        Session {
            publication,
            published: false,
            served: None,
            seen: None,
        }
    }

    /// Writes the publication (at start, unconditionally).
    pub fn publish(&mut self, home: &mut dyn Home) -> Result<(), HomeError> {
        self.publication.write_to(home)?;
        self.published = true;
        Ok(())
    }

    /// Reads `state`; when it is missing the home is a new one (the
    /// domain was migrated): forgets the served request (once per move,
    /// so that a request served while re-publishing keeps failing is not
    /// served twice) and publishes again. An error reading `state` changes
    /// nothing.
    pub fn check_home(&mut self, home: &mut dyn Home) -> Result<HomeCheck, HomeError> {
        if home.read("state")?.is_some() {
            return Ok(HomeCheck::Present);
        }
        if self.published {
            self.served = None;
            self.published = false;
        }
        match self.publish(home) {
            Ok(()) => Ok(HomeCheck::Republished),
            Err(e) => Ok(HomeCheck::RepublishFailed(e)),
        }
    }

    /// Reads `request` and returns what to serve, if anything new. When the
    /// text changed since the last poll the home is checked first (a
    /// request in a new home must not be mistaken for the one served in
    /// the old home, however its sequence reads) and, if it was new, the
    /// request is read again from it. A request counts as new when its
    /// sequence differs from the one served last in this home.
    pub fn poll(
        &mut self,
        home: &mut dyn Home,
    ) -> Result<(Option<HomeCheck>, Option<Request>), HomeError> {
        let mut text = home.read("request")?.map(|s| s.trim().to_string());
        let mut check = None;
        if text != self.seen {
            let c = self.check_home(home)?;
            if !matches!(c, HomeCheck::Present) {
                // Read after the check: from the home the check saw.
                text = home.read("request")?.map(|s| s.trim().to_string());
            }
            check = Some(c);
        }
        self.seen.clone_from(&text);
        let Some((seq, cmd)) = text.as_deref().and_then(|t| t.split_once(' ')) else {
            return Ok((check, None));
        };
        if self.served.as_deref() == Some(seq) {
            return Ok((check, None));
        }
        self.served = Some(seq.to_string());
        Ok((
            check,
            Some(Request {
                seq: seq.to_string(),
                cmd: cmd.trim().to_string(),
            }),
        ))
    }

    /// Writes the answer `<seq> <result>` to `status`.
    pub fn answer(
        &mut self,
        home: &mut dyn Home,
        req: &Request,
        result: &str,
    ) -> Result<(), HomeError> {
        home.write("status", &format!("{} {result}", req.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An in-memory home; `migrate` empties it as a new domain's home is.
    #[derive(Default)]
    struct Mem {
        keys: BTreeMap<String, String>,
        reads: Vec<String>,
        fail_reads: bool,
        fail_writes: bool,
        /// Empties the home just before the next read of `state`.
        migrate_at_state_read: bool,
    }

    impl Mem {
        fn migrate(&mut self) {
            self.keys.clear();
        }
        fn get(&self, k: &str) -> Option<&str> {
            self.keys.get(k).map(String::as_str)
        }
    }

    fn err() -> HomeError {
        HomeError::File("mem".into(), std::io::Error::other("refused"))
    }

    impl Home for Mem {
        fn read(&mut self, key: &str) -> Result<Option<String>, HomeError> {
            self.reads.push(key.to_string());
            if key == "state" && std::mem::take(&mut self.migrate_at_state_read) {
                self.migrate();
            }
            if self.fail_reads {
                return Err(err());
            }
            Ok(self.keys.get(key).cloned())
        }
        fn write(&mut self, key: &str, value: &str) -> Result<(), HomeError> {
            if self.fail_writes {
                return Err(err());
            }
            self.keys.insert(key.to_string(), value.to_string());
            Ok(())
        }
    }

    const P: Publication = Publication {
        table_gfn: 0x1_2345,
        profile_gfn: 0x1_2346,
        table_pages: 322,
    };

    fn published() -> BTreeMap<String, String> {
        [
            ("version", "1"),
            ("table-gfn", "0x12345"),
            ("table-pages", "322"),
            ("profile-gfn", "0x12346"),
            ("state", "tracking"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn started() -> (Mem, Session) {
        let mut h = Mem::default();
        let mut s = Session::new(P);
        s.publish(&mut h).unwrap();
        (h, s)
    }

    /// Serves one request the way the agent does; returns it.
    fn serve(h: &mut Mem, s: &mut Session) -> Option<Request> {
        let (_, r) = s.poll(h).unwrap();
        if let Some(r) = &r {
            s.answer(h, r, &format!("did {}", r.cmd)).unwrap();
        }
        r
    }

    fn req(seq: &str, cmd: &str) -> Option<Request> {
        Some(Request {
            seq: seq.into(),
            cmd: cmd.into(),
        })
    }

    #[test]
    fn first_publication_writes_every_key_state_last() {
        let (h, _) = started();
        assert_eq!(h.keys, published());
        assert_eq!(P.entries().last().map(|e| e.0), Some("state"));
    }

    #[test]
    fn an_empty_home_is_published_again_with_the_same_values() {
        let (mut h, mut s) = started();
        assert!(matches!(s.check_home(&mut h).unwrap(), HomeCheck::Present));
        h.migrate();
        assert!(matches!(
            s.check_home(&mut h).unwrap(),
            HomeCheck::Republished
        ));
        assert_eq!(h.keys, published());
        assert!(matches!(s.check_home(&mut h).unwrap(), HomeCheck::Present));
    }

    #[test]
    fn requests_are_served_once_per_sequence() {
        let (mut h, mut s) = started();
        assert_eq!(serve(&mut h, &mut s), None);
        h.write("request", "4 freeze\n").unwrap();
        assert_eq!(serve(&mut h, &mut s), req("4", "freeze"));
        assert_eq!(h.get("status"), Some("4 did freeze"));
        for _ in 0..3 {
            assert_eq!(serve(&mut h, &mut s), None);
            assert!(matches!(s.check_home(&mut h).unwrap(), HomeCheck::Present));
        }
        h.write("request", "5 thaw").unwrap();
        assert_eq!(serve(&mut h, &mut s), req("5", "thaw"));
        h.write("request", "garbage").unwrap();
        assert_eq!(serve(&mut h, &mut s), None);
    }

    #[test]
    fn same_sequence_in_a_new_home_is_served_at_once() {
        let (mut h, mut s) = started();
        h.write("request", "7 freeze").unwrap();
        assert_eq!(serve(&mut h, &mut s), req("7", "freeze"));
        // The destination's controller starts its own count: same seq.
        h.migrate();
        h.write("request", "7 thaw").unwrap();
        let (check, r) = s.poll(&mut h).unwrap();
        assert!(matches!(check, Some(HomeCheck::Republished)));
        assert_eq!(r, req("7", "thaw"));
        assert_eq!(h.keys.get("state").map(String::as_str), Some("tracking"));
        s.answer(&mut h, &req("7", "thaw").unwrap(), "thawed 1")
            .unwrap();
        // Served once: neither the next polls nor the periodic check
        // serve it again.
        for _ in 0..3 {
            assert!(matches!(s.check_home(&mut h).unwrap(), HomeCheck::Present));
            assert_eq!(serve(&mut h, &mut s), None);
        }
        assert_eq!(h.get("status"), Some("7 thawed 1"));
    }

    #[test]
    fn identical_request_text_in_a_new_home_is_served_after_the_check() {
        let (mut h, mut s) = started();
        h.write("request", "3 thaw").unwrap();
        assert_eq!(serve(&mut h, &mut s), req("3", "thaw"));
        h.migrate();
        h.write("request", "3 thaw").unwrap();
        // Same text as before: indistinguishable until the home is checked.
        assert_eq!(serve(&mut h, &mut s), None);
        assert!(matches!(
            s.check_home(&mut h).unwrap(),
            HomeCheck::Republished
        ));
        assert_eq!(serve(&mut h, &mut s), req("3", "thaw"));
        assert_eq!(serve(&mut h, &mut s), None);
        assert_eq!(h.keys.len(), 7, "publication, request and status");
    }

    #[test]
    fn a_vanished_request_triggers_the_check() {
        let (mut h, mut s) = started();
        h.write("request", "1 freeze").unwrap();
        assert_eq!(serve(&mut h, &mut s), req("1", "freeze"));
        h.migrate();
        let (check, r) = s.poll(&mut h).unwrap();
        assert!(matches!(check, Some(HomeCheck::Republished)));
        assert_eq!(r, None);
        assert_eq!(h.get("table-gfn"), Some("0x12345"));
        h.write("request", "1 thaw").unwrap();
        assert_eq!(serve(&mut h, &mut s), req("1", "thaw"));
    }

    #[test]
    fn a_request_read_in_the_old_home_is_not_served_in_the_new() {
        let (mut h, mut s) = started();
        h.write("request", "5 thaw").unwrap();
        assert_eq!(serve(&mut h, &mut s), req("5", "thaw"));
        // A freeze read from the old home just before the move: served in
        // the new home nobody would thaw it.
        h.write("request", "6 freeze").unwrap();
        h.migrate_at_state_read = true;
        let (check, r) = s.poll(&mut h).unwrap();
        assert!(matches!(check, Some(HomeCheck::Republished)));
        assert_eq!(r, None);
        assert_eq!(h.get("status"), None);
        h.write("request", "1 thaw").unwrap();
        assert_eq!(serve(&mut h, &mut s), req("1", "thaw"));
    }

    #[test]
    fn unchanged_request_costs_one_read_per_poll() {
        let (mut h, mut s) = started();
        h.write("request", "2 freeze").unwrap();
        serve(&mut h, &mut s);
        h.reads.clear();
        for _ in 0..10 {
            serve(&mut h, &mut s);
        }
        assert_eq!(h.reads, vec!["request"; 10]);
    }

    #[test]
    fn errors_change_nothing_and_failed_republication_is_retried() {
        let (mut h, mut s) = started();
        h.write("request", "9 freeze").unwrap();
        assert_eq!(serve(&mut h, &mut s), req("9", "freeze"));
        h.fail_reads = true;
        assert!(s.check_home(&mut h).is_err());
        assert!(s.poll(&mut h).is_err());
        h.fail_reads = false;
        assert_eq!(serve(&mut h, &mut s), None);

        // New home that refuses writes at first.
        h.migrate();
        h.keys.insert("request".into(), "9 thaw".into());
        h.fail_writes = true;
        let (check, r) = s.poll(&mut h).unwrap();
        assert!(matches!(check, Some(HomeCheck::RepublishFailed(_))));
        assert_eq!(r, req("9", "thaw"), "the thaw is served regardless");
        // Still unpublished: retried, but the request is not served again.
        assert!(matches!(
            s.check_home(&mut h).unwrap(),
            HomeCheck::RepublishFailed(_)
        ));
        assert_eq!(s.poll(&mut h).unwrap().1, None);
        h.fail_writes = false;
        assert!(matches!(
            s.check_home(&mut h).unwrap(),
            HomeCheck::Republished
        ));
        assert_eq!(s.poll(&mut h).unwrap().1, None);
        assert_eq!(h.get("state"), Some("tracking"));
    }

    #[test]
    fn hostile_request_texts_never_panic() {
        let (mut h, mut s) = started();
        for t in [
            "",
            " ",
            "  x",
            "1",
            "1 ",
            "\u{fffd} \u{0}",
            "99999999999999999999 thaw",
        ] {
            h.write("request", t).unwrap();
            let _ = serve(&mut h, &mut s);
        }
    }

    #[test]
    fn file_home_republishes_a_removed_file() {
        let dir = std::env::temp_dir().join(format!("depmig-home-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (p, c, st) = (dir.join("publish"), dir.join("control"), dir.join("status"));
        let mut h = FileHome::new(p.clone(), c.clone(), st.clone());
        let mut s = Session::new(P);
        s.publish(&mut h).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "data/depmig/version=1\ndata/depmig/table-gfn=0x12345\ndata/depmig/table-pages=322\n\
             data/depmig/profile-gfn=0x12346\ndata/depmig/state=tracking\n"
        );
        assert!(matches!(s.check_home(&mut h).unwrap(), HomeCheck::Present));
        fs::write(&c, "5 thaw\n").unwrap();
        let (_, r) = s.poll(&mut h).unwrap();
        let r = r.unwrap();
        s.answer(&mut h, &r, "thawed 0").unwrap();
        assert_eq!(fs::read_to_string(&st).unwrap(), "5 thawed 0");
        fs::remove_file(&p).unwrap();
        assert!(matches!(
            s.check_home(&mut h).unwrap(),
            HomeCheck::Republished
        ));
        assert_eq!(fs::read_to_string(&p).unwrap(), text);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn xenstore_home_uses_the_relative_directory() {
        use std::os::unix::net::UnixStream;
        use xenstore_wire::{Header, MsgType};
        let (a, mut b) = UnixStream::pair().unwrap();
        let srv = std::thread::spawn(move || {
            let mut seen = Vec::new();
            loop {
                let mut hd = [0u8; 16];
                if b.read_exact(&mut hd).is_err() {
                    return seen;
                }
                let h = Header::decode(&hd).unwrap();
                let mut p = vec![0u8; h.len as usize];
                b.read_exact(&mut p).unwrap();
                seen.push(String::from_utf8_lossy(&p).into_owned());
                let (ty, body) = if h.ty == MsgType::Read as u32 {
                    (MsgType::Error as u32, b"ENOENT\0".to_vec())
                } else {
                    (h.ty, b"OK\0".to_vec())
                };
                let out = Header {
                    ty,
                    req_id: h.req_id,
                    tx_id: 0,
                    len: body.len() as u32,
                };
                let mut m = out.encode().to_vec();
                m.extend_from_slice(&body);
                b.write_all(&m).unwrap();
            }
        });
        let mut xs = Xenstore::over(a);
        let mut s = Session::new(P);
        s.publish(&mut xs).unwrap();
        assert!(matches!(
            s.check_home(&mut xs).unwrap(),
            HomeCheck::Republished
        ));
        drop(xs);
        let seen = srv.join().unwrap();
        assert_eq!(seen.first().map(String::as_str), Some("data/depmig\0"));
        assert!(seen.contains(&"data/depmig/state\0".to_string()));
        assert!(seen
            .iter()
            .any(|s| s == "data/depmig/table-gfn\u{0}0x12345"));
        assert_eq!(seen.len(), 2 * 6 + 1);
    }
}
