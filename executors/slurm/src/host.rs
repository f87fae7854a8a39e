//! Where Slurm commands run: this host (`sh -c`) or a login node through `covalent-remote`'s
//! SSH session (the user's OpenSSH config, keys, agent and known hosts; one shared connection
//! per login node through `ControlMaster`, so a command costs a round trip, not a handshake).
//!
//! Every command has a time limit and is killed when it passes it or when its caller is
//! dropped. This module runs commands and moves files; what the commands are is `lib.rs`'s.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use covalent::executor::files::{LocalTaskDir, TaskDirAccess};
use covalent::executor::worker::FETCH_MARKER;
use covalent_remote::{
    Input, RemoteError, RemoteTaskDir, Reply, Session, SshOptions, fire_and_forget_local,
    run_local, shell_quote,
};

/// How many times this process ran each Slurm command (through any slurm executor): for
/// benchmarks and examples that show what a workflow asked of the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlurmCalls {
    /// `sbatch` runs (jobs and allocations submitted).
    pub sbatch: u64,
    /// `srun` runs (worker steps started).
    pub srun: u64,
    /// `squeue` runs.
    pub squeue: u64,
    /// `scancel` runs.
    pub scancel: u64,
    /// `sacct` runs.
    pub sacct: u64,
}

const COMMANDS: [&str; 5] = ["sbatch", "srun", "squeue", "scancel", "sacct"];
static CALLS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// The Slurm commands this process has run so far.
pub fn slurm_calls() -> SlurmCalls {
    let n = |i: usize| CALLS[i].load(Ordering::Relaxed);
    SlurmCalls {
        sbatch: n(0),
        srun: n(1),
        squeue: n(2),
        scancel: n(3),
        sacct: n(4),
    }
}

/// Counts the Slurm commands a script runs (each word that names one, with or without a
/// directory in front).
pub(crate) fn count_calls(script: &str) {
    for word in script.split(|c: char| c.is_whitespace() || ";&|'\"()".contains(c)) {
        let base = word.rsplit('/').next().unwrap_or(word);
        if let Some(i) = COMMANDS.iter().position(|c| *c == base) {
            CALLS[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// This host, or a login node over SSH.
#[derive(Clone, Debug)]
pub(crate) struct Host {
    ssh: Option<Session>,
}

impl Host {
    /// This host.
    pub fn local() -> Host {
        Host { ssh: None }
    }

    /// The login node as an ssh authority (`user@host:port`), when commands go through one.
    pub fn authority(&self) -> Option<String> {
        self.ssh.as_ref().map(|s| s.options().label())
    }

    /// A login node.
    pub fn ssh(o: &SshOptions) -> Result<Host, String> {
        if o.hostname.is_empty() {
            return Err("ssh.hostname is empty: name the Slurm login node".into());
        }
        let session = Session::new(o)
            .map_err(|e| e.to_string())?
            .described_as("the Slurm login node", "ssh.");
        Ok(Host { ssh: Some(session) })
    }

    /// The login node's session, if commands go through ssh.
    pub fn session(&self) -> Option<&Session> {
        self.ssh.as_ref()
    }

    /// Whether commands go through ssh.
    pub fn is_remote(&self) -> bool {
        self.ssh.is_some()
    }

    /// The login node's `user@host:port`, or `this host`.
    pub fn label(&self) -> String {
        match &self.ssh {
            Some(s) => s.label(),
            None => "this host".into(),
        }
    }

    /// Runs a POSIX shell script there, killed after `timeout`; over SSH, ssh's own failures
    /// (unreachable, host key, refused login) are errors saying what to fix.
    pub async fn sh(
        &self,
        script: &str,
        input: Input,
        timeout: Duration,
    ) -> Result<Reply, RemoteError> {
        count_calls(script);
        match &self.ssh {
            None => run_local(script, input, timeout).await,
            Some(s) => s.run(script, input, timeout).await,
        }
    }

    /// Starts a command and forgets it (reaped by a thread): for clean-up from `Drop`.
    pub fn fire_and_forget(&self, script: &str) {
        count_calls(script);
        match &self.ssh {
            None => fire_and_forget_local(script),
            Some(s) => s.fire_and_forget(script),
        }
    }

    /// Writes `bytes` to `dir/name` there, creating `dir`.
    pub async fn put(
        &self,
        dir: &str,
        name: &str,
        bytes: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), String> {
        if !self.is_remote() {
            std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(Path::new(dir).join(name), &bytes))
                .map_err(|e| format!("cannot write {dir}/{name}: {e}"))?;
            return Ok(());
        }
        let d = shell_quote(dir);
        let out = self
            .sh(
                &format!("mkdir -p {d} && cat > {d}/{name}"),
                Input::Bytes(bytes),
                timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
        if !out.ok() {
            return Err(format!(
                "cannot write {dir}/{name} on {}: {}",
                self.label(),
                out.stderr
            ));
        }
        Ok(())
    }

    /// Reads `names` from `dir` there (`None` for a file that is not there), then removes
    /// the directory when `remove` is set, unless it holds a large output the worker wrote to
    /// a file of its own (`value-*.json`): the caller fetches that with [`Host::download`] and
    /// removes the directory after.
    pub async fn fetch(
        &self,
        dir: &str,
        names: &[&str],
        remove: bool,
        timeout: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        if !self.is_remote() {
            let files = names
                .iter()
                .map(|n| std::fs::read(Path::new(dir).join(n)).ok())
                .collect();
            if remove
                && !has_value_file(Path::new(dir))
                && !Path::new(dir).join(FETCH_MARKER).exists()
            {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Ok(files);
        }
        // One round trip: per file, its size in bytes (or -1) on a line, then its bytes.
        let list: Vec<String> = names.iter().map(|n| shell_quote(n)).collect();
        let d = shell_quote(dir);
        let mut script = format!(
            "cd {d} 2>/dev/null || exit 0; for f in {}; do if [ -f \"$f\" ]; then wc -c < \"$f\"; cat \"$f\"; else echo -1; fi; done",
            list.join(" ")
        );
        if remove {
            script.push_str(&format!(
                "; for v in value-*.json {FETCH_MARKER}; do [ -e \"$v\" ] && exit 0; done; cd && rm -rf {d}"
            ));
        }
        let out = self
            .sh(&script, Input::None, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let mut rest: &[u8] = &out.stdout;
        let mut files = Vec::with_capacity(names.len());
        for _ in names {
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                files.push(None);
                continue;
            };
            let len: i64 = String::from_utf8_lossy(&rest[..nl])
                .trim()
                .parse()
                .unwrap_or(-1);
            rest = &rest[nl + 1..];
            if len < 0 {
                files.push(None);
                continue;
            }
            let n = (len as usize).min(rest.len());
            files.push(Some(rest[..n].to_vec()));
            rest = &rest[n..];
        }
        Ok(files)
    }

    /// How the dispatcher reaches the task directory `dir` there, for file transfers.
    pub fn task_dir(&self, dir: &str, timeout: Duration) -> Box<dyn TaskDirAccess + '_> {
        match &self.ssh {
            None => Box::new(LocalTaskDir(dir.into())),
            Some(s) => Box::new(RemoteTaskDir {
                session: s,
                dir: dir.to_string(),
                timeout,
            }),
        }
    }

    /// Copies `dir/name` there to `dest` here, streamed (over SSH: `cat`, never held in
    /// memory; on this host: a copy). Returns the bytes copied.
    pub async fn download(
        &self,
        dir: &str,
        name: &str,
        dest: &Path,
        timeout: Duration,
    ) -> Result<u64, String> {
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        match &self.ssh {
            None => std::fs::copy(&path, dest).map_err(|e| format!("cannot copy {path}: {e}")),
            Some(s) => s
                .download(&path, dest, timeout)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Whether file `dir/name` is there (without reading it).
    pub async fn has(&self, dir: &str, name: &str, timeout: Duration) -> Result<bool, String> {
        if !self.is_remote() {
            return Ok(Path::new(dir).join(name).is_file());
        }
        let out = self
            .sh(
                &format!("test -f {}/{}", shell_quote(dir), shell_quote(name)),
                Input::None,
                timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(out.ok())
    }

    /// Removes a directory there if it is empty (best effort).
    pub async fn remove_if_empty(&self, dir: &str, timeout: Duration) {
        if !self.is_remote() {
            let _ = std::fs::remove_dir(dir);
            return;
        }
        let _ = self
            .sh(
                &format!("rmdir {} 2>/dev/null; true", shell_quote(dir)),
                Input::None,
                timeout,
            )
            .await;
    }

    /// Removes a directory tree there (best effort).
    pub async fn remove(&self, dir: &str, timeout: Duration) {
        if !self.is_remote() {
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        let _ = self
            .sh(
                &format!("rm -rf {}", shell_quote(dir)),
                Input::None,
                timeout,
            )
            .await;
    }
}

/// Whether a task dir on this host holds a large output written to a file of its own.
fn has_value_file(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("value-") && n.ends_with(".json")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_commands_are_counted_where_scripts_run_them() {
        let before = slurm_calls();
        count_calls("cd '/x/y' && sbatch --parsable");
        count_calls("'/opt/slurm/bin/'squeue -h -j 1,2 -o '%i %T'; scancel 3.1");
        count_calls("cat squeue.txt; echo srunner");
        let after = slurm_calls();
        assert_eq!(after.sbatch - before.sbatch, 1);
        assert_eq!(after.squeue - before.squeue, 1);
        assert_eq!(after.scancel - before.scancel, 1);
        assert_eq!(after.srun - before.srun, 0);
    }
}
