//! `depmig-bench`: prints throughput figures, each as a ratio to a plain
//! memcpy of the same number of bytes measured in the same run (best of
//! several repetitions, so a busy machine shows less noise).
//!
//! ```text
//! cargo run --release -p depmig-bench               # 1 Mi pages, 128 MiB stream
//! cargo run --release -p depmig-bench -- --quick    # tiny sizes (smoke)
//! cargo run --release -p depmig-bench -- --pages F  # codecs on F's pages
//! ```
//!
//! The page-compression figures run on synthetic pages (zero, text-like,
//! sparse, random and a mix); `--pages FILE` runs them on a real guest's
//! pages instead, those of a save file (the rig's `save-restore` scenario
//! saves one and runs this on it).

use std::hint::black_box;
use std::time::{Duration, Instant};

use depmig_precopy::DirtyBitmap;
use depmig_stream::delta;
use depmig_stream::packed::{compress_page, decompress_page, PageEncoding, COMPRESS_BOUND};
use depmig_stream::{
    Caps, Codec, Decoder, DomainHeader, DomainType, Encoder, Event, Hello, Limits, PfnEntry, Role,
    TranscriptMac, PAGE_SIZE,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn best<F: FnMut()>(reps: u32, mut f: F) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    best
}

fn memcpy_time(bytes: usize, reps: u32) -> Duration {
    let src: Vec<u8> = (0..bytes).map(|i| i as u8).collect();
    let mut dst = vec![0u8; bytes];
    best(reps, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn report(name: &str, t: Duration, base: Duration, bytes: usize, extra: &str) {
    let gbs = bytes as f64 / t.as_secs_f64() / 1e9;
    println!(
        "{name:<46} {:>10.1} us  {gbs:>7.2} GB/s  {:>6.2}x memcpy time  {extra}",
        t.as_secs_f64() * 1e6,
        t.as_secs_f64() / base.as_secs_f64()
    );
}

fn bitmaps(pages: u64, reps: u32) {
    let bytes = (pages / 8) as usize;
    println!(
        "== dirty bitmap over {pages} pages ({} KiB bitmap) ==",
        bytes / 1024
    );
    let base = memcpy_time(bytes, reps * 4);
    report(
        "memcpy of the bitmap's bytes",
        base,
        base,
        bytes,
        "(baseline)",
    );
    let mut rng = Rng(0x1234_5678);
    for density_pct in [1u64, 10, 50] {
        let mut dirty = DirtyBitmap::new(pages);
        let mut free = DirtyBitmap::new(pages);
        for p in 0..pages {
            if rng.next() % 100 < density_pct {
                dirty.set(p);
            }
            if rng.next() % 100 < 30 {
                free.set(p);
            }
        }
        let expect = dirty.count();
        let mut n = 0u64;
        let t = best(reps, || {
            let mut s = 0u64;
            n = 0;
            for p in black_box(&dirty).iter_ones() {
                s = s.wrapping_add(p);
                n += 1;
            }
            black_box(s);
        });
        assert_eq!(n, expect, "scan found every set bit");
        report(
            &format!("scan {density_pct}% dirty ({expect} set)"),
            t,
            base,
            bytes,
            &format!(
                "{:.2} ns/set bit",
                t.as_nanos() as f64 / expect.max(1) as f64
            ),
        );
        let t = best(reps, || {
            let mut s = 0u64;
            n = 0;
            black_box(&dirty).for_each_one(|p| {
                s = s.wrapping_add(p);
                n += 1;
            });
            black_box(s);
        });
        assert_eq!(n, expect, "for_each_one found every set bit");
        let per_bit = format!(
            "{:.2} ns/set bit",
            t.as_nanos() as f64 / expect.max(1) as f64
        );
        report(
            &format!("scan {density_pct}% dirty, for_each_one"),
            t,
            base,
            bytes,
            &per_bit,
        );
        // Page selection as the engine does it at the copy round: drop free
        // pages, then walk what is left into batches of 1024.
        let mut due = dirty.clone();
        let mut batch: Vec<u64> = Vec::with_capacity(1024);
        let mut sent = 0u64;
        let t = best(reps, || {
            due.copy_from(black_box(&dirty));
            due.and_not_with(black_box(&free));
            sent = 0;
            batch.clear();
            due.for_each_one(|p| {
                batch.push(p);
                if batch.len() == 1024 {
                    sent += black_box(&batch).len() as u64;
                    batch.clear();
                }
            });
            sent += batch.len() as u64;
        });
        let mut check = dirty.clone();
        check.and_not_with(&free);
        assert_eq!(sent, check.count());
        report(
            &format!("select {density_pct}% dirty minus free, batch"),
            t,
            base,
            bytes,
            &format!("{sent} selected"),
        );
    }
}

fn stream(mib: usize, reps: u32) {
    let pages = mib * 1024 * 1024 / PAGE_SIZE;
    let data_bytes = pages * PAGE_SIZE;
    println!("== PAGE_DATA over {mib} MiB ({pages} pages, batches of 1024) ==");
    let guest: Vec<u8> = (0..data_bytes)
        .map(|i| (i as u8) ^ ((i >> 12) as u8))
        .collect();
    let base = memcpy_time(data_bytes, reps);
    report(
        "memcpy of the page bytes",
        base,
        base,
        data_bytes,
        "(baseline)",
    );
    let dom = DomainHeader {
        domain_type: DomainType::X86Hvm,
        page_shift: 12,
        xen_major: 4,
        xen_minor: 17,
    };
    let mut out: Vec<u8> = Vec::with_capacity(data_bytes + data_bytes / 256 + 4096);
    let encode = |out: &mut Vec<u8>| {
        out.clear();
        let mut e = Encoder::new();
        e.headers(out, &dom).expect("headers");
        e.static_data_end(out).expect("static end");
        let mut entries = Vec::with_capacity(1024);
        let mut refs: Vec<&[u8]> = Vec::with_capacity(1024);
        for (b, chunk) in guest.chunks(1024 * PAGE_SIZE).enumerate() {
            entries.clear();
            refs.clear();
            for (i, pg) in chunk.chunks(PAGE_SIZE).enumerate() {
                entries.push(PfnEntry::normal((b * 1024 + i) as u64));
                refs.push(pg);
            }
            e.page_data(out, &entries, &refs).expect("page data");
        }
        e.hvm_context(out, &[0; 64]).expect("context");
        e.end(out).expect("end");
    };
    let t = best(reps, || encode(&mut out));
    report(
        "encode PAGE_DATA into a Vec",
        t,
        base,
        data_bytes,
        &format!("{} bytes out", out.len()),
    );

    let mut dest = vec![0u8; data_bytes];
    let t = best(reps, || {
        let mut dec = Decoder::new(Limits::default());
        for seg in out.chunks(64 * 1024) {
            let mut input = seg;
            while let Some(ev) = dec.next(&mut input).expect("valid stream") {
                if let Event::Page {
                    entry,
                    data: Some(d),
                } = ev
                {
                    let at = entry.pfn as usize * PAGE_SIZE;
                    dest[at..at + PAGE_SIZE].copy_from_slice(d);
                }
            }
        }
        assert!(dec.is_done());
    });
    assert!(dest == guest, "decoded pages equal the guest's");
    report(
        "decode (64 KiB segments) + copy to guest",
        t,
        base,
        data_bytes,
        "",
    );
}

/// The transcript tag over a stream of `mib` MiB, fed in 64 KiB segments
/// as the appliances do, against HMAC-SHA256 over the same bytes (the
/// handshake's tag before version 3) and memcpy. Run it under
/// `qemu-x86_64 -cpu qemu64` to see the appliance's emulated CPU, which
/// has no SHA instructions.
/// `--verify`'s page digest (XXH3-64 a page, then the range digest over
/// 512 frames' entries), as both appliances run it over the guest: its
/// throughput and ms per GiB beside memcpy and the Poly1305 tag.
fn page_digest(mib: usize, reps: u32) {
    use depmig_migrate::verify::{page_digest, range_digest, Class, Frame, RANGE_FRAMES};
    let bytes = mib * 1024 * 1024;
    println!("== page digest (--verify) over {mib} MiB ==");
    let data: Vec<u8> = (0..bytes).map(|i| (i as u8) ^ ((i >> 11) as u8)).collect();
    let base = memcpy_time(bytes, reps);
    report("memcpy", base, base, bytes, "(baseline)");
    let mut frames = Vec::with_capacity(RANGE_FRAMES as usize);
    let t = best(reps, || {
        let mut acc = 0u64;
        for (r, range) in data.chunks(RANGE_FRAMES as usize * PAGE_SIZE).enumerate() {
            frames.clear();
            frames.extend(range.chunks(PAGE_SIZE).map(|p| Frame {
                class: Class::Data,
                digest: page_digest(black_box(p)),
            }));
            acc ^= range_digest(r as u64 * RANGE_FRAMES, &frames);
        }
        black_box(acc);
    });
    let ms_per_gib = t.as_secs_f64() * 1e3 * (1u64 << 30) as f64 / bytes as f64;
    report(
        "XXH3-64 pages + range digests",
        t,
        base,
        bytes,
        &format!(
            "{:.0} MB/s, {ms_per_gib:.1} ms per GiB",
            bytes as f64 / t.as_secs_f64() / 1e6
        ),
    );
}

fn transcript(mib: usize, reps: u32) {
    let bytes = mib * 1024 * 1024;
    println!("== transcript tag over {mib} MiB (64 KiB updates) ==");
    let data: Vec<u8> = (0..bytes).map(|i| (i as u8) ^ ((i >> 9) as u8)).collect();
    let base = memcpy_time(bytes, reps);
    report("memcpy", base, base, bytes, "(baseline)");
    let key = [7u8; 32];
    let (s, d) = (
        Hello {
            role: Role::Source,
            nonce: [1; 16],
            verify: false,
            caps: Caps::NONE,
        },
        Hello {
            role: Role::Destination,
            nonce: [2; 16],
            verify: false,
            caps: Caps::NONE,
        },
    );
    let t = best(reps, || {
        let mut m = TranscriptMac::new(&key, &s, &d).expect("valid hellos");
        for seg in data.chunks(64 * 1024) {
            m.update(black_box(seg));
        }
        black_box(m.trailer());
    });
    report("Poly1305 transcript tag (v3)", t, base, bytes, "");
    let t = best(reps, || {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
        for seg in data.chunks(64 * 1024) {
            m.update(black_box(seg));
        }
        black_box(m.finalize().into_bytes());
    });
    report(
        "HMAC-SHA256 over the same bytes (v2's tag)",
        t,
        base,
        bytes,
        "",
    );
    sealing(&data, reps, base);
}

/// Milliseconds per GiB of stream for `t` over `bytes`.
fn ms_per_gib(t: Duration, bytes: usize) -> f64 {
    t.as_secs_f64() * 1e3 * (1u64 << 30) as f64 / bytes as f64
}

/// The stream's protection at each end, in clear (the transcript tag, as
/// the source's sink adds it) and sealed (ChaCha20-Poly1305 records, as
/// `--encrypt on` sends them), each as the ratio to the clear stream of
/// the same end in this process.
fn sealing(data: &[u8], reps: u32, base: Duration) {
    use depmig_stream::{Authenticated, ByteSink, Direction, Opener, Sealer};
    let bytes = data.len();
    println!("== sealed records (--encrypt on) over the same bytes (64 KiB writes) ==");
    let key = [7u8; 32];
    let (s, d) = (
        Hello {
            role: Role::Source,
            nonce: [1; 16],
            verify: false,
            caps: Caps::ENCRYPTED,
        },
        Hello {
            role: Role::Destination,
            nonce: [2; 16],
            verify: false,
            caps: Caps::ENCRYPTED,
        },
    );
    let mut wire = Vec::with_capacity(bytes + bytes / 1000 + 4096);
    let clear_send = best(reps, || {
        wire.clear();
        let mac = TranscriptMac::new(&key, &s, &d).expect("valid hellos");
        let mut out = Authenticated::new(&mut wire, mac);
        for seg in data.chunks(64 * 1024) {
            out.put(black_box(seg)).expect("a Vec takes all");
        }
        let (w, tail) = out.finish();
        w.extend_from_slice(&tail);
    });
    let clear_recv = best(reps, || {
        let mut m = TranscriptMac::new(&key, &s, &d).expect("valid hellos");
        for seg in wire.chunks(64 * 1024) {
            m.update(black_box(seg));
        }
        black_box(m.trailer());
    });
    let seal = best(reps, || {
        wire.clear();
        let sealer = Sealer::new(&key, &s, &d, Direction::SourceToDestination).expect("valid");
        let mut out = Authenticated::sealed(&mut wire, sealer);
        for seg in data.chunks(64 * 1024) {
            out.put(black_box(seg)).expect("a Vec takes all");
        }
        let (w, tail) = out.finish();
        w.extend_from_slice(&tail);
    });
    let overhead = wire.len() - bytes;
    let open = best(reps, || {
        let mut o = Opener::new(&key, &s, &d, Direction::SourceToDestination).expect("valid");
        let mut got = 0usize;
        for seg in wire.chunks(64 * 1024) {
            let mut input = seg;
            while o.open(&mut input).expect("authentic") {
                got += o.plaintext().len();
                let n = o.plaintext().len();
                o.consume(n);
            }
        }
        assert!(o.is_closed());
        assert_eq!(got, bytes);
    });
    for (name, t, plain) in [
        (
            "source, clear: copy + Poly1305 transcript tag",
            clear_send,
            clear_send,
        ),
        (
            "source, sealed: copy + ChaCha20-Poly1305 seal",
            seal,
            clear_send,
        ),
        (
            "destination, clear: Poly1305 transcript tag",
            clear_recv,
            clear_recv,
        ),
        (
            "destination, sealed: ChaCha20-Poly1305 open",
            open,
            clear_recv,
        ),
    ] {
        report(
            name,
            t,
            base,
            bytes,
            &format!(
                "{:>6.1} ms/GiB  {:>5.2}x the clear stream",
                ms_per_gib(t, bytes),
                t.as_secs_f64() / plain.as_secs_f64()
            ),
        );
    }
    println!(
        "record overhead: {overhead} bytes for {bytes} ({:.3} %; 24 bytes per 64 KiB record)",
        overhead as f64 * 100.0 / bytes as f64
    );
}

/// One kind of page for the compression figures, `n` of them.
fn sample_pages(kind: &str, n: usize, rng: &mut Rng) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "the ",
        "migration ",
        "page ",
        "of ",
        "guest ",
        "and ",
        "dirty ",
        "round ",
        "kernel ",
        "0x7f3a",
        "\n",
        "=",
    ];
    let mut out = Vec::with_capacity(n * PAGE_SIZE);
    for i in 0..n {
        let pick = match kind {
            "mixed" => ["zero", "text", "sparse", "random"][i % 4],
            k => k,
        };
        let mut p = vec![0u8; PAGE_SIZE];
        match pick {
            "zero" => {}
            "text" => {
                let mut at = 0;
                while at < PAGE_SIZE {
                    let w = WORDS[(rng.next() % WORDS.len() as u64) as usize].as_bytes();
                    let take = w.len().min(PAGE_SIZE - at);
                    p[at..at + take].copy_from_slice(&w[..take]);
                    at += take;
                }
            }
            // A page of pointers and counters among zeros, like a slab or
            // page-table page: one random word in eight.
            "sparse" => {
                for w in p.chunks_mut(8) {
                    if rng.next().is_multiple_of(8) {
                        w.copy_from_slice(
                            &(0xffff_8880_0000_0000 | (rng.next() & 0xfff_fff8)).to_le_bytes(),
                        );
                    }
                }
            }
            _ => {
                for w in p.chunks_mut(8) {
                    w.copy_from_slice(&rng.next().to_le_bytes());
                }
            }
        }
        out.extend_from_slice(&p);
    }
    out
}

fn mbs(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e6
}

/// LZ4 on pages: depmig's per-page encoding (zero check, LZ4, raw when it
/// does not shrink) and its decoding, beside memcpy, and LZ4 over a whole
/// 64-page record for comparison (the choice of per-page blocks).
fn compression(pages: usize, reps: u32) {
    println!("== page compression, {pages} pages per kind (MB/s of page data) ==");
    compression_header();
    let mut rng = Rng(0x5eed_cafe);
    for kind in ["zero", "text", "sparse", "random", "mixed"] {
        compression_row(kind, &sample_pages(kind, pages, &mut rng), reps);
    }
    // The encoder's whole path: packed records of 64 pages.
    let bytes = pages * PAGE_SIZE;
    let base = memcpy_time(bytes, reps);
    let data = sample_pages("mixed", pages, &mut rng);
    let entries: Vec<PfnEntry> = (0..pages as u64).map(PfnEntry::normal).collect();
    let refs: Vec<&[u8]> = data.chunks_exact(PAGE_SIZE).collect();
    for codec in [Codec::Raw, Codec::Lz4] {
        let mut out = Vec::with_capacity(bytes + bytes / 8);
        let t = best(reps, || {
            out.clear();
            let mut e = Encoder::new();
            e.set_codec(codec);
            e.headers(&mut out, &dom()).expect("headers");
            e.static_data_end(&mut out).expect("static data end");
            for (en, pg) in entries.chunks(64).zip(refs.chunks(64)) {
                e.page_data(&mut out, en, pg).expect("page record");
            }
        });
        report(
            &format!("encode mixed pages, codec {}", codec.as_str()),
            t,
            base,
            bytes,
            &format!("{} bytes on the wire", out.len()),
        );
    }
}

fn compression_header() {
    println!(
        "{:<8} {:>10} {:>10} {:>10} {:>7} {:>13} {:>10} {:>7}",
        "kind", "memcpy", "compress", "decomp.", "ratio", "lz4/raw/zero", "64p-block", "ratio"
    );
}

/// One row of the compression table: `data` (whole pages) encoded page by
/// page and decoded, against memcpy of as many bytes.
fn compression_row(kind: &str, data: &[u8], reps: u32) {
    let pages = data.len() / PAGE_SIZE;
    let bytes = pages * PAGE_SIZE;
    let base = memcpy_time(bytes, reps);
    let mut scratch = vec![0u8; COMPRESS_BOUND];
    // Per page, as the packed record does.
    let mut packed: Vec<(PageEncoding, Vec<u8>)> = Vec::with_capacity(pages);
    let tc = best(reps, || {
        packed.clear();
        for p in data.chunks_exact(PAGE_SIZE) {
            let d = compress_page(black_box(p), &mut scratch);
            let z = match d.encoding {
                PageEncoding::Lz4 => scratch[..usize::from(d.len)].to_vec(),
                _ => Vec::new(),
            };
            packed.push((d.encoding, z));
        }
    });
    let wire: usize = packed
        .iter()
        .map(|(e, z)| match e {
            PageEncoding::Raw => PAGE_SIZE + 4,
            PageEncoding::Lz4 => z.len() + 4,
            PageEncoding::Zero => 4,
        })
        .sum();
    let count = |k| packed.iter().filter(|(e, _)| *e == k).count();
    let mix = format!(
        "{}/{}/{}",
        count(PageEncoding::Lz4),
        count(PageEncoding::Raw),
        count(PageEncoding::Zero)
    );
    let mut page = vec![0u8; PAGE_SIZE];
    let td = best(reps, || {
        for ((e, z), p) in packed.iter().zip(data.chunks_exact(PAGE_SIZE)) {
            match e {
                PageEncoding::Lz4 => {
                    assert!(decompress_page(black_box(z), &mut page));
                }
                PageEncoding::Raw => page.copy_from_slice(p),
                PageEncoding::Zero => page.fill(0),
            }
            black_box(&mut page);
        }
    });
    // One LZ4 block over each 64-page record instead.
    let rec = 64 * PAGE_SIZE;
    let mut big = vec![0u8; lz4_flex::block::get_maximum_output_size(rec)];
    let mut block_bytes = 0usize;
    let tb = best(reps, || {
        block_bytes = 0;
        for r in data.chunks(rec) {
            let n = lz4_flex::block::compress_into(black_box(r), &mut big).unwrap_or(r.len());
            block_bytes += n.min(r.len());
        }
    });
    println!(
        "{kind:<8} {:>10.0} {:>10.0} {:>10.0} {:>7.3} {:>13} {:>10.0} {:>7.3}",
        mbs(bytes, base),
        mbs(bytes, tc),
        mbs(bytes, td),
        wire as f64 / bytes as f64,
        mix,
        mbs(bytes, tb),
        block_bytes as f64 / bytes as f64,
    );
}

/// Deltas of re-sent pages: encode (XOR runs against the page sent
/// before) and decode plus apply, beside memcpy, for pages with a few
/// changed bytes (8-byte words written here and there, as a kernel
/// dirties its pages) and with many (a quarter of the words).
fn deltas(pages: usize, reps: u32) {
    println!("== page deltas, {pages} pages per kind (MB/s of page data) ==");
    delta_header();
    let mut rng = Rng(0xde17_a5ed);
    let old = sample_pages("mixed", pages, &mut rng);
    for (kind, words) in [("few", 4usize), ("many", PAGE_SIZE / 8 / 4)] {
        let mut new = old.clone();
        for p in new.chunks_exact_mut(PAGE_SIZE) {
            for _ in 0..words {
                let at = (rng.next() as usize % (PAGE_SIZE / 8)) * 8;
                p[at..at + 8].copy_from_slice(&rng.next().to_le_bytes());
            }
        }
        delta_row(kind, &old, &new, reps);
    }
}

fn delta_header() {
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>7} {:>9}",
        "changes", "memcpy", "encode", "decode", "ratio", "deltas"
    );
}

/// One row of the delta table: each page of `new` encoded against the
/// page at the same place in `old` (whole pages, as long as `new`), then
/// decoded and applied.
fn delta_row(kind: &str, old: &[u8], new: &[u8], reps: u32) {
    let pages = new.len() / PAGE_SIZE;
    let bytes = pages * PAGE_SIZE;
    let base = memcpy_time(bytes, reps);
    let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(pages);
    let mut scratch = vec![0u8; delta::MAX_PAYLOAD];
    let te = best(reps, || {
        out.clear();
        for (n, o) in new.chunks_exact(PAGE_SIZE).zip(old.chunks_exact(PAGE_SIZE)) {
            let d = delta::encode(black_box(n), black_box(o), &mut scratch);
            out.push(d.map(|len| scratch[..len].to_vec()));
        }
    });
    // On the wire: a delta and its descriptor, or the raw page.
    let wire: usize = out
        .iter()
        .map(|d| d.as_ref().map_or(PAGE_SIZE, |d| d.len() + delta::DESC_LEN))
        .sum();
    let made = out.iter().filter(|d| d.is_some()).count();
    let mut mask = vec![0u8; PAGE_SIZE];
    let mut page = vec![0u8; PAGE_SIZE];
    let td = best(reps, || {
        for ((d, o), n) in out
            .iter()
            .zip(old.chunks_exact(PAGE_SIZE))
            .zip(new.chunks_exact(PAGE_SIZE))
        {
            match d {
                Some(d) => {
                    page.copy_from_slice(o);
                    assert!(delta::decode(black_box(d), &mut mask).is_ok());
                    delta::xor_into(&mut page, &mask);
                }
                None => page.copy_from_slice(n),
            }
            black_box(&mut page);
        }
    });
    println!(
        "{kind:<10} {:>10.0} {:>10.0} {:>10.0} {:>7.3} {:>9}",
        mbs(bytes, base),
        mbs(bytes, te),
        mbs(bytes, td),
        wire as f64 / bytes as f64,
        format!("{made}/{pages}"),
    );
}

/// The codecs on a real guest's pages: every page a save file (depmig
/// save's xl or libxc format, or any v2 stream) carries, in stream order,
/// and for deltas each page sent again against its copy sent before (the
/// pre-copy rounds a save file keeps).
fn saved_pages(path: &std::path::Path, reps: u32) -> Result<(), String> {
    use std::collections::HashMap;
    let file = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let head = &file[..file.len().min(depmig_stream::savefile::prefix_need(&file))];
    let prefix = depmig_stream::savefile::parse_prefix(head)
        .map_err(|e| format!("{}: not a save file: {e:?}", path.display()))?;
    let mut input = usize::try_from(prefix.libxc_offset)
        .ok()
        .and_then(|at| file.get(at..))
        .ok_or_else(|| format!("{}: the stream starts past the end", path.display()))?;
    let mut dec = Decoder::new(Limits {
        max_record_body: Limits::ABS_MAX_RECORD_BODY,
        ..Limits::default()
    });
    // Capped so that a large guest's file stays a benchmark, not a soak.
    const MAX_PAGES: usize = 1 << 16;
    let mut pages = Vec::new();
    let mut last: HashMap<u64, Vec<u8>> = HashMap::new();
    let (mut old, mut new) = (Vec::new(), Vec::new());
    let (mut records, mut with_data) = (0u64, 0u64);
    while !dec.is_done() {
        match dec.next(&mut input) {
            Ok(Some(Event::Page {
                entry,
                data: Some(data),
            })) => {
                with_data += 1;
                if pages.len() < MAX_PAGES * PAGE_SIZE {
                    pages.extend_from_slice(data);
                }
                if let Some(before) = last.get(&entry.pfn) {
                    if new.len() < MAX_PAGES * PAGE_SIZE {
                        old.extend_from_slice(before);
                        new.extend_from_slice(data);
                    }
                }
                last.insert(entry.pfn, data.to_vec());
            }
            Ok(Some(Event::PageData { .. })) => records += 1,
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("{}: the stream ends before END", path.display())),
            Err(e) => return Err(format!("{}: {e:?}", path.display())),
        }
    }
    println!(
        "== a real guest's pages: {} ({} page records, {} pages with data, {} distinct frames, {} sent again) ==",
        path.display(),
        records,
        with_data,
        last.len(),
        new.len() / PAGE_SIZE,
    );
    if pages.is_empty() {
        return Err(format!("{}: no page data", path.display()));
    }
    compression_header();
    compression_row("guest", &pages, reps);
    if !new.is_empty() {
        compression_row("resent", &new, reps);
        println!("deltas of the pages sent again, against their copy sent before:");
        delta_header();
        delta_row("resent", &old, &new, reps);
    }
    Ok(())
}

fn dom() -> DomainHeader {
    DomainHeader {
        domain_type: DomainType::X86Hvm,
        page_shift: 12,
        xen_major: 4,
        xen_minor: 17,
    }
}

/// depmig's benchmarks: each figure against memcpy in the same run.
#[derive(Debug, clap::Parser)]
#[command(name = "depmig-bench")]
struct Args {
    /// Tiny sizes and few repetitions: checks that everything runs (the
    /// figures mean little).
    #[arg(long)]
    quick: bool,
    /// Only the codec figures, on the pages of this save file (a real
    /// guest's memory, e.g. one `depmig save` wrote in the rig).
    #[arg(long, value_name = "FILE")]
    pages: Option<std::path::PathBuf>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let quick = args.quick;
    if let Some(path) = args.pages {
        if let Err(e) = saved_pages(&path, if quick { 2 } else { 5 }) {
            eprintln!("depmig-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let (pages, mib, reps) = if quick {
        (1 << 14, 4, 2)
    } else {
        (1 << 20, 128, 7)
    };
    println!(
        "depmig-bench ({}): best of {reps}",
        if quick { "quick" } else { "full" }
    );
    bitmaps(pages, reps * 3);
    stream(mib, reps);
    transcript(mib, reps);
    page_digest(mib, reps);
    compression(if quick { 256 } else { 8192 }, reps);
    deltas(if quick { 256 } else { 8192 }, reps);
}
