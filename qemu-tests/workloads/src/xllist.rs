//! Parsing `xl list` output and following a migrating domain's state, to time
//! the source's suspension and the destination's resumption from dom0.

/// One row of `xl list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Domain name.
    pub name: String,
    /// Domain id.
    pub id: u32,
    /// State flags, e.g. `-b----` (r running, b blocked, p paused, s shut down, c crashed, d dying).
    pub state: String,
}

impl Row {
    /// Whether state flag `f` is set.
    pub fn has(&self, f: char) -> bool {
        self.state.contains(f)
    }
}

/// Parses `xl list` output; the header and malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (name, id, state) = (f.first()?, f.get(1)?, f.get(4)?);
            let id = id.parse().ok()?;
            let ok = state.len() == 6 && state.chars().all(|c| "rbpscd-".contains(c));
            ok.then(|| Row {
                name: name.to_string(),
                id,
                state: state.to_string(),
            })
        })
        .collect()
}

/// What a watcher has seen of one migration (Unix ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watch {
    /// Id of the source domain.
    pub source: Option<u32>,
    /// Source first seen shut down (suspended).
    pub suspended_ms: Option<u64>,
    /// Destination first seen under the guest's name, neither paused nor shut down.
    pub resumed_ms: Option<u64>,
}

impl Watch {
    /// Takes one `xl list` snapshot made at `now_ms` for domain `name`.
    pub fn observe(&mut self, rows: &[Row], name: &str, now_ms: u64) {
        let Some(src) = self
            .source
            .or_else(|| rows.iter().find(|r| r.name == name).map(|r| r.id))
        else {
            return;
        };
        self.source = Some(src);
        if self.suspended_ms.is_none() && rows.iter().any(|r| r.id == src && r.has('s')) {
            self.suspended_ms = Some(now_ms);
        }
        if self.resumed_ms.is_none()
            && rows
                .iter()
                .any(|r| r.id != src && r.name == name && !r.has('p') && !r.has('s'))
        {
            self.resumed_ms = Some(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "Name                                        ID   Mem VCPUs\tState\tTime(s)\n";

    #[test]
    fn follows_a_migration() {
        let mut w = Watch::default();
        let snap = |s: &str| parse(&format!("{HEAD}Domain-0 0 1024 2 r----- 20.1\n{s}"));
        w.observe(&snap("guest 3 512 1 -b---- 5.0\n"), "guest", 1);
        assert_eq!(w.source, Some(3));
        w.observe(
            &snap("guest 3 512 1 -b---- 5.0\nguest--incoming 4 512 1 --p--- 0.0\n"),
            "guest",
            2,
        );
        w.observe(
            &snap("guest 3 512 1 ---s-- 6.0\nguest--incoming 4 512 1 --p--- 0.0\n"),
            "guest",
            3,
        );
        w.observe(
            &snap("guest--migratedaway 3 512 1 ---s-- 6.0\nguest 4 512 1 --p--- 0.0\n"),
            "guest",
            4,
        );
        assert_eq!(w.resumed_ms, None);
        w.observe(
            &snap("guest--migratedaway 3 512 1 ---s-- 6.0\nguest 4 512 1 -b---- 0.1\n"),
            "guest",
            5,
        );
        assert_eq!(
            w,
            Watch {
                source: Some(3),
                suspended_ms: Some(3),
                resumed_ms: Some(5)
            }
        );
    }

    #[test]
    fn skips_noise() {
        let rows = parse(
            "Name ID Mem VCPUs State Time(s)\nx y\n(null) 7 0 1 --ps-d 1.0\ng 2 1 1 weird! 1\n",
        );
        assert_eq!(
            rows,
            vec![Row {
                name: "(null)".into(),
                id: 7,
                state: "--ps-d".into()
            }]
        );
    }
}
