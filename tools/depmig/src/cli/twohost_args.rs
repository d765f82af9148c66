//! The options of the two-host commands: `depmig receive` (run on the
//! destination by the transport) and `depmig recover`.

use std::path::PathBuf;

use clap::Args;

use super::values::{self, check, DOMAIN_NAME};

/// What a host may be called: a name or an address for the transport
/// (`user@` allowed, as ssh takes it); never an option.
pub const HOST: &str = "a host name or address (letters, digits, . _ - : @ [ ]; at most 255)";

/// Everything `depmig receive` was asked to do; every path and the bridge
/// are this host's own, never the source's to choose.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ReceiveArgs {
    /// the depmig appliance image (PVH ELF) on this host
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "/usr/lib/depmig/depmig-appliance"
    )]
    pub appliance: PathBuf,
    /// bridge the destination appliance's vif joins
    #[arg(long, value_name = "NAME", default_value = "xenbr0",
          value_parser = check("--bridge", "an interface name (letters, digits, . _ -; at most 15)",
                               values::bridge))]
    pub bridge: String,
    /// where the guest's config (as the source sent it)
    /// and the appliance's config go
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/tmp/depmig",
        verbatim_doc_comment
    )]
    pub work_dir: PathBuf,
}

/// Everything `depmig recover` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RecoverArgs {
    /// the guest left suspended by `depmig migrate GUEST HOST`
    #[arg(value_name = "guest",
          value_parser = check("<guest>", DOMAIN_NAME, values::domain_name))]
    pub guest: String,
    /// the host it was migrated to
    #[arg(value_name = "HOST", value_parser = check("<HOST>", HOST, values::host))]
    pub host: String,
    /// the command that reaches HOST's dom0, as for
    /// `depmig migrate` [default: ssh]
    #[arg(long, value_name = "CMD", verbatim_doc_comment)]
    pub transport: Option<String>,
    /// the depmig appliance image (a resume appliance
    /// resumes the guest if HOST does not run it)
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "/usr/lib/depmig/depmig-appliance",
        verbatim_doc_comment
    )]
    pub appliance: PathBuf,
    /// where the resume appliance's config goes
    #[arg(long, value_name = "DIR", default_value = "/tmp/depmig")]
    pub work_dir: PathBuf,
}
