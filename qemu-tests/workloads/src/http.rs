//! The little HTTP/1.1 the workloads speak: request and response heads,
//! parsed with caps, and `http://host:port/path` URLs.
//!
//! Only what the rig needs: one GET per connection, bodies streamed until
//! the peer closes or `Content-Length` is reached.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Largest request or response head accepted.
pub const MAX_HEAD: usize = 8192;
/// Most header lines accepted in one head.
pub const MAX_HEADERS: usize = 64;

/// Why a head or URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The head is longer than `MAX_HEAD` bytes.
    TooLong,
    /// The head is not valid ASCII text.
    NotText,
    /// The request or status line is malformed.
    BadStartLine,
    /// A header line has no colon or too many headers were sent.
    BadHeader,
    /// The version is not HTTP/1.0 or HTTP/1.1.
    BadVersion,
    /// The URL is not `http://a.b.c.d[:port][/path]`.
    BadUrl,
    /// Content-Length is not a number.
    BadLength,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            HttpError::TooLong => "head too long",
            HttpError::NotText => "head is not ASCII text",
            HttpError::BadStartLine => "malformed request or status line",
            HttpError::BadHeader => "malformed header line",
            HttpError::BadVersion => "unsupported HTTP version",
            HttpError::BadUrl => "URL must be http://a.b.c.d[:port][/path]",
            HttpError::BadLength => "bad Content-Length",
        };
        f.write_str(s)
    }
}

/// Position just past the blank line ending a head in `buf`, if complete.
/// Errors when `buf` is already longer than `MAX_HEAD` without one.
pub fn head_end(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        if p + 4 > MAX_HEAD {
            return Err(HttpError::TooLong);
        }
        return Ok(Some(p + 4));
    }
    if buf.len() >= MAX_HEAD {
        return Err(HttpError::TooLong);
    }
    Ok(None)
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string after `?`, empty when none.
    pub query: String,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content-Length, when given.
    pub content_length: Option<u64>,
}

fn lines(head: &[u8]) -> Result<Vec<&str>, HttpError> {
    if head.len() > MAX_HEAD {
        return Err(HttpError::TooLong);
    }
    let text = std::str::from_utf8(head).map_err(|_| HttpError::NotText)?;
    if !text.is_ascii() {
        return Err(HttpError::NotText);
    }
    let text = text.strip_suffix("\r\n\r\n").unwrap_or(text);
    let v: Vec<&str> = text.split("\r\n").collect();
    if v.len() > MAX_HEADERS + 1 {
        return Err(HttpError::BadHeader);
    }
    Ok(v)
}

fn headers<'a>(ls: &[&'a str]) -> Result<Vec<(&'a str, &'a str)>, HttpError> {
    ls.iter()
        .skip(1)
        .map(|l| {
            let (k, v) = l.split_once(':').ok_or(HttpError::BadHeader)?;
            if k.is_empty() || k.contains(' ') {
                return Err(HttpError::BadHeader);
            }
            Ok((k, v.trim()))
        })
        .collect()
}

fn check_version(v: &str) -> Result<(), HttpError> {
    match v {
        "HTTP/1.1" | "HTTP/1.0" => Ok(()),
        _ => Err(HttpError::BadVersion),
    }
}

/// Parses a request head (through its blank line).
pub fn parse_request(head: &[u8]) -> Result<Request, HttpError> {
    let ls = lines(head)?;
    let first = ls.first().ok_or(HttpError::BadStartLine)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadStartLine);
    };
    check_version(version)?;
    if method.is_empty() || !target.starts_with('/') {
        return Err(HttpError::BadStartLine);
    }
    headers(&ls)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
    })
}

/// Parses a response head (through its blank line).
pub fn parse_response(head: &[u8]) -> Result<Response, HttpError> {
    let ls = lines(head)?;
    let first = ls.first().ok_or(HttpError::BadStartLine)?;
    let mut parts = first.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(HttpError::BadStartLine);
    };
    check_version(version)?;
    if code.len() != 3 {
        return Err(HttpError::BadStartLine);
    }
    let status: u16 = code.parse().map_err(|_| HttpError::BadStartLine)?;
    let mut content_length = None;
    for (k, v) in headers(&ls)? {
        if k.eq_ignore_ascii_case("content-length") {
            content_length = Some(v.parse().map_err(|_| HttpError::BadLength)?);
        }
    }
    Ok(Response {
        status,
        content_length,
    })
}

/// Value of `key` in a query string `a=1&b=2`.
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// A parsed `http://` URL with a numeric IPv4 host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Address to connect to.
    pub addr: SocketAddrV4,
    /// Path and query, starting with `/`.
    pub target: String,
}

/// Parses `http://a.b.c.d[:port][/path]` (the rig has no DNS).
pub fn parse_url(s: &str) -> Result<Url, HttpError> {
    let rest = s.strip_prefix("http://").ok_or(HttpError::BadUrl)?;
    let (hostport, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.split_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| HttpError::BadUrl)?),
        None => (hostport, 80),
    };
    let ip: Ipv4Addr = host.parse().map_err(|_| HttpError::BadUrl)?;
    if target.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err(HttpError::BadUrl);
    }
    Ok(Url {
        addr: SocketAddrV4::new(ip, port),
        target: target.to_string(),
    })
}

/// The request head a client sends for `url`.
pub fn get_request(url: &Url) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: depmig-wlhttp\r\n\r\n",
        url.target,
        url.addr.ip()
    )
}

/// Byte `off` of the endless body the stream server sends; the client
/// checks it so a gap or a repeat in the stream is noticed.
pub fn stream_byte(off: u64) -> u8 {
    (off % 251) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let url = parse_url("http://10.0.0.1:8080/stream?bytes=10").unwrap();
        let req = get_request(&url);
        let end = head_end(req.as_bytes()).unwrap().unwrap();
        assert_eq!(end, req.len());
        let r = parse_request(req.as_bytes()).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/stream");
        assert_eq!(query_param(&r.query, "bytes"), Some("10"));
        assert_eq!(query_param(&r.query, "x"), None);
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(
            parse_request(b"GET /\r\n\r\n"),
            Err(HttpError::BadStartLine)
        );
        assert_eq!(
            parse_request(b"GET / HTTP/2\r\n\r\n"),
            Err(HttpError::BadVersion)
        );
        assert_eq!(
            parse_request(b"GET x HTTP/1.1\r\n\r\n"),
            Err(HttpError::BadStartLine)
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nnocolon\r\n\r\n"),
            Err(HttpError::BadHeader)
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nA: \xff\r\n\r\n"),
            Err(HttpError::NotText)
        );
        let long = vec![b'a'; MAX_HEAD + 1];
        assert_eq!(head_end(&long), Err(HttpError::TooLong));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), Ok(None));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "a: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(parse_request(many.as_bytes()), Err(HttpError::BadHeader));
    }

    #[test]
    fn responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX: y\r\n\r\n").unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                content_length: Some(12)
            }
        );
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\n").unwrap();
        assert_eq!(
            r,
            Response {
                status: 404,
                content_length: None
            }
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 20 OK\r\n\r\n"),
            Err(HttpError::BadStartLine)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(HttpError::BadLength)
        );
        assert_eq!(
            parse_response(b"SIP/2.0 200 OK\r\n\r\n"),
            Err(HttpError::BadVersion)
        );
    }

    #[test]
    fn urls() {
        let u = parse_url("http://10.1.2.3").unwrap();
        assert_eq!(u.addr.port(), 80);
        assert_eq!(u.target, "/");
        assert_eq!(parse_url("https://10.1.2.3/"), Err(HttpError::BadUrl));
        assert_eq!(parse_url("http://host/"), Err(HttpError::BadUrl));
        assert_eq!(parse_url("http://1.2.3.4:99999/"), Err(HttpError::BadUrl));
        assert_eq!(parse_url("http://1.2.3.4/a b"), Err(HttpError::BadUrl));
    }

    #[test]
    fn stream_pattern_is_periodic_and_not_constant() {
        assert_eq!(stream_byte(0), 0);
        assert_eq!(stream_byte(250), 250);
        assert_eq!(stream_byte(251), 0);
    }
}
