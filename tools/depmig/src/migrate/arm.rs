//! Arming: the shell and the two appliances created, their configuration
//! written into xenstore, then started.

use std::fmt;
use std::path::PathBuf;

use depmig_control::addr::ipv4_text;
use depmig_control::keys::{self, in_domain};
use depmig_control::{Fault, Peer, Role, Verify};

use super::agent::needs_agent;
use super::domains::{xl_ok, XlError};
use super::Run;
use crate::toolstack::{Perm, ToolError, Toolstack};
use crate::xlcfg::{self, UnsafeValue, Vif};

/// Why a domain could not be created, configured or started.
#[derive(Debug)]
pub(super) enum ArmError {
    /// A domain could not be created or unpaused (`xl`'s message).
    Xl(XlError),
    /// A key, a permission or a config file could not be written (the
    /// toolstack's message).
    Tool(ToolError),
    /// An appliance's config could not be generated (the config writer's
    /// message).
    Config(UnsafeValue),
}

impl fmt::Display for ArmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArmError::Xl(e) => e.fmt(f),
            ArmError::Tool(e) => e.fmt(f),
            ArmError::Config(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ArmError {}

impl From<XlError> for ArmError {
    fn from(e: XlError) -> ArmError {
        ArmError::Xl(e)
    }
}

impl From<ToolError> for ArmError {
    fn from(e: ToolError) -> ArmError {
        ArmError::Tool(e)
    }
}

impl From<UnsafeValue> for ArmError {
    fn from(e: UnsafeValue) -> ArmError {
        ArmError::Config(e)
    }
}

/// The `verify` key's value for `--verify`.
fn verify_key(on: bool) -> &'static str {
    if on { Verify::On } else { Verify::Off }.as_str()
}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    /// Writes control keys ([`keys`]) readable (not writable) by the appliance.
    pub(super) fn write_keys(
        &mut self,
        domid: u32,
        keys: &[(&str, String)],
    ) -> Result<(), ToolError> {
        for (k, v) in keys {
            let path = in_domain(domid, k);
            self.ts.xs_write(&path, v)?;
            self.ts
                .xs_chmod(&path, &[Perm::None(0), Perm::Read(domid)])?;
        }
        Ok(())
    }

    /// The appliance may create its own nodes (state, round, result,
    /// report) in its `migrate/` directory; dom0's keys there stay read-only.
    pub(super) fn open_status_dir(&mut self, domid: u32) -> Result<(), ToolError> {
        let dir = in_domain(domid, keys::MIGRATE_DIR);
        self.ts.xs_chmod(&dir, &[Perm::None(0), Perm::Both(domid)])
    }

    /// Writes an appliance's xl config (with its network interface, if
    /// any) into the work directory; returns its path.
    pub(super) fn write_config(
        &mut self,
        name: &str,
        vif: Option<&Vif>,
    ) -> Result<PathBuf, ArmError> {
        let text =
            xlcfg::appliance_config(name, &self.o.appliance, self.o.appliance_memory_mib, vif)?;
        let path = self.ts.work_dir().join(format!("{name}.cfg"));
        self.ts.write_file(&path, text.as_bytes())?;
        Ok(path)
    }

    /// The appliance's network interface at `ip`, as the options say.
    pub(super) fn vif(&self, ip: std::net::Ipv4Addr) -> Vif {
        Vif {
            bridge: self.o.bridge.clone(),
            ip,
            rate: self.o.link_rate.clone(),
        }
    }

    /// Creates the shell and both appliances, arms them, starts them.
    pub(super) fn start(&mut self, key_hex: &str) -> Result<(), ArmError> {
        let (shell, dst, src) = self.create_domains()?;
        self.arm_destination(dst, shell, key_hex)?;
        let peer = Peer {
            ip: self.o.destination_ip.octets(),
            port: self.o.port,
        };
        self.arm_source(src, key_hex, peer)?;
        self.open_guest_nodes(src)?;
        self.go(dst, src)
    }

    /// Creates the shell (the guest's own config under another name) and
    /// both appliances, all paused; returns their ids (shell, destination,
    /// source), each noted as created as soon as it exists.
    fn create_domains(&mut self) -> Result<(u32, u32, u32), ArmError> {
        let o = self.o;
        self.say(&format!(
            "creating the shell {} from {}",
            self.shell_name,
            o.config.display()
        ));
        let shell_name = self.shell_name.clone();
        let shell =
            self.create_domain(&o.config, &[xlcfg::name_override(&shell_name)], &shell_name)?;
        self.created.shell = Some(shell);
        self.cli.shell_domid = shell;

        let dst_cfg =
            self.write_config(&self.dst_name.clone(), Some(&self.vif(o.destination_ip)))?;
        let src_cfg = self.write_config(&self.src_name.clone(), Some(&self.vif(o.source_ip)))?;
        self.say(&format!(
            "creating the destination appliance {}",
            self.dst_name
        ));
        let dst_name = self.dst_name.clone();
        let dst = self.create_domain(&dst_cfg, &[], &dst_name)?;
        self.created.dst = Some(dst);
        self.say(&format!("creating the source appliance {}", self.src_name));
        let src_name = self.src_name.clone();
        let src = self.create_domain(&src_cfg, &[], &src_name)?;
        self.created.src = Some(src);
        Ok((shell, dst, src))
    }

    /// The destination appliance's keys: where to listen, the shell to
    /// fill, the shared key.
    pub(super) fn arm_destination(
        &mut self,
        dst: u32,
        shell: u32,
        key_hex: &str,
    ) -> Result<(), ToolError> {
        let o = self.o;
        // --fault wrong-key: the destination gets the key with every bit of
        // its first byte flipped (still 64 hex digits, just not the source's).
        let dst_key = if o.fault == Some(Fault::WrongKey) {
            wrong_key(key_hex)
        } else {
            key_hex.to_string()
        };
        self.write_keys(
            dst,
            &[
                (keys::IP, ipv4_text(o.destination_ip.octets())),
                (keys::PREFIX, o.prefix.to_string()),
                (keys::ROLE, Role::Destination.as_str().into()),
                (keys::GUEST, shell.to_string()),
                (keys::PORT, o.port.to_string()),
                (keys::KEY, dst_key),
                (keys::MODE, o.mode.as_str().into()),
                (keys::POLICY, o.policy.as_str().into()),
                (keys::VERIFY, verify_key(o.verify).into()),
                (keys::COMPRESS, o.compress.as_str().into()),
                (keys::ENCRYPT, o.encrypt().as_str().into()),
                (keys::DELTA_CACHE, o.delta_cache.to_key()),
            ],
        )?;
        // A fault the destination appliance injects itself.
        if let Some(f) = o
            .fault
            .filter(|f| f.injected_by() == Some(Role::Destination))
        {
            self.write_keys(dst, &[(keys::FAULT, f.as_str().into())])?;
        }
        self.open_status_dir(dst)
    }

    /// The source appliance's keys: its peer (the destination appliance),
    /// the guest, the shared key, the bitmap route, and a test fault it
    /// injects itself.
    pub(super) fn arm_source(
        &mut self,
        src: u32,
        key_hex: &str,
        peer: Peer,
    ) -> Result<(), ToolError> {
        let o = self.o;
        self.write_keys(
            src,
            &[
                (keys::IP, ipv4_text(o.source_ip.octets())),
                (keys::PREFIX, o.prefix.to_string()),
                (keys::ROLE, Role::Source.as_str().into()),
                (keys::GUEST, self.guest_id.to_string()),
                (keys::PEER, peer.to_text()),
                (keys::KEY, key_hex.to_string()),
                (keys::MODE, o.mode.as_str().into()),
                (keys::POLICY, o.policy.as_str().into()),
                (keys::BITMAP_ROUTE, o.bitmap_route.as_str().into()),
                (keys::VERIFY, verify_key(o.verify).into()),
                (keys::COMPRESS, o.compress.as_str().into()),
                (keys::ENCRYPT, o.encrypt().as_str().into()),
                (keys::DELTA_CACHE, o.delta_cache.to_key()),
                (keys::ENCODINGS, o.encodings.as_str().into()),
                // dom0's answers on the dom0 bitmap route: dom0 owns the
                // node, so the appliance cannot forge one.
                (keys::BITMAP_REPLY, String::new()),
            ],
        )?;
        // The link rate the appliances' vifs are held to, for the report
        // (its `link_rate_bytes_per_s`); the source alone writes a report.
        if let Some(bps) = o
            .link_rate
            .as_deref()
            .and_then(crate::cli::link_rate_bytes_per_s)
        {
            self.write_keys(src, &[(keys::LINK_RATE, bps.to_string())])?;
        }
        // A fault the source appliance injects itself travels in its key;
        // dom0 injects wrong-key itself, the destination corrupt-page (above).
        if let Some(f) = o.fault.filter(|f| f.injected_by() == Some(Role::Source)) {
            self.write_keys(src, &[(keys::FAULT, f.as_str().into())])?;
        }
        if let Some(f) = o.fault {
            self.say(&format!("test fault {} injected on purpose", f.as_str()));
        }
        self.open_status_dir(src)
    }

    /// Opens the guest's nodes the source appliance needs: control/shutdown
    /// (it suspends the guest through the guest's own node; the guest stays
    /// its owner) and, in the modes with an oracle, the agent's keys.
    pub(super) fn open_guest_nodes(&mut self, src: u32) -> Result<(), ToolError> {
        let g = self.guest_id;
        self.ts.xs_chmod(
            &format!("/local/domain/{g}/control/shutdown"),
            &[Perm::None(g), Perm::Both(src)],
        )?;
        self.shutdown_opened = true;
        if needs_agent(self.o.mode) {
            self.open_agent_keys(src)?;
        }
        Ok(())
    }

    /// Starts both appliances and tells them to go: the destination first,
    /// so it listens before the source connects.
    fn go(&mut self, dst: u32, src: u32) -> Result<(), ArmError> {
        for (id, name) in [(dst, self.dst_name.clone()), (src, self.src_name.clone())] {
            xl_ok(self.ts, &["unpause", &id.to_string()], || {
                format!("xl unpause {name}")
            })?;
        }
        self.write_keys(dst, &[(keys::GO, keys::GO_VALUE.into())])?;
        self.write_keys(src, &[(keys::GO, keys::GO_VALUE.into())])?;
        self.cli.go_unix_ms = Some(self.ts.unix_ms());
        let route = self.ts.xenstore_route();
        let handoff = self.ts.domctl_route();
        let o = self.o;
        self.say(&format!(
            "armed: source appliance {src} -> destination appliance {dst} ({}:{}), mode {}, policy {}; xenstore through {route}; handoff by {handoff}; bitmap route {}; page verification {}; compress {}; encrypt {}; delta cache {} MiB; encodings {}",
            o.destination_ip,
            o.port,
            o.mode.as_str(),
            o.policy.as_str(),
            o.bitmap_route.as_str(),
            verify_key(o.verify),
            o.compress.as_str(),
            o.encrypt().as_str(),
            o.delta_cache.0,
            o.encodings.as_str()
        ));
        Ok(())
    }
}

/// `--fault wrong-key`'s key for the destination: the shared key with its
/// first hex digit changed (still 64 hex digits, just not the source's).
pub(super) fn wrong_key(key_hex: &str) -> String {
    let mut k = key_hex.as_bytes().to_vec();
    if let Some(c) = k.first_mut() {
        *c = if *c == b'0' { b'f' } else { b'0' };
    }
    String::from_utf8(k).unwrap_or_else(|_| key_hex.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arming's errors are the failed step's own message.
    #[test]
    fn messages_keep_their_text() {
        let xl = XlError::Failed {
            command: "xl unpause guest--depmig-dst".into(),
            reason: "boom".into(),
        };
        assert_eq!(
            ArmError::from(xl).to_string(),
            "xl unpause guest--depmig-dst: boom"
        );
        let e = ToolError::Xenstore {
            what: "write /x".into(),
            reason: "denied".into(),
        };
        assert_eq!(ArmError::from(e).to_string(), "xenstore write /x: denied");
        let v = UnsafeValue("a\"b".into());
        assert_eq!(ArmError::from(v.clone()).to_string(), v.to_string());
    }
}
