//! What can go wrong on a remote step ([`RemoteError`]), and reading ssh's own failures (its
//! exit status 255 and stderr) as a connection failure, an unknown or changed host key or a
//! refused login, each with what to fix.

use std::time::Duration;

/// Why a remote step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// The host could not be reached (after every attempt); the only kind worth retrying.
    #[error("cannot connect to {target}: {reason}{hint}")]
    Connect {
        /// Who was called (`user@host:port`, maybe with a description).
        target: String,
        /// ssh's message.
        reason: String,
        /// What to check, when the message suggests something (may be empty).
        hint: String,
    },
    /// The host key is unknown or changed.
    #[error("cannot log in to {target}: {problem} ({reason})")]
    HostKey {
        /// Who was called.
        target: String,
        /// What is wrong with the key and what to do.
        problem: String,
        /// ssh's message.
        reason: String,
    },
    /// The login was refused.
    #[error("{target} refused the login ({reason}): {fix}")]
    Auth {
        /// Who was called.
        target: String,
        /// ssh's message.
        reason: String,
        /// The options to check.
        fix: String,
    },
    /// A remote step did not finish in time (it was killed).
    #[error(
        "`{step}` on {target} did not finish within {} (command_timeout)",
        humantime::format_duration(*.limit)
    )]
    Timeout {
        /// Who was called.
        target: String,
        /// What was running (its first line).
        step: String,
        /// The limit.
        limit: Duration,
    },
    /// A remote command failed.
    #[error("{step} failed on {target}: {reason}")]
    Remote {
        /// Who was called.
        target: String,
        /// What was running.
        step: String,
        /// stderr and exit status.
        reason: String,
    },
    /// Something local failed (starting ssh, reading a file).
    #[error("{0}")]
    Local(String),
}

impl RemoteError {
    /// Whether trying again may help: only a failed connection.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RemoteError::Connect { .. })
    }
}

impl From<RemoteError> for covalent::executor::ExecutorError {
    fn from(e: RemoteError) -> Self {
        covalent::executor::ExecutorError::Failed(e.to_string())
    }
}

/// What the messages say about the target.
pub(crate) struct Wording<'a> {
    /// Who was called, for messages.
    pub target: &'a str,
    /// The prefix of option names in messages (`"ssh."` for a table named `ssh`).
    pub prefix: &'a str,
    /// The host and port for an `ssh-keyscan` example.
    pub host: &'a str,
    pub port: Option<u16>,
    /// Whether strict host-key checking is on.
    pub strict: bool,
}

/// Reads ssh's own failure (exit status 255); `None` for any other status (the remote
/// command's own, which ssh passes on).
pub(crate) fn classify(code: Option<i32>, stderr: &str, w: &Wording<'_>) -> Option<RemoteError> {
    if code != Some(255) {
        return None;
    }
    let reason = stderr.trim().to_string();
    let lower = reason.to_lowercase();
    let target = w.target.to_string();
    let p = w.prefix;
    if lower.contains("host key verification failed")
        || lower.contains("host key is known")
        || lower.contains("remote host identification has changed")
    {
        let problem = if w.strict {
            let port = w.port.map(|p| format!("-p {p} ")).unwrap_or_default();
            format!(
                "its host key is unknown or changed, and strict host-key checking is on: check the key, then add it to your known_hosts (e.g. `ssh-keyscan {port}{} >> ~/.ssh/known_hosts`) or set `{p}known_hosts` to a file that has it",
                w.host
            )
        } else {
            format!(
                "its host key has changed since it was recorded (`{p}strict_host_key_checking = false` accepts new keys, never changed ones): if the change is expected, replace its entry in your known_hosts"
            )
        };
        return Some(RemoteError::HostKey {
            target,
            problem,
            reason,
        });
    }
    let refused_login = lower.contains("permission denied (")
        || lower.contains("too many authentication failures")
        || (lower.contains("permission denied") && !lower.contains("connect to host"));
    if refused_login {
        return Some(RemoteError::Auth {
            target,
            reason,
            fix: format!("check `{p}username` and `{p}ssh_key_file`"),
        });
    }
    let hint = if lower.contains("could not resolve hostname") {
        format!(
            "; check `{p}hostname` (a host name, an address, or a Host alias of your ssh config)"
        )
    } else {
        String::new()
    };
    Some(RemoteError::Connect {
        target,
        reason: if reason.is_empty() {
            "the connection failed".into()
        } else {
            reason
        },
        hint,
    })
}

/// The first line of a script, shortened, to name a step in messages.
pub(crate) fn first_line(s: &str) -> String {
    s.trim()
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(80)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wording(strict: bool) -> Wording<'static> {
        Wording {
            target: "the login node me@h:2222",
            prefix: "ssh.",
            host: "h",
            port: Some(2222),
            strict,
        }
    }

    fn text(code: i32, stderr: &str, strict: bool) -> Option<String> {
        classify(Some(code), stderr, &wording(strict)).map(|e| e.to_string())
    }

    #[test]
    fn only_ssh_failures_are_classified() {
        assert!(text(1, "Permission denied (publickey).", true).is_none());
        assert!(classify(None, "", &wording(true)).is_none());
    }

    #[test]
    fn host_keys() {
        let e = text(255, "No ED25519 host key is known for [h]:2222 and you have requested strict checking.\r\nHost key verification failed.", true).unwrap();
        assert!(e.starts_with("cannot log in to the login node me@h:2222: its host key is unknown or changed, and strict host-key checking is on"), "{e}");
        assert!(
            e.contains("`ssh-keyscan -p 2222 h >> ~/.ssh/known_hosts`")
                && e.contains("`ssh.known_hosts`"),
            "{e}"
        );
        let e = text(
            255,
            "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@",
            false,
        )
        .unwrap();
        assert!(
            e.contains("has changed") && e.contains("`ssh.strict_host_key_checking = false`"),
            "{e}"
        );
    }

    #[test]
    fn refused_logins() {
        let e = classify(
            Some(255),
            "me@h: Permission denied (publickey).",
            &wording(true),
        )
        .unwrap();
        assert!(!e.is_retryable());
        let e = e.to_string();
        assert!(
            e.contains("refused the login")
                && e.contains("check `ssh.username` and `ssh.ssh_key_file`"),
            "{e}"
        );
        // macOS words an unreachable network this way: a connection failure.
        let e = classify(
            Some(255),
            "ssh: connect to host h port 22: Permission denied",
            &wording(true),
        )
        .unwrap();
        assert!(e.is_retryable(), "{e}");
    }

    #[test]
    fn connection_failures_are_retryable() {
        let e = classify(
            Some(255),
            "ssh: connect to host h port 1: Connection refused",
            &wording(true),
        )
        .unwrap();
        assert!(e.is_retryable());
        assert_eq!(
            e.to_string(),
            "cannot connect to the login node me@h:2222: ssh: connect to host h port 1: Connection refused"
        );
        let e = text(
            255,
            "ssh: Could not resolve hostname nope: Name or service not known",
            true,
        )
        .unwrap();
        assert!(e.contains("check `ssh.hostname`"), "{e}");
        assert_eq!(
            text(255, "", true).unwrap(),
            "cannot connect to the login node me@h:2222: the connection failed"
        );
    }

    #[test]
    fn time_outs_name_the_step_and_the_option() {
        let e = RemoteError::Timeout {
            target: "h".into(),
            step: first_line("  sleep 100\nmore"),
            limit: Duration::from_secs(90),
        };
        assert_eq!(
            e.to_string(),
            "`sleep 100` on h did not finish within 1m 30s (command_timeout)"
        );
    }
}
