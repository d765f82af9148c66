//! wlhttp: the rig's HTTP workloads, one static binary for guest and dom0.
//!
//! - `serve-stream --port P` (dom0): answers `GET /stream[?bytes=N]` with an
//!   endless (or N-byte) patterned body.
//! - `fetch --url U` (guest): downloads such a stream, checks the pattern and
//!   prints throughput every `--report-secs`; reconnects after an error.
//! - `serve --port P` (guest): answers every `GET` with a short body.
//! - `probe --url U --phase-file F --out J` (dom0): queries a server every
//!   `--interval-ms`, one connection per request, labelling each sample with
//!   the phase named in F (`before`, `during`, `after`; `stop` ends it), and
//!   writes latency percentiles per phase as JSON.

use clap::Parser;
use depmig_workloads::args::{Wlhttp, WlhttpCommand};
use depmig_workloads::http::{
    self, head_end, parse_request, parse_response, query_param, stream_byte, Url,
};
use depmig_workloads::json;
use depmig_workloads::probe::{self, Phase};
use depmig_workloads::stats::summarize;
use depmig_workloads::unix_ms;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_CONNS: usize = 32;
const CHUNK: usize = 64 * 1024;

fn main() {
    let (name, r) = match Wlhttp::parse().command {
        WlhttpCommand::ServeStream { port } => ("serve-stream", serve(port, true)),
        WlhttpCommand::Serve { port } => ("serve", serve(port, false)),
        WlhttpCommand::Fetch { url, report_secs } => ("fetch", fetch(&url, report_secs)),
        WlhttpCommand::Probe {
            url,
            phase_file,
            out,
            interval_ms,
            timeout_ms,
            max_secs,
        } => (
            "probe",
            probe(
                &url,
                &phase_file,
                &out,
                Duration::from_millis(interval_ms),
                Duration::from_millis(timeout_ms.max(1)),
                Duration::from_secs(max_secs),
            ),
        ),
    };
    if let Err(e) = r {
        eprintln!("wlhttp {name}: {e}");
        std::process::exit(1);
    }
}

type Res<T> = Result<T, String>;

/// Reads a head (through the blank line) from `s`; returns it and any body bytes read after it.
fn read_head(s: &mut TcpStream) -> Res<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 2048];
    loop {
        if let Some(end) = head_end(&buf).map_err(|e| e.to_string())? {
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        let n = s.read(&mut tmp).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the head ended".into());
        }
        buf.extend_from_slice(tmp.get(..n).unwrap_or(&[]));
    }
}

fn serve(port: u16, stream_mode: bool) -> Res<()> {
    let l = TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("bind :{port}: {e}"))?;
    let live = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicU64::new(0));
    println!(
        "wlhttp: serving {} on :{port}",
        if stream_mode { "streams" } else { "requests" }
    );
    for c in l.incoming() {
        let Ok(mut c) = c else { continue };
        if live.load(Ordering::SeqCst) >= MAX_CONNS {
            let _ =
                c.write_all(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            continue;
        }
        live.fetch_add(1, Ordering::SeqCst);
        let (live, served) = (live.clone(), served.clone());
        std::thread::spawn(move || {
            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = c.set_nodelay(true);
            let r = handle(&mut c, stream_mode, &served);
            if let Err(e) = r {
                if stream_mode {
                    eprintln!("wlhttp: connection ended: {e}");
                }
            }
            live.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

fn handle(c: &mut TcpStream, stream_mode: bool, served: &AtomicU64) -> Res<()> {
    let (head, _) = read_head(c)?;
    let req = match parse_request(&head) {
        Ok(r) => r,
        Err(e) => {
            let _ = c.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return Err(e.to_string());
        }
    };
    if req.method != "GET" {
        let _ = c.write_all(
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return Ok(());
    }
    let n = served.fetch_add(1, Ordering::SeqCst);
    if !stream_mode {
        let body = format!("ok {n}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return c.write_all(resp.as_bytes()).map_err(|e| e.to_string());
    }
    if req.path != "/stream" {
        let _ = c
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return Ok(());
    }
    let limit: Option<u64> = query_param(&req.query, "bytes").and_then(|v| v.parse().ok());
    let head = match limit {
        Some(l) => format!("HTTP/1.1 200 OK\r\nContent-Length: {l}\r\nConnection: close\r\n\r\n"),
        None => "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_string(),
    };
    c.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    // 251 is prime and the chunk a multiple of neither, so keep a rolling offset.
    let mut off = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let left = limit.map_or(CHUNK as u64, |l| l.saturating_sub(off).min(CHUNK as u64)) as usize;
        if left == 0 {
            return Ok(());
        }
        let chunk = buf.get_mut(..left).unwrap_or(&mut []);
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = stream_byte(off + i as u64);
        }
        c.write_all(chunk).map_err(|e| e.to_string())?;
        off += left as u64;
    }
}

fn fetch(url: &Url, report_secs: u64) -> Res<()> {
    let secs = report_secs.max(1);
    let mut total = 0u64;
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        match fetch_once(url, secs, &mut total, attempt) {
            Ok(()) => {
                println!("httpdl: done bytes={total} unix_ms={}", unix_ms());
                return Ok(());
            }
            Err(e) => {
                println!(
                    "httpdl: ERROR attempt={attempt} {e} bytes={total} unix_ms={}",
                    unix_ms()
                );
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

fn fetch_once(url: &Url, secs: u64, total: &mut u64, attempt: u64) -> Res<()> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::V4(url.addr), Duration::from_secs(5))
        .map_err(|e| format!("connect {}: {e}", url.addr))?;
    // Wake up at least once per period so stalls are reported as zero rate.
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    s.write_all(http::get_request(url).as_bytes())
        .map_err(|e| e.to_string())?;
    let (head, first) = read_head(&mut s)?;
    let resp = parse_response(&head).map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(format!("status {}", resp.status));
    }
    println!(
        "httpdl: connected attempt={attempt} url={} unix_ms={}",
        url.target,
        unix_ms()
    );
    let mut off = 0u64;
    let check = |data: &[u8], off: &mut u64| -> Res<()> {
        for &b in data {
            if b != stream_byte(*off) {
                return Err(format!("CORRUPT stream byte at offset {off}"));
            }
            *off += 1;
        }
        Ok(())
    };
    check(&first, &mut off)?;
    *total += first.len() as u64;
    let mut buf = vec![0u8; CHUNK];
    let period = Duration::from_secs(secs);
    let mut last = Instant::now();
    let mut last_total = *total;
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => {
                return match resp.content_length {
                    Some(l) if off >= l => Ok(()),
                    _ => Err("server closed the stream".into()),
                }
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(e) => return Err(e.to_string()),
        };
        check(buf.get(..n).unwrap_or(&[]), &mut off)?;
        *total += n as u64;
        let el = last.elapsed();
        if el >= period {
            let kib_s = (*total - last_total) as f64 / 1024.0 / el.as_secs_f64();
            println!(
                "httpdl: bytes={} kib_s={kib_s:.0} unix_ms={}",
                *total,
                unix_ms()
            );
            last = Instant::now();
            last_total = *total;
        }
    }
}

fn probe(
    url: &Url,
    phase_file: &Path,
    out: &Path,
    interval: Duration,
    timeout: Duration,
    max: Duration,
) -> Res<()> {
    let started = Instant::now();
    let mut phases: Vec<Phase> = Vec::new();
    let mut last_ok = unix_ms();
    let mut longest_gap = 0u64;
    while started.elapsed() < max {
        let name = std::fs::read_to_string(phase_file)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "before".into());
        if name == "stop" {
            break;
        }
        let t0 = Instant::now();
        let r = probe_once(url, timeout);
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        let now = unix_ms();
        let idx = match phases.iter().position(|p| p.name == name) {
            Some(i) => i,
            None => {
                phases.push(Phase {
                    name,
                    lat: Vec::new(),
                    failures: 0,
                    longest_gap_ms: 0,
                });
                phases.len() - 1
            }
        };
        let Some(p) = phases.get_mut(idx) else { break };
        match r {
            Ok(()) => {
                let gap = now.saturating_sub(last_ok);
                p.longest_gap_ms = p.longest_gap_ms.max(gap);
                longest_gap = longest_gap.max(gap);
                last_ok = now;
                p.lat.push(ms);
            }
            Err(_) => p.failures += 1,
        }
        if let Some(rest) = interval.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let o = probe::report(
        &format!("http://{}{}", url.addr, url.target),
        interval,
        timeout,
        longest_gap,
        &phases,
    );
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = json::pretty(&o).map_err(|e| format!("writing the report: {e}"))?;
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))?;
    for p in &phases {
        let s = summarize(&p.lat);
        println!(
            "probe: phase={} ok={} failures={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
            p.name,
            p.lat.len(),
            p.failures,
            s.map_or(f64::NAN, |s| s.p50),
            s.map_or(f64::NAN, |s| s.p99),
            s.map_or(f64::NAN, |s| s.max)
        );
    }
    Ok(())
}

fn probe_once(url: &Url, timeout: Duration) -> Res<()> {
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&SocketAddr::V4(url.addr), timeout)
        .map_err(|e| e.to_string())?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
    s.write_all(http::get_request(url).as_bytes())
        .map_err(|e| e.to_string())?;
    let (head, body) = read_head(&mut s)?;
    let resp = parse_response(&head).map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(format!("status {}", resp.status));
    }
    let want = resp.content_length.unwrap_or(0);
    let mut got = body.len() as u64;
    let mut tmp = [0u8; 512];
    while got < want {
        let n = s.read(&mut tmp).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("short body".into());
        }
        got += n as u64;
    }
    Ok(())
}
