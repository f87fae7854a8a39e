//! Watching jobs: one `squeue -h -t all -j ID,ID,... -o '%i %T'` per poll interval for every
//! job an executor instance waits on (not one per task), and the final record of a job that
//! did not complete from `sacct -X -n -P -o State,ExitCode` (which lags the controller by a
//! second or two, and is absent when accounting is off) or `scontrol show job`.
//!
//! Decisions are made on the state's first word (`CANCELLED by 0` is CANCELLED), never on
//! ExitCode, which reads `0:0` for jobs that timed out or were cancelled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use covalent_remote::{Input, RemoteError};

use crate::host::Host;

/// What the last look at a job showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not looked at since it was submitted.
    NotYet,
    /// Its state word (`PENDING`, `RUNNING`, `COMPLETED`, ...).
    State(String),
    /// squeue does not know it (finished longer ago than MinJobAge, or never existed).
    Gone,
}

/// States after which a job does not run again.
pub(crate) fn is_final(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "OUT_OF_MEMORY"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "REVOKED"
            | "SPECIAL_EXIT"
    )
}

/// The first word of a state (`CANCELLED by 0` → `CANCELLED`; `CANCELLED+` → `CANCELLED`).
pub(crate) fn state_word(s: &str) -> String {
    s.split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches('+')
        .to_string()
}

/// The jobs one executor instance waits on, and one squeue at a time for all of them.
#[derive(Debug, Default)]
pub(crate) struct Poller {
    jobs: Mutex<HashMap<String, Seen>>,
    last: tokio::sync::Mutex<Option<Instant>>,
}

impl Poller {
    /// Starts watching a job.
    pub fn watch(&self, id: &str) {
        self.jobs
            .lock()
            .unwrap()
            .insert(id.to_string(), Seen::NotYet);
    }

    /// Stops watching a job.
    pub fn unwatch(&self, id: &str) {
        self.jobs.lock().unwrap().remove(id);
    }

    /// The job's state as of at most `fresh` ago: when the last squeue is older (or has not
    /// seen this job yet), one squeue asks for every watched job.
    pub async fn state(
        &self,
        host: &Host,
        prefix: &str,
        id: &str,
        fresh: Duration,
        timeout: Duration,
    ) -> Result<Seen, String> {
        let mut last = self.last.lock().await;
        let seen = self.jobs.lock().unwrap().get(id).cloned();
        let stale = last.is_none_or(|t| t.elapsed() >= fresh);
        if stale || matches!(seen, Some(Seen::NotYet)) {
            let ids: Vec<String> = self.jobs.lock().unwrap().keys().cloned().collect();
            let ids = if ids.is_empty() {
                vec![id.to_string()]
            } else {
                ids
            };
            let out = host
                .sh(
                    &format!("{prefix}squeue -h -t all -j {} -o '%i %T'", ids.join(",")),
                    Input::None,
                    timeout,
                )
                .await
                .map_err(|e| format!("squeue: {e}"))?;
            let mut listed: HashMap<String, String> = HashMap::new();
            if out.ok() {
                for line in out.stdout_text().lines() {
                    if let Some((job, state)) = line.trim().split_once(' ') {
                        listed.insert(job.to_string(), state_word(state));
                    }
                }
            } else if !out.stderr.contains("Invalid job id") {
                return Err(format!("squeue failed: {}", out.stderr));
            }
            let mut jobs = self.jobs.lock().unwrap();
            for job in &ids {
                if let Some(s) = jobs.get_mut(job) {
                    *s = match listed.remove(job) {
                        Some(state) => Seen::State(state),
                        None => Seen::Gone,
                    };
                }
            }
            *last = Some(Instant::now());
            if !jobs.contains_key(id) {
                return Ok(Seen::Gone);
            }
        }
        Ok(self
            .jobs
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or(Seen::Gone))
    }
}

/// A finished job's record: its state word and `ExitCode` (`4:0`), when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub state: String,
    pub exit_code: Option<String>,
}

/// Parses `sacct -X -n -P -o State,ExitCode` output.
pub(crate) fn parse_sacct(text: &str) -> Option<Record> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let (state, code) = line.trim().split_once('|')?;
    Some(Record {
        state: state_word(state),
        exit_code: Some(code.trim().to_string()).filter(|c| !c.is_empty()),
    })
}

/// Parses `scontrol show job` output (`JobState=FAILED ... ExitCode=4:0`).
pub(crate) fn parse_scontrol(text: &str) -> Option<Record> {
    let mut state = None;
    let mut code = None;
    for word in text.split_whitespace() {
        if let Some(v) = word.strip_prefix("JobState=") {
            state = Some(state_word(v));
        } else if let Some(v) = word.strip_prefix("ExitCode=") {
            code = Some(v.to_string());
        }
    }
    Some(Record {
        state: state?,
        exit_code: code,
    })
}

/// The job's final record: sacct (retried while it lags behind the controller), else
/// `scontrol show job` (accounting off), else `None`.
pub(crate) async fn final_record(
    host: &Host,
    prefix: &str,
    id: &str,
    timeout: Duration,
) -> Result<Option<Record>, RemoteError> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let out = host
            .sh(
                &format!("{prefix}sacct -X -n -P -j {id} -o State,ExitCode"),
                Input::None,
                timeout,
            )
            .await?;
        if !out.ok() {
            // "Slurm accounting storage is disabled", or no sacct at all.
            break;
        }
        if let Some(r) = parse_sacct(&out.stdout_text())
            && is_final(&r.state)
        {
            return Ok(Some(r));
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let out = host
        .sh(
            &format!("{prefix}scontrol show job {id}"),
            Input::None,
            timeout,
        )
        .await?;
    Ok(if out.ok() {
        parse_scontrol(&out.stdout_text())
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_decided_on_their_first_word() {
        assert_eq!(state_word("CANCELLED by 0"), "CANCELLED");
        assert_eq!(state_word("CANCELLED+"), "CANCELLED");
        assert!(is_final("TIMEOUT"));
        assert!(!is_final("COMPLETING"));
        assert!(!is_final("PENDING"));
    }

    #[test]
    fn sacct_lines() {
        assert_eq!(
            parse_sacct("FAILED|4:0\n"),
            Some(Record {
                state: "FAILED".into(),
                exit_code: Some("4:0".into())
            })
        );
        assert_eq!(
            parse_sacct("CANCELLED by 0|0:0").unwrap().state,
            "CANCELLED"
        );
        assert_eq!(parse_sacct(""), None);
    }

    #[test]
    fn scontrol_text() {
        let text = "JobId=1 JobName=wrap\n   UserId=root(0) GroupId=root(0)\n   JobState=FAILED Reason=NonZeroExitCode Dependency=(null)\n   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=4:0\n";
        assert_eq!(
            parse_scontrol(text),
            Some(Record {
                state: "FAILED".into(),
                exit_code: Some("4:0".into())
            })
        );
        assert_eq!(parse_scontrol("nothing here"), None);
    }
}
