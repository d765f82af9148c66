//! The options of `depmig save` and `depmig restore`. A save is a
//! migration whose destination is dom0 itself and a restore one whose
//! source is dom0: the options the appliances need are spelt as
//! `depmig migrate`'s, and the run takes its checked [`MigrateOptions`]
//! ([`SaveArgs::migrate_options`], [`RestoreArgs::migrate_options`]).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::Args;
use depmig_control::bitmap_route::Route;
use depmig_control::Policy;

use super::values::{self, check, number, DOMAIN_NAME};
use super::{parse_args, Command, MigrateOptions, UsageError};

/// The save file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// xl's save file (xl header with the guest's config, libxl stream
    /// around the libxc stream): what stock `xl restore` reads.
    Xl,
    /// The libxc stream alone.
    Libxc,
}

impl SaveFormat {
    fn parse(v: &str) -> Option<SaveFormat> {
        match v {
            "xl" => Some(SaveFormat::Xl),
            "libxc" => Some(SaveFormat::Libxc),
            _ => None,
        }
    }
}

/// Everything `depmig save` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SaveArgs {
    /// name of the running guest domain
    #[arg(value_name = "guest",
          value_parser = check("<guest>", DOMAIN_NAME, values::domain_name))]
    pub guest: String,
    /// the save file to write (refused if it exists)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// the guest's xl config (checked as for a migration;
    /// carried in the file in xl format) (required)
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    pub config: PathBuf,
    /// xl | libxc: xl's own save-file format, as `xl save`
    /// writes it, or the bare libxc stream
    #[arg(long, value_name = "FORMAT", default_value = "xl", verbatim_doc_comment,
          value_parser = check("--format", "xl or libxc", SaveFormat::parse))]
    pub format: SaveFormat,
    /// dom0's address on the appliances' bridge, where it
    /// listens for the source appliance [default: the
    /// bridge's first IPv4 address]
    #[arg(long = "dom0-ip", value_name = "IP", verbatim_doc_comment,
          value_parser = check("--dom0-ip", "an IPv4 address", |v| v.parse::<Ipv4Addr>().ok()))]
    pub dom0_ip: Option<Ipv4Addr>,
    /// TCP port dom0 listens on
    #[arg(long, value_name = "N", default_value = "7100",
          value_parser = number("--port", "a TCP port, 1 to 65535", 1..=u16::MAX))]
    pub port: u16,
    /// when pre-copy stops, as for `depmig migrate`
    /// (xen-3.3 | xen-4 | adaptive)
    #[arg(long, value_name = "POLICY", verbatim_doc_comment,
          default_value = Policy::DEFAULT.as_str(),
          value_parser = check("--policy", "xen-3.3, xen-4 or adaptive", |v| Policy::parse(v).ok()))]
    pub policy: Policy,
    /// seconds until the save must be complete
    #[arg(long = "timeout", value_name = "S", default_value = "1800",
          value_parser = number("--timeout", "whole seconds, 1 to 86400", 1..=86_400u64))]
    pub timeout_s: u64,
    /// auto | direct | dom0, as for `depmig migrate`
    #[arg(long, value_name = "ROUTE", default_value = Route::Auto.as_str(),
          value_parser = check("--bitmap-route", "auto, direct or dom0",
                               |v| Route::parse(v).ok().filter(|_| !v.is_empty())))]
    pub bitmap_route: Route,
    /// the depmig appliance image (PVH ELF)
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "/usr/lib/depmig/depmig-appliance"
    )]
    pub appliance: PathBuf,
    /// memory of the source appliance
    #[arg(long = "appliance-memory", value_name = "MIB", default_value = "64",
          value_parser = number("--appliance-memory", "MiB, 16 to 4096", 16..=4096u32))]
    pub appliance_memory_mib: u32,
    /// source appliance's address
    #[arg(long, value_name = "IP", default_value = "10.77.0.21",
          value_parser = check("--source-ip", "an IPv4 address", |v| v.parse::<Ipv4Addr>().ok()))]
    pub source_ip: Ipv4Addr,
    /// prefix length of the appliance's address
    #[arg(long, value_name = "N", default_value = "24",
          value_parser = number("--prefix", "a prefix length, 1 to 30", 1..=30u8))]
    pub prefix: u8,
    /// bridge the appliance's vif joins
    #[arg(long, value_name = "NAME", default_value = "xenbr0",
          value_parser = check("--bridge", "an interface name (letters, digits, . _ -; at most 15)",
                               values::bridge))]
    pub bridge: String,
    /// where the generated xl configs go
    #[arg(long, value_name = "DIR", default_value = "/tmp/depmig")]
    pub work_dir: PathBuf,
    /// the source appliance's JSON report
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

impl SaveArgs {
    /// The migration a save is: to dom0 at `dom0_ip`, baseline, nothing
    /// negotiated (no codec, no deltas, no sealing, no verification: the
    /// file holds Xen's stream alone).
    pub fn migrate_options(&self, dom0_ip: Ipv4Addr) -> Result<MigrateOptions, UsageError> {
        let s = |p: &PathBuf| p.display().to_string();
        let (config, appliance, work_dir) =
            (s(&self.config), s(&self.appliance), s(&self.work_dir));
        let (port, prefix, timeout) = (
            self.port.to_string(),
            self.prefix.to_string(),
            self.timeout_s.to_string(),
        );
        let (mem, src_ip, dst_ip) = (
            self.appliance_memory_mib.to_string(),
            self.source_ip.to_string(),
            dom0_ip.to_string(),
        );
        let mut args: Vec<&str> = vec![
            "migrate",
            &self.guest,
            "--config",
            &config,
            "--appliance",
            &appliance,
            "--work-dir",
            &work_dir,
            "--bridge",
            &self.bridge,
            "--mode",
            "baseline",
            "--policy",
            self.policy.as_str(),
            "--bitmap-route",
            self.bitmap_route.as_str(),
            "--timeout",
            &timeout,
            "--compress",
            "none",
            "--encrypt",
            "off",
            "--delta-cache",
            "0",
            "--source-ip",
            &src_ip,
            "--destination-ip",
            &dst_ip,
            "--prefix",
            &prefix,
            "--port",
            &port,
            "--appliance-memory",
            &mem,
        ];
        let report = self.report.as_ref().map(s);
        if let Some(r) = &report {
            args.extend(["--report", r]);
        }
        match parse_args(&args)? {
            Command::Migrate(o) => Ok(*o),
            _ => Err(UsageError::Other("not a migration".into())),
        }
    }
}

/// Everything `depmig restore` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RestoreArgs {
    /// the save file (xl.s format, as `depmig save` writes
    /// it by default, or a bare libxc stream); read through
    /// with the strict decoder before anything is created
    #[arg(value_name = "FILE", verbatim_doc_comment)]
    pub file: PathBuf,
    /// the guest's xl config; the paused shell is created
    /// from it [default: the config an xl-format FILE
    /// carries, if it is xl config text]
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    pub config: Option<PathBuf>,
    /// the depmig appliance image (PVH ELF)
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "/usr/lib/depmig/depmig-appliance"
    )]
    pub appliance: PathBuf,
    /// memory of the destination appliance
    #[arg(long = "appliance-memory", value_name = "MIB", default_value = "64",
          value_parser = number("--appliance-memory", "MiB, 16 to 4096", 16..=4096u32))]
    pub appliance_memory_mib: u32,
    /// destination appliance's address (dom0 connects to it)
    #[arg(long, value_name = "IP", default_value = "10.77.0.22",
          value_parser = check("--destination-ip", "an IPv4 address",
                               |v| v.parse::<Ipv4Addr>().ok()))]
    pub destination_ip: Ipv4Addr,
    /// prefix length of the appliance's address
    #[arg(long, value_name = "N", default_value = "24",
          value_parser = number("--prefix", "a prefix length, 1 to 30", 1..=30u8))]
    pub prefix: u8,
    /// TCP port the destination appliance listens on
    #[arg(long, value_name = "N", default_value = "7100",
          value_parser = number("--port", "a TCP port, 1 to 65535", 1..=u16::MAX))]
    pub port: u16,
    /// bridge the appliance's vif joins
    #[arg(long, value_name = "NAME", default_value = "xenbr0",
          value_parser = check("--bridge", "an interface name (letters, digits, . _ -; at most 15)",
                               values::bridge))]
    pub bridge: String,
    /// seconds until the guest must have been restored
    #[arg(long = "timeout", value_name = "S", default_value = "1800",
          value_parser = number("--timeout", "whole seconds, 1 to 86400", 1..=86_400u64))]
    pub timeout_s: u64,
    /// where the generated xl configs go
    #[arg(long, value_name = "DIR", default_value = "/tmp/depmig")]
    pub work_dir: PathBuf,
}
