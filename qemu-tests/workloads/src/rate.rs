//! A token bucket that holds a byte stream to a set rate, with a small burst
//! allowance, on a clock the caller supplies (nanoseconds).

/// Limits a stream to `rate` bytes per second.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: u64,
    burst: i128,
    /// Tokens in byte-nanoseconds-per-second units (bytes * 1e9), may go negative.
    tokens: i128,
    last_ns: u64,
}

const NS: i128 = 1_000_000_000;

impl Bucket {
    /// A bucket for `rate` bytes/s (0 = unlimited) allowing bursts of `burst` bytes,
    /// starting full at time `now_ns`.
    pub fn new(rate: u64, burst: u64, now_ns: u64) -> Self {
        let burst = i128::from(burst) * NS;
        Self {
            rate,
            burst,
            tokens: burst,
            last_ns: now_ns,
        }
    }

    /// Takes `n` bytes at `now_ns`; returns how many nanoseconds the caller
    /// must wait before sending them so the long-run rate holds.
    pub fn take(&mut self, n: u64, now_ns: u64) -> u64 {
        if self.rate == 0 {
            return 0;
        }
        let dt = i128::from(now_ns.saturating_sub(self.last_ns));
        self.last_ns = self.last_ns.max(now_ns);
        self.tokens = (self.tokens + dt * i128::from(self.rate)).min(self.burst);
        self.tokens -= i128::from(n) * NS;
        if self.tokens >= 0 {
            0
        } else {
            let wait = (-self.tokens + i128::from(self.rate) - 1) / i128::from(self.rate);
            u64::try_from(wait).unwrap_or(u64::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates a sender pushing `chunk`-byte writes as fast as allowed.
    fn simulate(rate: u64, burst: u64, chunk: u64, total: u64) -> u64 {
        let mut b = Bucket::new(rate, burst, 0);
        let mut now = 0u64;
        let mut sent = 0;
        while sent < total {
            now += b.take(chunk, now);
            sent += chunk;
        }
        now
    }

    #[test]
    fn long_run_rate_holds() {
        // 10 MB at 1 MB/s takes 10 s less the initial burst.
        let t = simulate(1_000_000, 65_536, 16_384, 10_000_000);
        let expect = (10_000_000u64 - 65_536) * 1_000;
        assert!(t.abs_diff(expect) < 20_000_000, "t={t} expect={expect}");
    }

    #[test]
    fn idle_time_does_not_bank_more_than_the_burst() {
        let mut b = Bucket::new(1_000, 1_000, 0);
        // After a long idle period only `burst` bytes pass without waiting.
        assert_eq!(b.take(1_000, 1_000_000_000_000), 0);
        assert_eq!(b.take(500, 1_000_000_000_000), 500_000_000);
    }

    #[test]
    fn unlimited_never_waits() {
        let mut b = Bucket::new(0, 0, 0);
        assert_eq!(b.take(u64::MAX, 0), 0);
    }
}

/// Parses a rate: plain bytes per second, or with a `K`/`M`/`G` suffix
/// (binary multiples), e.g. `4M` = 4 MiB/s. `0` means unlimited.
pub fn parse_rate(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (s.get(..i)?, 1u64 << 10),
        (i, 'm' | 'M') => (s.get(..i)?, 1 << 20),
        (i, 'g' | 'G') => (s.get(..i)?, 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod parse_tests {
    use super::parse_rate;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("4M"), Some(4 << 20));
        assert_eq!(parse_rate("512k"), Some(512 << 10));
        assert_eq!(parse_rate("1000"), Some(1000));
        assert_eq!(parse_rate("0"), Some(0));
        assert_eq!(parse_rate("M"), None);
        assert_eq!(parse_rate("-1"), None);
        assert_eq!(parse_rate("99999999999999G"), None);
        assert_eq!(parse_rate(""), None);
    }
}
