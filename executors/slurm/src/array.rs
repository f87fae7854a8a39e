//! Job arrays: in job-per-task mode, tasks of one executor that are ready together and would
//! get the same batch script (same options, same `--time`) go to Slurm as one job array, one
//! `sbatch --array=...` for all of them, each index running its own task envelope.
//!
//! Batches are per dispatch. The first task to arrive opens a batch and a submitter for it; tasks arriving within
//! `array_window` join it (each gets the next index), up to the cluster's `MaxArraySize`
//! (`scontrol show config`, read once per submit place) or the executor's `max_array_size`,
//! whichever is smaller; later tasks open the next batch. A batch's directory is
//! `<workdir>/<array name>/` (the first task's attempt name and `-array`: the dispatch's id is
//! in it, as in every job name), each task's `<index>/` in it (the array's `--output` and
//! `--error` are `%a/stdout` and `%a/stderr`, so each index writes its own streams). A batch
//! that ends up with one task is submitted as a plain job from that task's directory.
//!
//! Each task records its handle (the array's name, its directory, its index) before the
//! submission, and the element's id (`<array>_<index>`) after; polling (`squeue -r`), `sacct`,
//! `scancel` and a resumed dispatch's probe all address the element. A task dropped before the
//! array was submitted withdraws from it; one dropped after has its element cancelled.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use covalent::executor::ExecutorError;
use covalent_remote::{Input, shell_quote};

use crate::host::Host;
use crate::job::Submit;
use crate::{SlurmExecutor, failed};

/// Where a member of a batch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Member {
    /// Joined; its envelope is being written.
    Joining,
    /// Its envelope is in its directory: it goes into the array.
    Ready,
    /// It could not write its envelope, or went away before it did: left out.
    Out,
    /// It went away after it was ready: its element is cancelled once submitted.
    Dropped,
}

/// How the batch went out.
#[derive(Clone, Debug)]
pub(crate) enum Submitted {
    /// As a job array of this id.
    Array(String),
    /// As one plain job of this id (a batch of one task).
    Plain(String),
    /// Not at all: sbatch said no, or its answer was lost (then `lost` is set and the job, if
    /// any, is cancelled by name).
    Failed { msg: String, lost: bool },
}

/// One batch of tasks going out as one array.
pub(crate) struct Batch {
    /// The array's job name.
    pub name: String,
    /// Its directory (each task's directory is `<dir>/<index>`).
    pub dir: String,
    members: Mutex<Vec<Member>>,
    settled: tokio::sync::Notify,
    outcome: tokio::sync::watch::Sender<Option<Submitted>>,
    /// Members that have not ended yet: the last one removes the directory.
    left: Mutex<usize>,
    /// When the last member joined.
    last_join: Mutex<Instant>,
    /// Where it is submitted, and its `scancel`.
    host: Host,
    scancel: String,
    cleanup: bool,
}

impl Batch {
    fn set(&self, index: u32, m: Member) {
        let mut all = self.members.lock().unwrap();
        let slot = &mut all[index as usize];
        *slot = match (*slot, m) {
            (Member::Ready, Member::Out) => Member::Dropped,
            (Member::Joining, Member::Dropped) => Member::Out,
            (s, Member::Out | Member::Dropped) if s != Member::Joining => s,
            (_, m) => m,
        };
        drop(all);
        self.settled.notify_one();
    }

    /// The member's envelope is in place.
    pub fn ready(&self, index: u32) {
        self.set(index, Member::Ready);
    }

    /// Waits until the batch is submitted and returns how.
    pub async fn submitted(&self) -> Submitted {
        let mut rx = self.outcome.subscribe();
        loop {
            if let Some(s) = rx.borrow_and_update().clone() {
                return s;
            }
            if rx.changed().await.is_err() {
                return Submitted::Failed {
                    msg: "the array's submitter went away".into(),
                    lost: false,
                };
            }
        }
    }

    /// One member has ended; true for the last, which removes the batch's directory.
    pub fn ended_one(&self) -> bool {
        let mut left = self.left.lock().unwrap();
        *left = left.saturating_sub(1);
        *left == 0
    }

    /// The element id of member `index`, once submitted.
    pub fn element(s: &Submitted, index: u32) -> Option<String> {
        match s {
            Submitted::Array(id) => Some(format!("{id}_{index}")),
            Submitted::Plain(id) => Some(id.clone()),
            Submitted::Failed { .. } => None,
        }
    }
}

/// A member's place in a batch: withdraws it (or cancels its element) when dropped before
/// [`Membership::keep`].
pub(crate) struct Membership {
    pub batch: Arc<Batch>,
    pub index: u32,
    kept: bool,
}

impl Membership {
    /// The member follows its element itself from now on.
    pub fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let b = &self.batch;
        if !self.kept {
            // Under the members' lock, so the submitter either sees this member gone or has
            // already told its outcome.
            let members = b.members.lock().unwrap();
            let was_ready = members[self.index as usize] == Member::Ready;
            let element = b
                .outcome
                .borrow()
                .as_ref()
                .and_then(|s| Batch::element(s, self.index));
            drop(members);
            b.set(self.index, Member::Out);
            if was_ready && let Some(id) = element {
                b.host.fire_and_forget(&format!("{} {id}", b.scancel));
            }
        }
        if b.ended_one() && b.cleanup {
            let dir = b.dir.clone();
            if b.host.is_remote() {
                b.host
                    .fire_and_forget(&format!("rmdir {} 2>/dev/null", shell_quote(&dir)));
            } else {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// The open batch of each submit place and script.
static OPEN: LazyLock<Mutex<HashMap<String, Arc<Batch>>>> = LazyLock::new(Default::default);

/// Each submit place's MaxArraySize.
static MAX_SIZE: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);

/// The cluster's `MaxArraySize` (`scontrol show config`; Slurm's default, 1001, when it
/// cannot be read): array indices run from 0 to one less.
async fn cluster_max_size(ex: &SlurmExecutor, host: &Host) -> u32 {
    let place = ex.place();
    if let Some(n) = MAX_SIZE.lock().unwrap().get(&place) {
        return *n;
    }
    // One scontrol for the tasks that arrive together.
    static ASKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ASKING.lock().await;
    if let Some(n) = MAX_SIZE.lock().unwrap().get(&place) {
        return *n;
    }
    let n = host
        .sh(
            &format!("{} show config", ex.slurm_cmd("scontrol")),
            Input::None,
            ex.command_timeout,
        )
        .await
        .ok()
        .filter(|o| o.ok())
        .and_then(|o| parse_max_array_size(&o.stdout_text()))
        .unwrap_or(1001);
    MAX_SIZE.lock().unwrap().insert(place, n);
    n
}

/// `MaxArraySize = 1001` in `scontrol show config`.
pub(crate) fn parse_max_array_size(text: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
    })
}

/// `0-3,5,7-9`: the indices, ranges folded.
pub(crate) fn index_list(indices: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// What a batch is submitted with.
pub(crate) struct Scripts {
    /// The array's script (`%a/stdout`, the index's directory).
    pub array: String,
    /// The plain job's script, for a batch of one.
    pub plain: String,
}

/// Joins the open batch for `key` at this place (or opens one, and its submitter, named
/// after this task's attempt: `<attempt name>-array`): the batch and this task's index in
/// it. `scripts` renders both scripts for a job name.
pub(crate) async fn join(
    ex: &SlurmExecutor,
    host: &Host,
    root: &str,
    key: &str,
    attempt: &str,
    scripts: impl FnOnce(&str) -> Result<Scripts, String>,
) -> Result<Membership, ExecutorError> {
    let cluster = cluster_max_size(ex, host).await;
    let max = ex.max_array_size.map_or(cluster, |n| n.clamp(1, cluster)) as usize;
    let key = format!("{}\n{root}\n{key}", ex.place());
    let mut open = OPEN.lock().unwrap();
    if let Some(b) = open.get(&key) {
        let mut members = b.members.lock().unwrap();
        if members.len() < max {
            members.push(Member::Joining);
            *b.last_join.lock().unwrap() = Instant::now();
            *b.left.lock().unwrap() += 1;
            let index = (members.len() - 1) as u32;
            drop(members);
            let batch = b.clone();
            if index as usize + 1 == max {
                open.remove(&key); // full: the next task opens another
            }
            return Ok(Membership {
                batch,
                index,
                kept: false,
            });
        }
    }
    let name = format!("{attempt}-array");
    let scripts = scripts(&name).map_err(crate::config)?;
    let batch = Arc::new(Batch {
        dir: format!("{root}/{name}"),
        name,
        members: Mutex::new(vec![Member::Joining]),
        settled: tokio::sync::Notify::new(),
        outcome: tokio::sync::watch::channel(None).0,
        left: Mutex::new(1),
        last_join: Mutex::new(Instant::now()),
        host: host.clone(),
        scancel: ex.slurm_cmd("scancel"),
        cleanup: ex.cleanup,
    });
    if max > 1 {
        open.insert(key.clone(), batch.clone());
    }
    drop(open);
    tokio::spawn(submit(
        ex.clone(),
        host.clone(),
        batch.clone(),
        key,
        scripts,
    ));
    Ok(Membership {
        batch,
        index: 0,
        kept: false,
    })
}

/// A batch's submitter: waits `array_window`, closes the batch, waits until every member has
/// written its envelope (or dropped out), submits, tells the members, and cancels the
/// elements of members that went away meanwhile.
async fn submit(ex: SlurmExecutor, host: Host, batch: Arc<Batch>, key: String, scripts: Scripts) {
    // Open while tasks keep coming (none for `array_window`, or a second in all, closes it).
    let opened = Instant::now();
    loop {
        let quiet_at = *batch.last_join.lock().unwrap() + ex.array_window;
        let now = Instant::now();
        if now >= quiet_at || now >= opened + MAX_OPEN {
            break;
        }
        tokio::time::sleep_until(quiet_at.min(opened + MAX_OPEN).into()).await;
    }
    {
        let mut open = OPEN.lock().unwrap();
        if open.get(&key).is_some_and(|b| Arc::ptr_eq(b, &batch)) {
            open.remove(&key);
        }
    }
    let ready: Vec<u32> = loop {
        let notified = batch.settled.notified();
        {
            let members = batch.members.lock().unwrap();
            if members.iter().all(|m| *m != Member::Joining) {
                break members
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| **m != Member::Out)
                    .map(|(i, _)| i as u32)
                    .collect();
            }
        }
        notified.await;
    };
    let t = ex.command_timeout;
    let outcome = match ready.as_slice() {
        [] => Submitted::Failed {
            msg: "every task of the array went away before it was submitted".into(),
            lost: false,
        },
        [one] => {
            let dir = format!("{}/{one}", batch.dir);
            match ex.submit(&host, &dir, scripts.plain, "").await {
                Ok(id) => Submitted::Plain(id),
                Err(e) => failure(e),
            }
        }
        many => {
            let flag = format!("--array={}", index_list(many));
            match ex.submit(&host, &batch.dir, scripts.array, &flag).await {
                Ok(id) => Submitted::Array(id),
                Err(e) => failure(e),
            }
        }
    };
    if let Submitted::Failed { lost: true, .. } = &outcome {
        host.fire_and_forget(&format!(
            "{} --name={}",
            ex.slurm_cmd("scancel"),
            shell_quote(&batch.name)
        ));
    }
    if matches!(&outcome, Submitted::Failed { .. }) && ready.is_empty() {
        host.remove(&batch.dir, t).await;
    }
    // Members gone since they were ready: their elements are not left to run unseen.
    let dropped: Vec<String> = {
        let members = batch.members.lock().unwrap();
        batch.outcome.send_replace(Some(outcome.clone()));
        members
            .iter()
            .enumerate()
            .filter(|(_, m)| **m == Member::Dropped)
            .filter_map(|(i, _)| Batch::element(&outcome, i as u32))
            .collect()
    };
    if !dropped.is_empty() {
        host.fire_and_forget(&format!(
            "{} {}",
            ex.slurm_cmd("scancel"),
            dropped.join(" ")
        ));
    }
}

fn failure(e: Submit) -> Submitted {
    match e {
        Submit::Refused(msg) => Submitted::Failed { msg, lost: false },
        Submit::Unknown(msg) => Submitted::Failed { msg, lost: true },
    }
}

/// The error of a member whose batch did not go out.
pub(crate) fn not_submitted(s: &Submitted) -> ExecutorError {
    match s {
        Submitted::Failed { msg, .. } => failed(msg.clone()),
        _ => failed("the job array was submitted"),
    }
}

/// A batch stays open while tasks join it at least this often, by default.
pub(crate) const DEFAULT_WINDOW: Duration = Duration::from_millis(20);

/// A batch is submitted at the latest this long after its first task joined.
const MAX_OPEN: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists_fold_ranges() {
        assert_eq!(index_list(&[0, 1, 2, 3, 5, 7, 8, 9]), "0-3,5,7-9");
        assert_eq!(index_list(&[4]), "4");
        assert_eq!(index_list(&[0, 2]), "0,2");
        assert_eq!(index_list(&[]), "");
    }

    #[test]
    fn max_array_size_is_read_from_the_config() {
        let text = "MaxArraySize            = 1001\nMaxJobCount             = 10000\n";
        assert_eq!(parse_max_array_size(text), Some(1001));
        assert_eq!(parse_max_array_size("MaxJobCount = 3"), None);
    }

    #[test]
    fn members_that_go_away_are_left_out_or_cancelled() {
        let b = Batch {
            name: "a".into(),
            dir: "d".into(),
            members: Mutex::new(vec![Member::Joining; 3]),
            settled: tokio::sync::Notify::new(),
            outcome: tokio::sync::watch::channel(None).0,
            left: Mutex::new(3),
            last_join: Mutex::new(Instant::now()),
            host: Host::local(),
            scancel: "scancel".into(),
            cleanup: true,
        };
        b.ready(0);
        b.set(0, Member::Out); // dropped after it was ready
        b.set(1, Member::Out); // dropped before
        b.ready(2);
        assert_eq!(
            *b.members.lock().unwrap(),
            vec![Member::Dropped, Member::Out, Member::Ready]
        );
        assert!(!b.ended_one());
        assert!(!b.ended_one());
        assert!(b.ended_one());
        let s = Submitted::Array("7".into());
        assert_eq!(Batch::element(&s, 2).as_deref(), Some("7_2"));
        assert_eq!(
            Batch::element(&Submitted::Plain("8".into()), 0).as_deref(),
            Some("8")
        );
    }
}
