//! xl configs: reading the few facts needed from a guest's config, the extra
//! argument that renames the shell, and the appliances' generated configs.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

/// The FLASK label every depmig appliance runs under.
pub const APPLIANCE_LABEL: &str = "system_u:system_r:depmig_appliance_t";

/// What `depmig` needs to know from a guest's xl config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestConfig {
    /// `name = "..."`, if set.
    pub name: Option<String>,
    /// `memory = N` (MiB), if set.
    pub memory_mib: Option<u64>,
    /// `seclabel = "..."`, if set.
    pub seclabel: Option<String>,
    /// `type = "..."`, if set.
    pub guest_type: Option<String>,
    /// `builder = "..."` (xl's older way to ask for HVM), if set.
    pub builder: Option<String>,
}

/// What kind of domain a config makes, as xl reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestKind {
    /// `type = "pvh"`: what depmig moves.
    Pvh,
    /// `type = "pv"`, or neither `type` nor `builder = "hvm"` (xl's default).
    Pv,
    /// `type = "hvm"`, or `builder = "hvm"` without `type`.
    Hvm,
    /// A `type` xl does not know.
    Other(String),
}

impl GuestConfig {
    /// The kind of domain: `type` when set, else `builder`, else PV.
    pub fn kind(&self) -> GuestKind {
        match (self.guest_type.as_deref(), self.builder.as_deref()) {
            (Some("pvh"), _) => GuestKind::Pvh,
            (Some("pv"), _) => GuestKind::Pv,
            (Some("hvm"), _) | (None, Some("hvm")) => GuestKind::Hvm,
            (Some(t), _) => GuestKind::Other(t.to_string()),
            (None, _) => GuestKind::Pv,
        }
    }
}

impl fmt::Display for GuestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestKind::Pvh => f.write_str("PVH"),
            GuestKind::Pv => f.write_str("PV"),
            GuestKind::Hvm => f.write_str("HVM"),
            GuestKind::Other(t) => write!(f, "`{t}`"),
        }
    }
}

/// A guest config that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The file is not text.
    NotText,
    /// A setting's value is not what xl expects (line number, key).
    BadValue(usize, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotText => write!(f, "not a text file"),
            ConfigError::BadValue(line, key) => {
                write!(f, "line {line}: unexpected value for `{key}`")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Strips a `#` comment that is not inside a string.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return line.get(..i).unwrap_or(line),
            _ => {}
        }
    }
    line
}

fn unquote(v: &str) -> Option<&str> {
    let v = v.trim().trim_end_matches(';').trim();
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
}

/// Reads `name`, `memory`, `seclabel`, `type` and `builder` from an xl config. Other settings
/// (lists spanning lines included) are left to xl; a later assignment wins,
/// as in xl.
pub fn parse_guest_config(text: &[u8]) -> Result<GuestConfig, ConfigError> {
    let text = std::str::from_utf8(text).map_err(|_| ConfigError::NotText)?;
    let mut cfg = GuestConfig::default();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let Some((key, val)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let bad = || ConfigError::BadValue(n + 1, key.to_string());
        match key {
            "name" => cfg.name = Some(unquote(val).ok_or_else(bad)?.to_string()),
            "seclabel" => cfg.seclabel = Some(unquote(val).ok_or_else(bad)?.to_string()),
            "type" => cfg.guest_type = Some(unquote(val).ok_or_else(bad)?.to_string()),
            "builder" => cfg.builder = Some(unquote(val).ok_or_else(bad)?.to_string()),
            "memory" => {
                let v = val.trim().trim_end_matches(';').trim();
                cfg.memory_mib = Some(v.parse().map_err(|_| bad())?);
            }
            _ => {}
        }
    }
    Ok(cfg)
}

/// The extra `xl create` argument that gives the shell its own name; xl
/// appends such arguments to the config, and the last assignment wins.
pub fn name_override(name: &str) -> String {
    format!("name=\"{name}\"")
}

/// The MAC address of an appliance at `ip`: Xen's prefix 00:16:3e and the
/// address's last three octets, so each address has its own MAC.
pub fn appliance_mac(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("00:16:3e:{:02x}:{:02x}:{:02x}", o[1], o[2], o[3])
}

/// An appliance's network attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vif {
    /// Bridge to join.
    pub bridge: String,
    /// The appliance's address (the MAC is derived from it).
    pub ip: Ipv4Addr,
    /// xl rate limit, if any.
    pub rate: Option<String>,
}

/// A value that cannot be put into an xl config string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeValue(pub String);

impl fmt::Display for UnsafeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` cannot go into an xl config (quote, comma, backslash or control character)",
            self.0
        )
    }
}

impl std::error::Error for UnsafeValue {}

fn safe(v: &str) -> Result<&str, UnsafeValue> {
    if v.is_empty()
        || v.chars()
            .any(|c| c.is_control() || matches!(c, '"' | '\\' | ',' | '\''))
    {
        Err(UnsafeValue(v.to_string()))
    } else {
        Ok(v)
    }
}

/// The xl config of an appliance domain: PVH, the image as kernel, command
/// line `migrate`, the appliance label, at most one vif, kept when it
/// powers off or crashes (for its results and the post-mortem).
pub fn appliance_config(
    name: &str,
    image: &Path,
    memory_mib: u32,
    vif: Option<&Vif>,
) -> Result<String, UnsafeValue> {
    let image = image
        .to_str()
        .ok_or_else(|| UnsafeValue(image.display().to_string()))?;
    let mut cfg = format!(
        "name = \"{}\"\ntype = \"pvh\"\nkernel = \"{}\"\ncmdline = \"migrate\"\nmemory = {memory_mib}\nmaxmem = {memory_mib}\nvcpus = 1\nseclabel = \"{APPLIANCE_LABEL}\"\n",
        safe(name)?,
        safe(image)?,
    );
    // The appliance never migrates, and it reads the TSC for every clock
    // reading: let it run rdtsc natively. (Xen's default emulates rdtsc,
    // one exit per reading, on a host whose TSC it does not trust.)
    cfg.push_str("tsc_mode = \"native\"\n");
    if let Some(v) = vif {
        let mut spec = format!("bridge={},mac={}", safe(&v.bridge)?, appliance_mac(v.ip));
        if let Some(rate) = &v.rate {
            spec.push_str(&format!(",rate={}", safe(rate)?));
        }
        cfg.push_str(&format!("vif = [ \"{spec}\" ]\n"));
    }
    // Kept after it powers off: its xenstore home (state, result, report)
    // lives as long as the domain, and the result is written just before
    // the poweroff. depmig destroys it once it has read them.
    cfg.push_str("on_poweroff = \"preserve\"\non_reboot = \"preserve\"\non_crash = \"preserve\"\n");
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn reads_name_memory_and_label() {
        let text = b"# a guest\nname = \"guest\"  # its name\ntype = \"pvh\"\nmemory = 512\nmaxmem = 512\n\
            vif = [ \"bridge=xenbr0,mac=00:16:3e:77:00:0a\" ]\nseclabel = 'system_u:system_r:depmig_guest_t'\n\
            cmdline = \"console=hvc0 a=#b\"\nmemory=768;\n";
        let c = parse_guest_config(text).unwrap();
        assert_eq!(c.name.as_deref(), Some("guest"));
        assert_eq!(c.memory_mib, Some(768), "the later assignment wins");
        assert_eq!(c.kind(), GuestKind::Pvh);
        assert_eq!(
            c.seclabel.as_deref(),
            Some("system_u:system_r:depmig_guest_t")
        );
    }

    #[test]
    fn the_kind_of_guest_is_xls() {
        let kind = |t: &str| parse_guest_config(t.as_bytes()).unwrap().kind();
        assert_eq!(kind("type = 'pvh'\n"), GuestKind::Pvh);
        assert_eq!(kind("type = \"pv\"\n"), GuestKind::Pv);
        assert_eq!(kind("name = \"g\"\n"), GuestKind::Pv, "xl's default");
        assert_eq!(kind("type = \"hvm\"\n"), GuestKind::Hvm);
        assert_eq!(kind("builder = \"hvm\"\n"), GuestKind::Hvm);
        assert_eq!(kind("builder = \"hvm\"\ntype = \"pvh\"\n"), GuestKind::Pvh);
        assert_eq!(kind("type = \"pvhx\"\n"), GuestKind::Other("pvhx".into()));
        assert_eq!(kind("# type = \"pvh\"\n"), GuestKind::Pv);
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(
            parse_guest_config(b"memory = lots\n"),
            Err(ConfigError::BadValue(1, "memory".into()))
        );
        assert_eq!(
            parse_guest_config(b"\nname = guest\n"),
            Err(ConfigError::BadValue(2, "name".into()))
        );
        assert_eq!(parse_guest_config(&[0xff, 0xfe]), Err(ConfigError::NotText));
        assert_eq!(parse_guest_config(b"").unwrap(), GuestConfig::default());
    }

    #[test]
    fn shell_name_override_is_a_quoted_assignment() {
        assert_eq!(name_override("g--incoming"), "name=\"g--incoming\"");
    }

    #[test]
    fn appliance_config_has_every_required_setting() {
        let vif = Vif {
            bridge: "xenbr0".into(),
            ip: Ipv4Addr::new(10, 77, 0, 21),
            rate: Some("40Mb/s".into()),
        };
        let c = appliance_config(
            "g--src",
            &PathBuf::from("/scenario/depmig-appliance"),
            64,
            Some(&vif),
        )
        .unwrap();
        let lines: Vec<&str> = c.lines().collect();
        for want in [
            "name = \"g--src\"",
            "type = \"pvh\"",
            "kernel = \"/scenario/depmig-appliance\"",
            "cmdline = \"migrate\"",
            "memory = 64",
            "seclabel = \"system_u:system_r:depmig_appliance_t\"",
            "vif = [ \"bridge=xenbr0,mac=00:16:3e:4d:00:15,rate=40Mb/s\" ]",
            "on_poweroff = \"preserve\"",
            "on_crash = \"preserve\"",
            "tsc_mode = \"native\"",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{c}");
        }
        // The generated config reads back as what it says.
        let back = parse_guest_config(c.as_bytes()).unwrap();
        assert_eq!(back.name.as_deref(), Some("g--src"));
        assert_eq!(back.memory_mib, Some(64));
        assert_eq!(back.seclabel.as_deref(), Some(APPLIANCE_LABEL));

        let no_net = appliance_config("g--resume", &PathBuf::from("/a"), 32, None).unwrap();
        assert!(!no_net.contains("vif"), "{no_net}");
    }

    #[test]
    fn refuses_values_that_would_break_the_config() {
        let vif = |rate: &str| Vif {
            bridge: "xenbr0".into(),
            ip: Ipv4Addr::new(10, 0, 0, 1),
            rate: Some(rate.into()),
        };
        assert!(appliance_config("a", &PathBuf::from("/x\"y"), 64, None).is_err());
        assert!(appliance_config("a", &PathBuf::from("/x\ny"), 64, None).is_err());
        assert!(appliance_config(
            "a",
            &PathBuf::from("/x"),
            64,
            Some(&vif("1Mb/s,script=/bin/evil"))
        )
        .is_err());
        assert!(appliance_config("a", &PathBuf::from("/x"), 64, Some(&vif("1Mb/s"))).is_ok());
    }

    #[test]
    fn macs_differ_per_address() {
        assert_eq!(
            appliance_mac(Ipv4Addr::new(10, 77, 0, 22)),
            "00:16:3e:4d:00:16"
        );
        assert_ne!(
            appliance_mac(Ipv4Addr::new(10, 77, 0, 21)),
            appliance_mac(Ipv4Addr::new(10, 77, 0, 22))
        );
    }
}
