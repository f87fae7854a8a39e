//! What a target's login shell is, learnt once per process and connection: ssh hands a remote
//! command to that shell, so our POSIX scripts go to it as they are when it is a POSIX shell
//! and through `sh -c` otherwise (csh, tcsh, fish, zsh, ...). Asking costs one round trip per
//! target; `sh -c` on every command would cost a shell start each time.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// The command that prints the login shell, valid in every shell family.
pub(crate) const PROBE: &str = "echo \"$SHELL\"";

static POSIX: LazyLock<Mutex<HashMap<String, bool>>> = LazyLock::new(Default::default);

/// Whether the login shell of this connection is known to be POSIX (`None`: not asked yet).
pub(crate) fn known(key: &str) -> Option<bool> {
    POSIX
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .copied()
}

/// Records what [`PROBE`] printed for this connection.
pub(crate) fn learn(key: &str, probe_output: &str) {
    POSIX
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_string(), is_posix(probe_output));
}

/// Whether a login shell (its path) runs POSIX scripts as they are.
fn is_posix(shell: &str) -> bool {
    let name = shell.trim().rsplit('/').next().unwrap_or("");
    matches!(
        name,
        "sh" | "bash" | "dash" | "ash" | "ksh" | "ksh93" | "mksh" | "yash" | "posh"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_shells_take_scripts_as_they_are() {
        for s in [
            "/bin/sh\n",
            "/bin/bash",
            "/usr/bin/dash",
            "/bin/ksh93",
            "ash",
        ] {
            assert!(is_posix(s), "{s}");
        }
        for s in [
            "/bin/csh",
            "/bin/tcsh\n",
            "/usr/bin/fish",
            "/bin/zsh",
            "",
            "/sbin/nologin",
        ] {
            assert!(!is_posix(s), "{s:?}");
        }
    }

    #[test]
    fn what_is_learnt_is_kept_per_connection() {
        assert_eq!(known("test-key-a"), None);
        learn("test-key-a", "/bin/tcsh\n");
        learn("test-key-b", "/bin/bash\n");
        assert_eq!(known("test-key-a"), Some(false));
        assert_eq!(known("test-key-b"), Some(true));
    }
}
