//! Whether the source's page encodings (LZ4, deltas) pay for themselves:
//! measured per window of pages, and switched off where they slow the move
//! down.
//!
//! On a slow link every byte saved is link time saved, and encoding runs
//! while the link drains what was already sent. On a link fast enough for
//! the appliance's CPU to be the bottleneck, the time spent compressing is
//! added to the move and the bytes saved buy nothing. The source cannot
//! know the link in advance, so it measures, per window of
//! [`WINDOW_PAGES`] pages with data:
//!
//! - `wall`: the window's time;
//! - `encode`: time spent encoding (compressing, computing deltas, keeping
//!   the delta cache), without the time spent handing bytes to the link;
//! - `wait`: time the sender waited for the link to take bytes (its send
//!   buffer full), as the transport reports it
//!   ([`crate::Transport::blocked_ns`]), or all the time spent sending when
//!   it does not;
//! - `raw` and `sent`: the bytes the window's records would take as Xen's
//!   PAGE_DATA, and the bytes they took;
//! - `drained` and `growth`: the bytes that left the send buffer during the
//!   window and how much its queue grew, when the transport tells its
//!   queue ([`crate::Transport::queued`]; otherwise the bytes handed to it
//!   and 0).
//!
//! From these it keeps three estimates: the link's time per byte, known
//! only from windows where the link was the bottleneck (the sender waited
//! on it for 1/16 of the window or more, or its queue grew by more than a
//! third of what left it and by more than 64 KiB), as `wall / drained`; encoding's time per page
//! and the share of bytes it leaves, known only from windows that encoded. Each
//! window's pages are then costed both ways, with the rest of the
//! window's CPU work (`wall - encode - wait`: reading pages, the MAC,
//! copying to the link) the same in both:
//!
//! ```text
//! encoded = max(cpu + encode_per_page * pages, link_per_byte * raw * share)
//! raw     = max(cpu,                          link_per_byte * raw)
//! ```
//!
//! **The rule.** Encodings go off when `raw` is at least 1/8 below
//! `encoded` and come back when `encoded` is at least 1/8 below `raw`
//! (hysteresis: the estimates are noisy, and a switch costs a window in
//! the worse mode when it is wrong). A link never waited on is taken as
//! free (time per byte 0): only sending raw shows whether it is fast
//! enough for the raw bytes. So the estimates are refreshed by trying:
//!
//! - while encodings are on and the link is not waited on for
//!   `forget_after` windows in a row (4 at first), the link estimate is
//!   dropped, which lets the rule try raw if encoding costs CPU; a raw
//!   window that then waits on the link brings the encodings back at the
//!   next decision and doubles `forget_after` (up to 64), so a link just
//!   too slow for raw is not tried at every turn;
//! - while they are off, a probe window of [`PROBE_PAGES`] pages is
//!   encoded after `probe_after` windows (16 at first, doubling up to 256
//!   each time the probe confirms "off"), to follow pages whose
//!   compressibility changed. A link that becomes the bottleneck needs no
//!   probe: a raw window that waits on it gives its time per byte at once.
//!
//! The first window and the window after every switch are short
//! ([`PROBE_PAGES`]) too: a migration starts encoded, a switch is a guess
//! until measured, and a wrong one should cost few pages. A short raw
//! window on a slow link shows as a queue that grows.
//!
//! With the encodings pinned ([`Adapt::new`] with `adaptive` false) the
//! figures are still measured and reported, and nothing switches.
//!
//! Arithmetic is checked or saturating, in integers; times are the
//! caller's clock in ns.

/// Pages with data per decision window.
pub const WINDOW_PAGES: u64 = 512;
/// Pages with data in a probe window (and in the first window).
pub const PROBE_PAGES: u64 = 32;

/// Windows of encodings on without waiting on the link before its
/// estimate is dropped, at first and at most.
const FORGET_FIRST: u32 = 4;
const FORGET_MAX: u32 = 64;
/// Windows off before a probe, at first and at most.
const PROBE_FIRST: u32 = 16;
const PROBE_MAX: u32 = 256;
/// Share of a window spent waiting for the link above which the link is
/// taken as the bottleneck: 1/16.
const WAITED_SHIFT: u32 = 4;
/// Growth of the send queue not taken as the link falling behind: TCP's
/// bytes in flight vary by about this much as its window opens.
const QUEUE_NOISE: u64 = 64 << 10;
/// Fixed-point unit of the share of bytes left by encoding.
const SHARE_ONE: u64 = 1 << 16;

/// The figures of one window (or of one round, summed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Pages with data sent.
    pub pages: u64,
    /// The window's time, ns.
    pub wall_ns: u64,
    /// Time spent encoding, ns.
    pub encode_ns: u64,
    /// Time spent waiting for the link, ns.
    pub wait_ns: u64,
    /// Bytes as Xen's PAGE_DATA.
    pub raw_bytes: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Bytes that left the send buffer (handed to it when unknown).
    pub drained_bytes: u64,
    /// Bytes the send buffer's queue grew by (0 when it shrank, or when
    /// unknown).
    pub queue_growth: u64,
}

impl Window {
    /// Adds `other`'s counts (not its time: windows are timed from their
    /// start by the caller).
    pub fn add(&mut self, other: &Window) {
        self.pages = self.pages.saturating_add(other.pages);
        self.wall_ns = self.wall_ns.saturating_add(other.wall_ns);
        self.encode_ns = self.encode_ns.saturating_add(other.encode_ns);
        self.wait_ns = self.wait_ns.saturating_add(other.wait_ns);
        self.raw_bytes = self.raw_bytes.saturating_add(other.raw_bytes);
        self.sent_bytes = self.sent_bytes.saturating_add(other.sent_bytes);
        self.drained_bytes = self.drained_bytes.saturating_add(other.drained_bytes);
        self.queue_growth = self.queue_growth.saturating_add(other.queue_growth);
    }

    /// Whether the link was the bottleneck: the sender waited on it for a
    /// noticeable share of the window, or it fell behind by more than a
    /// third of what it took and by more than [`QUEUE_NOISE`].
    fn link_bound(&self) -> bool {
        (self.wait_ns > 0 && self.wait_ns >= self.wall_ns >> WAITED_SHIFT)
            || (self.queue_growth > self.drained_bytes / 3 && self.queue_growth > QUEUE_NOISE)
    }
}

/// Why the encodings are in their state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// As the migration started: on.
    Start,
    /// Pinned on by configuration.
    Pinned,
    /// Raw was predicted faster: the CPU is the bottleneck (or the link
    /// was not seen to be, and raw is tried).
    Cpu,
    /// Encoded was predicted faster: the link is the bottleneck.
    Link,
    /// A probe window, encoded to refresh the estimates.
    Probe,
    /// The last decision kept the state.
    Kept,
}

impl Why {
    /// The name the report gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Start => "start",
            Why::Pinned => "pinned",
            Why::Cpu => "cpu",
            Why::Link => "link",
            Why::Probe => "probe",
            Why::Kept => "kept",
        }
    }
}

/// One decision, with the figures it was made on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Encodings on for the next window.
    pub on: bool,
    /// Why.
    pub why: Why,
    /// The window's time predicted encoded and raw, ns (`None` before
    /// both could be estimated).
    pub predicted_encoded_ns: Option<u64>,
    /// See `predicted_encoded_ns`.
    pub predicted_raw_ns: Option<u64>,
}

/// The controller; see the module documentation.
#[derive(Clone, Debug)]
pub struct Adapt {
    adaptive: bool,
    on: bool,
    /// The current window is short ([`PROBE_PAGES`]).
    probing: bool,
    /// The current window is a probe from off.
    probe: bool,
    /// Link time per byte, ps, when it was last the bottleneck.
    link_ps_per_byte: Option<u64>,
    /// Encoding time per page, ns, and the share of bytes it left (of
    /// [`SHARE_ONE`]), from the last window that encoded.
    encode_ns_per_page: Option<u64>,
    share: u64,
    quiet: u32,
    forget_after: u32,
    off_windows: u32,
    probe_after: u32,
    /// Windows since the last switch to off.
    since_off: u32,
    last: Decision,
}

impl Adapt {
    /// A controller for a migration whose encodings start on; with
    /// `adaptive` false it never switches them off.
    pub fn new(adaptive: bool) -> Adapt {
        Adapt {
            adaptive,
            on: true,
            probing: adaptive,
            probe: false,
            link_ps_per_byte: None,
            encode_ns_per_page: None,
            share: SHARE_ONE,
            quiet: 0,
            forget_after: FORGET_FIRST,
            off_windows: 0,
            probe_after: PROBE_FIRST,
            since_off: u32::MAX,
            last: Decision {
                on: true,
                why: if adaptive { Why::Start } else { Why::Pinned },
                predicted_encoded_ns: None,
                predicted_raw_ns: None,
            },
        }
    }

    /// Whether the encodings are on for the current window.
    pub fn on(&self) -> bool {
        self.on
    }

    /// Whether it may switch.
    pub fn adaptive(&self) -> bool {
        self.adaptive
    }

    /// Pages with data that end the current window.
    pub fn window_pages(&self) -> u64 {
        if self.probing {
            PROBE_PAGES
        } else {
            WINDOW_PAGES
        }
    }

    /// The last decision.
    pub fn last(&self) -> Decision {
        self.last
    }

    /// Takes a finished window's figures and decides the next window's
    /// state.
    pub fn decide(&mut self, w: &Window) -> Decision {
        self.learn(w);
        let (enc, raw) = self.predict(w);
        let was_probe = self.probe;
        let was_on = self.on;
        self.probing = false;
        self.probe = false;
        let mut why = Why::Kept;
        if self.adaptive {
            if let (Some(e), Some(r)) = (enc, raw) {
                if self.on && better(r, e) {
                    self.on = false;
                    why = Why::Cpu;
                    self.since_off = 0;
                    self.off_windows = 0;
                    if was_probe {
                        self.probe_after = self.probe_after.saturating_mul(2).min(PROBE_MAX);
                    }
                } else if !self.on && better(e, r) {
                    self.on = true;
                    why = Why::Link;
                    // Raw was tried and lost at once: try it less often.
                    if self.since_off == 0 {
                        self.forget_after = self.forget_after.saturating_mul(2).min(FORGET_MAX);
                    }
                    self.probe_after = PROBE_FIRST;
                }
            }
            if why == Why::Kept && !self.on {
                self.since_off = self.since_off.saturating_add(1);
                self.off_windows = self.off_windows.saturating_add(1);
                if self.off_windows >= self.probe_after {
                    self.off_windows = 0;
                    self.on = true;
                    self.probe = true;
                    why = Why::Probe;
                }
            }
        }
        // A switch is measured on a short window.
        if self.on != was_on {
            self.probing = true;
        }
        self.last = Decision {
            on: self.on,
            why: if self.adaptive { why } else { Why::Pinned },
            predicted_encoded_ns: enc,
            predicted_raw_ns: raw,
        };
        self.last
    }

    /// Updates the estimates from a window sent in the current state.
    fn learn(&mut self, w: &Window) {
        if w.drained_bytes > 0 {
            let per_byte = mul_div(w.wall_ns, 1000, w.drained_bytes);
            if w.link_bound() {
                self.link_ps_per_byte = Some(per_byte);
                self.quiet = 0;
            } else {
                // Not the bottleneck: the link took these bytes at least
                // this fast.
                self.link_ps_per_byte = self.link_ps_per_byte.map(|l| l.min(per_byte));
                if self.on {
                    self.quiet = self.quiet.saturating_add(1);
                    if self.quiet >= self.forget_after {
                        self.link_ps_per_byte = None;
                        self.quiet = 0;
                    }
                }
            }
        }
        if self.on && w.pages > 0 && w.raw_bytes > 0 {
            self.encode_ns_per_page = Some(w.encode_ns / w.pages);
            self.share = mul_div(w.sent_bytes, SHARE_ONE, w.raw_bytes).min(SHARE_ONE);
        }
    }

    /// The window's time encoded and raw, predicted.
    fn predict(&self, w: &Window) -> (Option<u64>, Option<u64>) {
        let Some(enc_per_page) = self.encode_ns_per_page else {
            return (None, None);
        };
        let cpu = w
            .wall_ns
            .saturating_sub(w.encode_ns)
            .saturating_sub(w.wait_ns);
        let link = self.link_ps_per_byte.unwrap_or(0);
        let raw_link = mul_div(w.raw_bytes, link, 1000);
        let enc_link = mul_div(raw_link, self.share, SHARE_ONE);
        let enc_cpu = cpu.saturating_add(enc_per_page.saturating_mul(w.pages));
        (Some(enc_cpu.max(enc_link)), Some(cpu.max(raw_link)))
    }
}

/// `a` is at least 1/8 below `b`.
fn better(a: u64, b: u64) -> bool {
    u128::from(a) * 8 < u128::from(b) * 7
}

/// `a * b / c`, saturating, 0 when `c` is 0.
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    if c == 0 {
        return 0;
    }
    u64::try_from(u128::from(a) * u128::from(b) / u128::from(c)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window of `pages` pages on a link of `link_ns` ns a page at raw
    /// size, with `cpu_ns` of other work and `enc_ns` of encoding a page
    /// that leaves a tenth of the bytes, sent `on` or raw, into a send
    /// buffer of 256 KiB empty at the start.
    fn window(on: bool, pages: u64, cpu_ns: u64, enc_ns: u64, link_ns: u64) -> Window {
        const BUF: u64 = 256 << 10;
        let raw = pages * 4096;
        let sent = if on { raw / 10 } else { raw };
        let encode = if on { enc_ns * pages } else { 0 };
        let work = cpu_ns * pages + encode;
        let link = link_ns * pages * sent / raw;
        // Bytes not drained when the work is done, without a buffer limit.
        let excess = sent.saturating_sub(sent * work / link.max(1));
        let (wall, growth) = if excess <= BUF {
            (work, excess)
        } else {
            // The sender waits until what is left fits the buffer.
            (link - BUF * link / sent, BUF)
        };
        Window {
            pages,
            wall_ns: wall,
            encode_ns: encode,
            wait_ns: wall - work,
            raw_bytes: raw,
            sent_bytes: sent,
            drained_bytes: sent - growth,
            queue_growth: growth,
        }
    }

    #[test]
    fn a_cpu_bound_window_turns_encodings_off_and_a_slow_link_keeps_them() {
        let mut a = Adapt::new(true);
        assert!(a.on());
        assert_eq!(a.window_pages(), PROBE_PAGES);
        // Fast link: 4 µs a raw page, 11 µs of CPU, 40 µs to encode.
        let d = a.decide(&window(true, 32, 11_000, 40_000, 4_000));
        assert_eq!((d.on, d.why), (false, Why::Cpu));
        assert!(d.predicted_raw_ns < d.predicted_encoded_ns);
        // Slow link: 400 µs a raw page. Encoded, the CPU is still the
        // bottleneck, so nothing shows the link's limit: raw is tried on a
        // short window, whose queue grows, and the encodings come back.
        let mut b = Adapt::new(true);
        let d = b.decide(&window(true, 32, 11_000, 40_000, 400_000));
        assert_eq!((d.on, d.why), (false, Why::Cpu));
        assert_eq!(b.window_pages(), PROBE_PAGES);
        let d = b.decide(&window(false, 32, 11_000, 40_000, 400_000));
        assert_eq!((d.on, d.why), (true, Why::Link));
        assert!(d.predicted_encoded_ns < d.predicted_raw_ns);
        // Tried again less and less often: after 8, 16, 32, 64 windows.
        let mut trials = 0;
        for _ in 0..100 {
            let on = b.on();
            let pages = b.window_pages();
            if !on {
                trials += 1;
                assert_eq!(pages, PROBE_PAGES);
            }
            b.decide(&window(on, pages, 11_000, 40_000, 400_000));
        }
        assert_eq!(trials, 3);
        // Where encoding leaves the link the bottleneck, it is never tried.
        let mut c = Adapt::new(true);
        for _ in 0..100 {
            assert!(c.decide(&window(true, 512, 11_000, 40_000, 4_000_000)).on);
        }
    }

    #[test]
    fn a_link_that_becomes_the_bottleneck_brings_them_back() {
        let mut a = Adapt::new(true);
        a.decide(&window(true, 32, 11_000, 40_000, 4_000));
        assert!(!a.on());
        assert!(!a.decide(&window(false, 512, 11_000, 40_000, 4_000)).on);
        let d = a.decide(&window(false, 512, 11_000, 40_000, 400_000));
        assert_eq!((d.on, d.why), (true, Why::Link));
    }

    #[test]
    fn off_probes_with_backoff_and_never_flaps_on_a_steady_link() {
        let mut a = Adapt::new(true);
        a.decide(&window(true, 32, 11_000, 40_000, 4_000));
        let mut probes = vec![];
        let mut switches = 0;
        for i in 0..400u32 {
            let on = a.on();
            let d = a.decide(&window(on, a.window_pages(), 11_000, 40_000, 4_000));
            if d.why == Why::Probe {
                probes.push(i);
            }
            if d.why == Why::Link {
                switches += 1;
            }
        }
        assert_eq!(switches, 0);
        // 16, then 32, 64, ... windows apart (each probe takes a window).
        assert_eq!(probes[..3], [15, 48, 113]);
    }

    #[test]
    fn a_link_that_becomes_fast_is_tried_raw_after_quiet_windows() {
        let mut a = Adapt::new(true);
        a.decide(&window(true, 32, 11_000, 40_000, 400_000));
        a.decide(&window(false, 32, 11_000, 40_000, 400_000));
        assert!(a.on());
        let mut n = 0;
        while a.on() && n < 10 {
            a.decide(&window(true, 512, 11_000, 40_000, 4_000));
            n += 1;
        }
        assert!(!a.on(), "still on after {n} quiet windows");
        // The first trial of raw failed (the link was slow then): tried
        // again after twice as many quiet windows.
        assert_eq!(n, 2 * FORGET_FIRST);
    }

    #[test]
    fn pinned_never_switches() {
        let mut a = Adapt::new(false);
        for _ in 0..50 {
            let d = a.decide(&window(true, 512, 11_000, 40_000, 4_000));
            assert_eq!((d.on, d.why), (true, Why::Pinned));
            assert!(d.predicted_raw_ns < d.predicted_encoded_ns);
        }
    }

    #[test]
    fn extreme_figures_do_not_overflow() {
        let mut a = Adapt::new(true);
        let w = Window {
            pages: u64::MAX,
            wall_ns: u64::MAX,
            encode_ns: u64::MAX,
            wait_ns: u64::MAX,
            raw_bytes: u64::MAX,
            sent_bytes: 1,
            drained_bytes: 1,
            queue_growth: u64::MAX,
        };
        a.decide(&w);
        a.decide(&Window::default());
        a.decide(&w);
    }
}
