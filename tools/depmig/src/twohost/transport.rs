//! The transport command: how the source reaches the destination's dom0,
//! as `xl migrate` does it. By default `ssh HOST depmig receive`;
//! `--transport CMD` replaces `ssh`, split as a shell would split it (no
//! shell runs it), with HOST and the receiving command appended. The
//! child's stdin and stdout are the control channel; its stderr (the
//! destination's log) goes to this command's stderr.

use std::fmt;
use std::process::{Child, Command, Stdio};

use super::channel::Channel;

/// The transport when `--transport` is not given.
pub const DEFAULT_TRANSPORT: &str = "ssh";

/// What the transport runs on the destination host, after HOST.
pub const RECEIVE_COMMAND: [&str; 2] = ["depmig", "receive"];

/// Why the transport could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// --transport `<cmd>`: not a command line (unbalanced quotes, or empty)
    Unsplittable {
        /// The option's value.
        cmd: String,
    },
    /// cannot run `<program>`: `<reason>`
    Spawn {
        /// The program.
        program: String,
        /// The operating system's reason.
        reason: String,
    },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Unsplittable { cmd } => write!(
                f,
                "--transport `{cmd}`: not a command line (unbalanced quotes, or empty)"
            ),
            TransportError::Spawn { program, reason } => {
                write!(f, "cannot run {program}: {reason}")
            }
        }
    }
}

impl std::error::Error for TransportError {}

/// The argument vector: the transport split, HOST, then `extra` (the
/// receiving command).
pub fn argv(transport: &str, host: &str, extra: &[&str]) -> Result<Vec<String>, TransportError> {
    let mut v = shlex::split(transport)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| TransportError::Unsplittable {
            cmd: transport.to_string(),
        })?;
    v.push(host.to_string());
    v.extend(extra.iter().map(|s| (*s).to_string()));
    Ok(v)
}

/// Starts the transport to HOST; returns the child (to be waited for) and
/// the channel over its stdin and stdout.
pub fn start(transport: &str, host: &str) -> Result<(Child, Channel), TransportError> {
    let v = argv(transport, host, &RECEIVE_COMMAND)?;
    let (program, args) = v
        .split_first()
        .ok_or_else(|| TransportError::Unsplittable {
            cmd: transport.to_string(),
        })?;
    let spawn_error = |reason: String| TransportError::Spawn {
        program: program.clone(),
        reason,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| spawn_error(e.to_string()))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(spawn_error("no pipes to the child".into()));
    };
    Ok((child, Channel::new(stdout, stdin)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transport_is_split_like_a_shell_and_host_appended() {
        assert_eq!(
            argv(DEFAULT_TRANSPORT, "hostb", &RECEIVE_COMMAND).unwrap(),
            ["ssh", "hostb", "depmig", "receive"]
        );
        assert_eq!(
            argv(
                "ssh -o 'ServerAliveInterval 5' -l root",
                "10.77.0.2",
                &RECEIVE_COMMAND
            )
            .unwrap(),
            [
                "ssh",
                "-o",
                "ServerAliveInterval 5",
                "-l",
                "root",
                "10.77.0.2",
                "depmig",
                "receive"
            ]
        );
        for bad in ["", "   ", "ssh 'unclosed"] {
            assert_eq!(
                argv(bad, "h", &[]),
                Err(TransportError::Unsplittable { cmd: bad.into() })
            );
        }
    }

    #[test]
    fn a_transport_speaks_through_its_pipes() {
        // `sh -c 'cat' HOST depmig receive`: cat echoes each request back;
        // a request is not a reply, so it is refused as malformed.
        let (mut child, mut chan) = start("sh -c cat", "hostb").unwrap();
        let r = chan.ask(
            &super::super::protocol::Request::Status {},
            std::time::Duration::from_secs(10),
        );
        assert!(r.is_err(), "{r:?}");
        drop(chan);
        let _ = child.wait();
        assert!(matches!(
            start("/nonexistent/transport", "h"),
            Err(TransportError::Spawn { .. })
        ));
    }
}
