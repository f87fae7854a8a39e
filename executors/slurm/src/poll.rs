//! Watching jobs: one `squeue -h -r -t all -j ID,ID,... -o '%i %T'` at a time for every job
//! the executors submitting to one place wait on (not one per task), at most one per
//! `poll_interval`, backing off (doubling, up to `max_poll_interval`) once ten in a row saw no
//! change;
//! and the final record of a job that
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

/// The jobs every executor submitting to one place (this host or a login node) waits on,
/// and the schedule of the one `squeue` that looks at all of them.
#[derive(Debug, Default)]
pub(crate) struct Poller {
    inner: Mutex<Schedule>,
    /// Held while a squeue runs: one at a time.
    running: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Schedule {
    jobs: HashMap<String, Seen>,
    /// When the last squeue started.
    last: Option<Instant>,
    /// When the next one is due.
    next: Option<Instant>,
    /// The gap after the last one: `poll_interval`, doubled after each squeue that saw no
    /// change once [`QUIET_POLLS`] in a row saw none, up to `max_poll_interval`.
    gap: Duration,
    /// Squeues in a row that saw no change.
    unchanged: u32,
}

/// Squeues in a row without a change before the gap starts doubling: jobs that end in a
/// steady stream (the controller starts array elements in batches about a second apart) are
/// seen at `poll_interval`; only a quiet spell backs off.
const QUIET_POLLS: u32 = 10;

/// The poll cadence an executor asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cadence {
    /// The shortest time between two squeues (`poll_interval`).
    pub base: Duration,
    /// The longest, reached while nothing changes (`max_poll_interval`).
    pub max: Duration,
    /// The time limit of each squeue.
    pub timeout: Duration,
}

/// The `-j` list of a squeue for these jobs: an array element (`123_4`) is asked for by its
/// array (`123`, listed one element per line with `-r`).
fn squeue_ids<'a>(jobs: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut ids: Vec<String> = jobs
        .map(|j| j.split('_').next().unwrap_or(j).to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

impl Poller {
    /// Starts watching a job: it is in the next squeue, which comes no sooner than
    /// `poll_interval` after the last one, and at once after a short first wait (a job that
    /// has just been submitted is still pending) when the last one is long ago.
    pub fn watch(&self, id: &str, cadence: Cadence) {
        let mut s = self.inner.lock().unwrap();
        s.jobs.insert(id.to_string(), Seen::NotYet);
        s.gap = cadence.base;
        s.unchanged = 0;
        let now = Instant::now();
        let first = now + cadence.base.min(Duration::from_millis(50));
        let earliest = s.last.map_or(first, |l| (l + cadence.base).max(first));
        s.next = Some(s.next.map_or(earliest, |n| n.min(earliest)));
    }

    /// Stops watching a job.
    pub fn unwatch(&self, id: &str) {
        self.inner.lock().unwrap().jobs.remove(id);
    }

    /// Waits until the job has ended or squeue no longer lists it, and returns what the
    /// last squeue said of it. A squeue runs when one is due, for every watched job; the
    /// other waiters read its answer.
    pub async fn wait_for_end(
        &self,
        host: &Host,
        prefix: &str,
        id: &str,
        cadence: Cadence,
    ) -> Result<Seen, String> {
        let mut failures = 0;
        loop {
            let (seen, due) = {
                let s = self.inner.lock().unwrap();
                (s.jobs.get(id).cloned(), s.next)
            };
            match seen {
                Some(Seen::State(st)) if is_final(&st) => return Ok(Seen::State(st)),
                Some(Seen::Gone) | None => return Ok(Seen::Gone),
                _ => {}
            }
            let now = Instant::now();
            let due = due.unwrap_or(now);
            if due > now {
                tokio::time::sleep_until(due.into()).await;
            }
            let _one = self.running.lock().await;
            // Another waiter may have polled while this one slept or queued.
            let still_due = self
                .inner
                .lock()
                .unwrap()
                .next
                .is_none_or(|n| n <= Instant::now());
            if !still_due {
                continue;
            }
            match self.poll_once(host, prefix, cadence).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if failures >= 5 {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// One squeue for every watched job; the next one is scheduled after it.
    async fn poll_once(&self, host: &Host, prefix: &str, cadence: Cadence) -> Result<(), String> {
        let ids = {
            let mut s = self.inner.lock().unwrap();
            s.last = Some(Instant::now());
            // Scheduled now, in case this one fails: a retry after the usual gap.
            s.next = Some(Instant::now() + s.gap.max(cadence.base));
            squeue_ids(s.jobs.keys())
        };
        if ids.is_empty() {
            return Ok(());
        }
        let out = host
            .sh(
                &format!(
                    "{prefix}squeue -h -r -t all -j {} -o '%i %T'",
                    ids.join(",")
                ),
                Input::None,
                cadence.timeout,
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
        let mut s = self.inner.lock().unwrap();
        let mut changed = false;
        for (job, seen) in s.jobs.iter_mut() {
            let now = match listed.remove(job) {
                Some(state) => Seen::State(state),
                None => Seen::Gone,
            };
            changed |= *seen != now;
            *seen = now;
        }
        s.unchanged = if changed { 0 } else { s.unchanged + 1 };
        s.gap = if s.unchanged <= QUIET_POLLS {
            cadence.base
        } else {
            (s.gap * 2).clamp(cadence.base, cadence.max.max(cadence.base))
        };
        s.next = Some(s.last.unwrap_or_else(Instant::now) + s.gap);
        Ok(())
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
