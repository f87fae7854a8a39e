//! One job's life on Slurm: submitting it (`sbatch`), watching it until it ends, cancelling
//! it (`scancel`, then waiting for its end, also from `Drop` when the attempt goes away), the
//! node's job handle, and the error of a job that ended without a result.

use std::sync::Arc;
use std::time::Duration;

use covalent::executor::ExecutorError;
use covalent::executor::worker::{signal_name, with_stderr_tail};
use covalent_remote::{Input, shell_quote};
use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::poll::{self, Poller, Record, Seen};
use crate::{SlurmExecutor, failed};

/// The job handle a node records: the job id (once submitted), the job's name (unique per
/// attempt, so a submission cut short can still be found) and its directory.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Handle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub job_name: String,
    pub dir: String,
    pub host: String,
    /// The task's index in a job array (`job_name` is then the array's, and `job_id`, once
    /// known, the element's: `<array>_<index>`, or a plain id for an array of one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_index: Option<u32>,
}

impl Handle {
    /// The handle a node recorded, if it is one of ours.
    pub(crate) fn of(job: &covalent::executor::JobHandle) -> Option<Handle> {
        serde_json::from_value(job.0.clone()).ok()
    }
}

/// How the job ended, from the worker's status as the job script saw it (`134`: killed by
/// signal 6), else from Slurm's `ExitCode` (`4:0`, `0:15`).
fn describe_exit(worker_status: Option<&str>, exit_code: Option<&str>) -> String {
    if let Some(status) = worker_status.and_then(|s| s.trim().parse::<i32>().ok()) {
        return if status > 128 && status < 128 + 65 {
            format!(": the worker was killed by {}", signal_name(status - 128))
        } else {
            format!(": the worker exited with code {status}")
        };
    }
    let Some((status, signal)) = exit_code.and_then(|c| c.split_once(':')) else {
        return String::new();
    };
    let (status, signal) = (
        status.parse::<i32>().unwrap_or(0),
        signal.parse::<i32>().unwrap_or(0),
    );
    if signal != 0 {
        format!(", killed by {}", signal_name(signal))
    } else {
        format!(", exit code {status}")
    }
}

/// Cancels a submitted job (or one whose submission was cut short, by name) if the attempt is
/// dropped before it ended, e.g. when the dispatch goes away. Time-outs and cancellation also
/// reach [`SlurmExecutor::cancel`], which waits for the job's end.
pub(crate) struct Leftover {
    pub host: Host,
    pub poller: Arc<Poller>,
    pub scancel: String,
    pub job: Option<String>,
    pub name: String,
    pub armed: bool,
}

impl Leftover {
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Leftover {
    fn drop(&mut self) {
        if let Some(id) = &self.job {
            self.poller.unwatch(id);
        }
        if !self.armed {
            return;
        }
        let target = match &self.job {
            Some(id) => id.clone(),
            None => format!("--name={}", shell_quote(&self.name)),
        };
        self.host
            .fire_and_forget(&format!("{} {target}", self.scancel));
    }
}

impl SlurmExecutor {
    /// `sbatch --parsable FLAGS` in the task's (or array's) directory, the script on stdin;
    /// the job id.
    pub(crate) async fn submit(
        &self,
        host: &Host,
        dir: &str,
        script: String,
        flags: &str,
    ) -> Result<String, Submit> {
        let out = host
            .sh(
                &format!(
                    "cd {} && {} --parsable {flags}",
                    shell_quote(dir),
                    self.slurm_cmd("sbatch")
                ),
                Input::Bytes(script.into_bytes()),
                self.command_timeout,
            )
            .await
            .map_err(|e| Submit::Unknown(format!("submitting to {}: {e}", host.label())))?;
        if out.code() == Some(127) {
            let msg = if host.is_remote() {
                format!(
                    "sbatch not found on the login node {}: set slurm_path to the directory that has it (a non-interactive ssh session may not load the module that puts it on PATH)",
                    host.label()
                )
            } else {
                let mut m = "sbatch not found: is this a Slurm login node? set ssh = { hostname = \"...\" } to submit through one".to_string();
                if let Some(p) = &self.slurm_path {
                    m.push_str(&format!(" (looked for {p}/sbatch; slurm_path is set)"));
                }
                m
            };
            return Err(Submit::Refused(msg));
        }
        if !out.ok() {
            return Err(Submit::Refused(format!(
                "sbatch rejected the job: {}",
                out.stderr
            )));
        }
        let text = out.stdout_text();
        let id = text.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return Err(Submit::Unknown(format!(
                "sbatch printed no job id: {text:?} {}",
                out.stderr
            )));
        }
        Ok(id)
    }

    /// Polls until the job has ended (or squeue no longer knows it).
    pub(crate) async fn wait_for_end(&self, host: &Host, id: &str) -> Result<Seen, ExecutorError> {
        self.poller()
            .wait_for_end(host, &self.slurm_prefix(), id, self.cadence())
            .await
            .map_err(|e| failed(format!("lost track of Slurm job {id}: {e}")))
    }

    /// How often this executor's jobs are polled.
    pub(crate) fn cadence(&self) -> poll::Cadence {
        poll::Cadence {
            base: self.poll_interval,
            max: self.max_poll_interval,
            timeout: self.command_timeout,
        }
    }

    /// `scancel`, then waits (up to `command_timeout`) until the job has ended.
    pub(crate) async fn scancel_and_wait(
        &self,
        host: &Host,
        target: &str,
        id: Option<&str>,
    ) -> Result<bool, ExecutorError> {
        let out = host
            .sh(
                &format!("{} {target}", self.slurm_cmd("scancel")),
                Input::None,
                self.command_timeout,
            )
            .await
            .map_err(|e| failed(format!("scancel {target}: {e}")))?;
        if !out.ok() {
            if out.stderr.contains("already completing or completed")
                || out.stderr.contains("Invalid job id")
            {
                return Ok(false); // it ended on its own
            }
            return Err(failed(format!("scancel {target} failed: {}", out.stderr)));
        }
        let Some(id) = id else { return Ok(true) };
        let deadline = tokio::time::Instant::now() + self.command_timeout;
        while tokio::time::Instant::now() < deadline {
            let out = host
                .sh(
                    &format!("{} -h -t all -j {id} -o %T", self.slurm_cmd("squeue")),
                    Input::None,
                    self.command_timeout,
                )
                .await;
            match out {
                Ok(o) if !o.ok() => break, // forgotten: long gone
                Ok(o) if poll::is_final(&poll::state_word(&o.stdout_text())) => break,
                Err(_) => break,
                Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Ok(true)
    }

    /// The error of a job that ended without a result.
    pub(crate) fn job_error(
        &self,
        id: &str,
        record: &Record,
        worker_status: Option<&str>,
        stderr: &str,
        limit: Option<Duration>,
    ) -> ExecutorError {
        let with_stderr = |msg: String| ExecutorError::WorkerLost(with_stderr_tail(msg, stderr));
        match record.state.as_str() {
            "CANCELLED" => ExecutorError::Cancelled,
            "TIMEOUT" => match limit {
                Some(l) => ExecutorError::TimedOut(l),
                None => with_stderr(format!("Slurm job {id} ran past its time limit (TIMEOUT)")),
            },
            "COMPLETED" => with_stderr(format!(
                "Slurm job {id} completed but the worker wrote no result"
            )),
            "" => with_stderr(format!(
                "Slurm no longer knows job {id} and it left no result"
            )),
            state => with_stderr(format!(
                "Slurm job {id} ended {state}{}",
                describe_exit(worker_status, record.exit_code.as_deref())
            )),
        }
    }
}

/// Why a submission did not give a job id.
pub(crate) enum Submit {
    /// sbatch ran and said no (or is missing): no job exists.
    Refused(String),
    /// The answer was lost (time-out, connection): a job may exist.
    Unknown(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described() {
        assert_eq!(
            describe_exit(Some("134\n"), Some("6:0")),
            ": the worker was killed by signal 6 (SIGABRT)"
        );
        assert_eq!(
            describe_exit(Some("3"), None),
            ": the worker exited with code 3"
        );
        assert_eq!(describe_exit(None, Some("4:0")), ", exit code 4");
        assert_eq!(
            describe_exit(None, Some("0:15")),
            ", killed by signal 15 (SIGTERM)"
        );
        assert_eq!(describe_exit(None, None), "");
    }
}
