//! The remote transport shared by covalent's `ssh` and `slurm` executors: how to reach a host
//! over SSH ([`SshOptions`], one set of option names for both), a [`Session`] that runs POSIX
//! shell scripts there through the system `ssh` (one shared `ControlMaster` connection per
//! target, a time limit on every command, the command killed on time-out and on drop), the
//! classification of what went wrong ([`RemoteError`], saying what to fix), binary staging by
//! content hash ([`Session::stage_binary`]) and shell quoting ([`shell_quote`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), covalent_remote::RemoteError> {
//! use std::time::Duration;
//! use covalent_remote::{Input, Session, SshOptions};
//!
//! let mut target = SshOptions::new("login.cluster.example");
//! target.username = Some("me".into());
//! let session = Session::new(&target)?;
//! let reply = session.run("uname -a", Input::None, Duration::from_secs(30)).await?;
//! println!("{}", reply.stdout_text());
//! # Ok(()) }
//! ```
//!
//! Why this drives `ssh` itself instead of using the `openssh` crate (0.11): that crate has no
//! way to pass arbitrary `-o` options (our `options`, e.g. `ProxyCommand=...` or
//! `IdentityAgent=...`; only `ProxyJump` through `jump_hosts`), nor `ServerAliveCountMax` or
//! `LogLevel`; it reports every failed connection as one `io::Error` whose kind does not tell
//! an unknown or changed host key from other aborts, so the stderr text would still have to be
//! read here; its master lives as long as its `Session` value (one per value, torn down on
//! drop, never shared with other processes), so sharing one connection per target across
//! executor instances and reconnecting after a lost master would be ours to write, whereas
//! `ControlMaster=auto` with `ControlPersist` gives both, with ssh re-creating a dead master on
//! the next command; after a lost connection it cannot tell a disconnect from a remote process
//! that died (its own documentation says so), which the ssh executor's reconnect-and-poll needs
//! (a plain `ssh` client exits 255 on its own failures); and it is async only, while the Slurm
//! executor's clean-up from `Drop` needs a synchronous fire-and-forget command. Driving `ssh`
//! directly keeps all of that without a new dependency, and honours the user's OpenSSH config
//! (`~/.ssh/config`, agent, keys, known hosts) just as that crate would.

#![deny(unsafe_code)]

mod command_line;
mod error;
mod exec;
mod login_shell;
mod options;
mod session;
mod stage;
mod transfer;

pub use covalent::executor::worker::shell_quote;
pub use error::RemoteError;
pub use exec::{Input, Reply, fire_and_forget_local, run_local};
pub use options::{ALIASES, SshOptions};
pub use session::{Retry, Session, SessionHold};
pub use stage::{stage_binary_locally, staged_name, staged_path};
pub use transfer::RemoteTaskDir;

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quoting_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("abc-1.2/x_y=z:@%+,"), "abc-1.2/x_y=z:@%+,");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$HOME;rm -rf /"), "'$HOME;rm -rf /'");
        assert_eq!(shell_quote("~/x"), "'~/x'");
    }
}

#[cfg(test)]
covalent_test_support::isolated_home!();
