//! Domain states as `xl list` and the hypervisor report them.

/// A domain's state as `xl list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomState {
    /// Domain id.
    pub domid: u32,
    /// Paused (`p`).
    pub paused: bool,
    /// Shut down (`s`), with the reason letter: `-` poweroff, `r` reboot,
    /// `s` suspend, `c` crash, `w` watchdog, `S` soft reset.
    pub shutdown: Option<char>,
    /// Dying (`d`): being torn down, will never run again.
    pub dying: bool,
}

impl DomState {
    /// The state the hypervisor reported for `domid` (shutdown codes as
    /// `xl list` letters them: `-rscwS`; another code reads `?`).
    pub fn from_info(domid: u32, i: depmig_privcmd::Info) -> DomState {
        DomState {
            domid,
            paused: i.paused,
            shutdown: i
                .shutdown
                .map(|c| "-rscwS".chars().nth(usize::from(c)).unwrap_or('?')),
            dying: i.dying,
        }
    }

    /// Shut down for suspend.
    pub fn suspended(&self) -> bool {
        self.shutdown == Some('s')
    }

    /// Neither shut down nor dying (it may be paused).
    pub fn alive(&self) -> bool {
        self.shutdown.is_none() && !self.dying
    }
}

/// Reads the domain line of `xl list <domain>` output.
pub fn parse_xl_list(out: &str) -> Option<DomState> {
    let line = out.lines().skip(1).find(|l| !l.trim().is_empty())?;
    let f: Vec<&str> = line.split_whitespace().collect();
    // name id mem vcpus state time; the name may be "(null)" for a dying one.
    if f.len() < 6 {
        return None;
    }
    let state = *f.get(f.len() - 2)?;
    let domid: u32 = f.get(f.len() - 5)?.parse().ok()?;
    let c: Vec<char> = state.chars().collect();
    if c.len() != 6 {
        return None;
    }
    let flag = |i: usize, want: char| c.get(i).is_some_and(|x| *x == want);
    let shutdown = if flag(3, 's') {
        c.get(4).copied()
    } else {
        None
    };
    Some(DomState {
        domid,
        paused: flag(2, 'p'),
        shutdown,
        dying: flag(5, 'd'),
    })
}

/// Reads every domain line of `xl list` output.
pub fn parse_xl_list_all(out: &str) -> Vec<DomState> {
    out.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| parse_xl_list(&format!("header\n{l}")))
        .collect()
}
