//! The `slurm` executor against a real single-node Slurm cluster (started through
//! `scripts/slurm-up.sh` when it is not up and this machine allows it; skipped with a message
//! otherwise, a failure under `COVALENT_REQUIRE_ENGINES=1`), with this test binary as the
//! worker: results, streams, failures, crashes and retries, hooks, time limits (the runtime's
//! and Slurm's own TIMEOUT), cancellation, parallel jobs, submission through a login node over
//! SSH, and bad input (no sbatch, a rejected job, an unreachable or unknown login node).
//!
//! Every test checks that no job of its dispatch is left queued or running.

mod engine;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use covalent::prelude::*;
use covalent_slurm::{SlurmExecutor, SshOptions};
use covalent_test_support::run_example;

fn config() -> covalent::Config {
    covalent::Config::parse(
        "[sdk]\nrecord = false\nprogress = false\n\n[executors.slurm]\npoll_interval = \"100ms\"\n",
        Path::new("slurm-test.toml"),
    )
    .unwrap()
}

macro_rules! need_slurm {
    ($test:literal) => {
        if let Err(why) = engine::slurm() {
            engine::skip($test, &why);
            return;
        }
    };
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn job_id(node: &covalent::NodeResult<'_>) -> String {
    let h = node.job_handle().expect("a job handle");
    h.0["job_id"].as_str().expect("a job id").to_string()
}

/// The job's state word (squeue keeps finished jobs for MinJobAge).
fn job_state(id: &str) -> String {
    sh(&format!("squeue -h -t all -j {id} -o %T"))
}

/// Jobs of a dispatch (job names carry the end of the dispatch id) that are not finished.
fn live_jobs(dispatch: &covalent::Uuid) -> Vec<String> {
    let tail = dispatch.simple().to_string()[20..].to_string();
    sh("squeue -h -t all -o '%i|%j|%T'")
        .lines()
        .filter(|l| l.contains(&tail))
        .filter(|l| {
            let state = l.rsplit('|').next().unwrap_or("");
            !matches!(
                state,
                "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "OUT_OF_MEMORY" | "NODE_FAIL"
            )
        })
        .map(str::to_string)
        .collect()
}

fn assert_nothing_left(dispatch: &covalent::Uuid) {
    assert_eq!(
        live_jobs(dispatch),
        Vec::<String>::new(),
        "jobs left behind"
    );
}

// ---- results and streams --------------------------------------------------------------------

#[electron(executor = "slurm")]
fn greet(name: String) -> String {
    println!(
        "hello from job {}",
        std::env::var("SLURM_JOB_ID").unwrap_or_default()
    );
    eprintln!("a warning for {name}");
    format!("hello, {name}")
}

#[electron]
fn shout(s: String) -> String {
    s.to_uppercase()
}

fn configured() -> SlurmExecutor {
    SlurmExecutor {
        env: [("COVALENT_TEST_GREETING".to_string(), "bonjour".to_string())].into(),
        prerun: vec!["echo prerun ran".into()],
        postrun: vec!["echo postrun ran".into()],
        extra: vec!["--comment=covalent-test".into()],
        poll_interval: Duration::from_millis(100),
        ..Default::default()
    }
}

#[electron(executor = configured())]
fn greeting_from_env() -> String {
    std::env::var("COVALENT_TEST_GREETING").unwrap_or_default()
}

#[lattice]
fn greetings(name: String) -> (String, String) {
    (shout(greet(name)), greeting_from_env())
}

#[test]
fn tasks_run_as_jobs_with_their_streams_and_job_ids() {
    need_slurm!("tasks_run_as_jobs_with_their_streams_and_job_ids");
    let r = covalent::dispatch_sync(greetings("world".into()).with_config(config())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    assert_eq!(
        r.value(),
        Some(&("HELLO, WORLD".to_string(), "bonjour".to_string()))
    );
    let node = r.nodes().find(|n| n.name() == "greet").unwrap();
    assert_eq!(node.executor().as_deref(), Some("slurm"));
    let id = job_id(&node);
    assert!(
        node.stdout().contains(&format!("hello from job {id}")),
        "ran inside job {id}: {:?}",
        node.stdout()
    );
    assert!(
        node.stderr().contains("a warning for world"),
        "{:?}",
        node.stderr()
    );
    assert_eq!(job_state(&id), "COMPLETED");
    let dir = node.job_handle().unwrap().0["dir"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!Path::new(&dir).exists(), "the task directory is removed");

    let env_node = r.nodes().find(|n| n.name() == "greeting_from_env").unwrap();
    let out = env_node.stdout();
    assert!(
        out.contains("prerun ran") && out.contains("postrun ran"),
        "{out:?}"
    );
    let comment = sh(&format!("squeue -h -t all -j {} -o %k", job_id(&env_node)));
    assert_eq!(comment, "covalent-test", "extra #SBATCH lines are used");
    assert_nothing_left(&r.dispatch_id());
}

// ---- failures ---------------------------------------------------------------------------------

#[electron(executor = "slurm")]
fn fails() -> Result<i64, String> {
    Err("no luck".to_string())
}

#[electron(executor = "slurm")]
fn aborts() -> i64 {
    eprintln!("about to abort");
    std::process::abort()
}

#[lattice]
fn failures() -> (i64, i64) {
    (fails(), aborts())
}

#[test]
fn failures_and_crashes_fail_their_node_with_the_reason() {
    need_slurm!("failures_and_crashes_fail_their_node_with_the_reason");
    let r = covalent::dispatch_sync(failures().with_config(config())).unwrap();
    assert_eq!(r.status(), Status::Failed);
    let node = |name: &str| r.nodes().find(|n| n.name() == name).unwrap();
    assert_eq!(node("fails").error().unwrap(), "no luck");
    assert_eq!(job_state(&job_id(&node("fails"))), "COMPLETED");
    let crash = node("aborts");
    let e = crash.error().unwrap();
    let id = job_id(&crash);
    assert!(
        e.contains(&format!("Slurm job {id} ended FAILED")) && e.contains("SIGABRT"),
        "{e}"
    );
    assert!(
        e.contains("about to abort"),
        "the job's stderr is shown: {e}"
    );
    assert_eq!(job_state(&id), "FAILED");
    assert_nothing_left(&r.dispatch_id());
}

fn marker(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("covalent-slurm-test-{}-{name}", std::process::id()))
}

#[electron(executor = "slurm", retries = 1)]
fn crashes_once(flag: String) -> i64 {
    let flag = PathBuf::from(flag);
    if !flag.exists() {
        std::fs::write(&flag, "crashed").unwrap();
        std::process::abort();
    }
    7
}

#[lattice]
fn retried(flag: String) -> i64 {
    crashes_once(flag)
}

#[test]
fn a_worker_crash_is_retried() {
    need_slurm!("a_worker_crash_is_retried");
    let flag = marker("crash-once");
    let _ = std::fs::remove_file(&flag);
    let r =
        covalent::dispatch_sync(retried(flag.display().to_string()).with_config(config())).unwrap();
    let _ = std::fs::remove_file(&flag);
    assert_eq!(r.value(), Some(&7), "{r}");
    let attempts = r.node(0).unwrap().attempts();
    assert_eq!(attempts.len(), 2);
    let first = attempts[0].error.as_ref().unwrap().message();
    assert!(
        first.contains("FAILED") && first.contains("SIGABRT"),
        "{first}"
    );
    assert_nothing_left(&r.dispatch_id());
}

// ---- hooks ------------------------------------------------------------------------------------

fn note_pid() -> Result<(), String> {
    let job = std::env::var("SLURM_JOB_ID").map_err(|_| "not in a Slurm job".to_string())?;
    let path = std::env::temp_dir().join(format!("covalent-slurm-test-hook-{job}"));
    std::fs::write(path, std::process::id().to_string()).map_err(|e| e.to_string())
}

#[electron(executor = "slurm", deps_bash = "test -n \"$SLURM_JOB_ID\"", call_before = note_pid)]
fn hooked() -> (String, u32) {
    (
        std::env::var("SLURM_JOB_ID").unwrap_or_default(),
        std::process::id(),
    )
}

#[electron(executor = "slurm", deps_bash = "echo cannot install >&2; false")]
fn broken_deps() -> u32 {
    0
}

#[lattice]
fn hooks() -> ((String, u32), u32) {
    (hooked(), broken_deps())
}

#[test]
fn hooks_run_inside_the_job() {
    need_slurm!("hooks_run_inside_the_job");
    let r = covalent::dispatch_sync(hooks().with_config(config())).unwrap();
    let node = |name: &str| r.nodes().find(|n| n.name() == name).unwrap();
    let (job, pid) = node("hooked").output_as::<(String, u32)>().unwrap();
    assert_eq!(job, job_id(&node("hooked")));
    let hook_file = std::env::temp_dir().join(format!("covalent-slurm-test-hook-{job}"));
    let hook_pid: u32 = std::fs::read_to_string(&hook_file)
        .unwrap()
        .parse()
        .unwrap();
    let _ = std::fs::remove_file(hook_file);
    assert_eq!(hook_pid, pid, "call_before ran in the job's worker");
    let e = node("broken_deps").error().unwrap();
    assert!(
        e.contains("deps_bash") && e.contains("cannot install"),
        "{e}"
    );
    assert_nothing_left(&r.dispatch_id());
}

// ---- time limits and cancellation -------------------------------------------------------------

#[electron(executor = "slurm", time_limit = "3s")]
fn too_slow() -> i64 {
    println!("started");
    std::thread::sleep(Duration::from_secs(120));
    1
}

#[lattice]
fn timed() -> i64 {
    too_slow()
}

#[test]
fn a_time_limit_becomes_time_and_scancels_the_job() {
    need_slurm!("a_time_limit_becomes_time_and_scancels_the_job");
    let start = Instant::now();
    let r = covalent::dispatch_sync(timed().with_config(config())).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "{:?}",
        start.elapsed()
    );
    let node = r.node(0).unwrap();
    assert_eq!(node.status(), Status::Failed);
    assert!(
        node.error().unwrap().contains("timed out after 3s"),
        "{:?}",
        node.error()
    );
    let id = job_id(&node);
    assert_eq!(job_state(&id), "CANCELLED", "the job was scancelled");
    assert_eq!(
        sh(&format!("squeue -h -t all -j {id} -o %l")),
        "1:00",
        "--time is the limit in whole minutes, rounded up"
    );
    assert!(node.stdout().contains("started"), "{:?}", node.stdout());
    assert_nothing_left(&r.dispatch_id());
}

/// Slurm's own limit (the `time` option, no covalent time limit): TIMEOUT, after ~90 s
/// (1-minute granularity plus Slurm's 30 s sweep). The suite's only test this slow.
#[electron(executor = SlurmExecutor { time: Some("1".into()), poll_interval: Duration::from_millis(500), ..Default::default() })]
fn outlives_its_job() -> i64 {
    std::thread::sleep(Duration::from_secs(600));
    1
}

#[lattice]
fn slurm_timed() -> i64 {
    outlives_its_job()
}

#[test]
fn slurm_timeout_fails_the_node_as_timed_out() {
    need_slurm!("slurm_timeout_fails_the_node_as_timed_out");
    let start = Instant::now();
    let r = covalent::dispatch_sync(slurm_timed().with_config(config())).unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(55) && took < Duration::from_secs(200),
        "{took:?}"
    );
    let node = r.node(0).unwrap();
    assert_eq!(node.status(), Status::Failed);
    assert!(
        node.error().unwrap().contains("timed out after 1m"),
        "{:?}",
        node.error()
    );
    assert_eq!(job_state(&job_id(&node)), "TIMEOUT");
    assert_nothing_left(&r.dispatch_id());
}

#[electron(executor = "slurm")]
fn waits_forever() -> i64 {
    println!("waiting");
    std::thread::sleep(Duration::from_secs(600));
    1
}

#[lattice]
fn cancellable() -> i64 {
    waits_forever()
}

#[covalent::test]
async fn cancelling_scancels_the_job() {
    need_slurm!("cancelling_scancels_the_job");
    let d = covalent::dispatch(cancellable().with_config(config()))
        .await
        .unwrap();
    let tail = d.id().simple().to_string()[20..].to_string();
    let start = Instant::now();
    while !sh("squeue -h -t all -o '%j %T'")
        .lines()
        .any(|l| l.contains(&tail) && l.ends_with("RUNNING"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the job never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.cancel();
    let r = d.wait().await.unwrap();
    assert_eq!(r.status(), Status::Cancelled);
    let node = r.node(0).unwrap();
    assert_eq!(node.status(), Status::Cancelled);
    assert_eq!(job_state(&job_id(&node)), "CANCELLED");
    assert!(node.stdout().contains("waiting"), "{:?}", node.stdout());
    assert_nothing_left(&r.dispatch_id());
}

// ---- parallel jobs ----------------------------------------------------------------------------

/// Waits until the other task has started too: only finishes if both run at once.
#[electron(executor = "slurm")]
fn rendezvous(me: String, other: String) -> bool {
    std::fs::write(&me, "here").unwrap();
    let start = Instant::now();
    while !Path::new(&other).exists() {
        if start.elapsed() > Duration::from_secs(30) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[lattice]
fn pair(a: String, b: String) -> (bool, bool) {
    (rendezvous(a.clone(), b.clone()), rendezvous(b, a))
}

#[test]
fn two_tasks_run_in_parallel() {
    need_slurm!("two_tasks_run_in_parallel");
    let (a, b) = (marker("left"), marker("right"));
    let r = covalent::dispatch_sync(
        pair(a.display().to_string(), b.display().to_string()).with_config(config()),
    )
    .unwrap();
    let _ = (std::fs::remove_file(&a), std::fs::remove_file(&b));
    assert_eq!(r.value(), Some(&(true, true)), "{r}");
    let ids: Vec<String> = r
        .nodes()
        .filter(|n| n.name() == "rendezvous")
        .map(|n| job_id(&n))
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "two jobs");
    assert_nothing_left(&r.dispatch_id());
}

// ---- bad input --------------------------------------------------------------------------------

#[electron(executor = SlurmExecutor { slurm_path: Some("/nonexistent/slurm/bin".into()), ..Default::default() })]
fn nowhere_to_submit() -> i64 {
    1
}

#[lattice]
fn no_sbatch() -> i64 {
    nowhere_to_submit()
}

#[test]
fn a_missing_sbatch_says_what_to_do() {
    // Needs no cluster: the commands are looked for where there are none.
    let r = covalent::dispatch_sync(no_sbatch().with_config(config())).unwrap();
    let e = r.node(0).unwrap().error().unwrap().to_string();
    assert!(
        e.contains("sbatch not found: is this a Slurm login node? set ssh = "),
        "{e}"
    );
}

#[electron(executor = SlurmExecutor { partition: Some("no-such-partition".into()), ..Default::default() })]
fn misplaced() -> i64 {
    1
}

#[lattice]
fn rejected() -> i64 {
    misplaced()
}

#[test]
fn a_rejected_job_fails_with_sbatchs_reason() {
    need_slurm!("a_rejected_job_fails_with_sbatchs_reason");
    let start = Instant::now();
    let r = covalent::dispatch_sync(rejected().with_config(config())).unwrap();
    assert!(start.elapsed() < Duration::from_secs(20));
    let node = r.node(0).unwrap();
    let e = node.error().unwrap();
    assert!(
        e.contains("sbatch rejected the job") && e.contains("invalid partition"),
        "{e}"
    );
    let dir = node.job_handle().unwrap().0["dir"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!Path::new(&dir).exists(), "its directory is removed");
    assert_nothing_left(&r.dispatch_id());
}

fn unreachable_login() -> SlurmExecutor {
    SlurmExecutor {
        ssh: Some(SshOptions {
            hostname: "127.0.0.1".into(),
            port: Some(1),
            connect_timeout: Duration::from_secs(5),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[electron(executor = unreachable_login())]
fn behind_a_closed_port() -> i64 {
    1
}

#[lattice]
fn unreachable() -> i64 {
    behind_a_closed_port()
}

#[test]
fn an_unreachable_login_node_fails_fast() {
    if sh("command -v ssh").is_empty() {
        engine::skip("an_unreachable_login_node_fails_fast", "no ssh client here");
        return;
    }
    let start = Instant::now();
    let r = covalent::dispatch_sync(unreachable().with_config(config())).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let e = r.node(0).unwrap().error().unwrap().to_string();
    assert!(
        e.contains("cannot connect to the Slurm login node 127.0.0.1:1") && e.contains("refused"),
        "{e}"
    );
}

// ---- through a login node over SSH ------------------------------------------------------------

/// The Slurm executor through the test sshd (`None`: skipped).
fn login_node(test: &str) -> Option<SlurmExecutor> {
    if let Err(why) = engine::slurm() {
        engine::skip(test, &why);
        return None;
    }
    let env = match engine::sshd() {
        Ok(env) => env,
        Err(why) => {
            engine::skip(test, &why);
            return None;
        }
    };
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Some(SlurmExecutor {
        ssh: Some(SshOptions {
            hostname: get("COVALENT_SSH_HOST"),
            port: get("COVALENT_SSH_PORT").parse().ok(),
            username: Some(get("COVALENT_SSH_USER")),
            ssh_key_file: Some(get("COVALENT_SSH_KEY").into()),
            known_hosts: Some(get("COVALENT_SSH_KNOWN_HOSTS").into()),
            ..Default::default()
        }),
        poll_interval: Duration::from_millis(100),
        ..Default::default()
    })
}

#[electron]
fn remote_user_and_job() -> (String, String) {
    println!("on the cluster");
    (
        std::env::var("SLURM_JOB_USER").unwrap_or_default(),
        std::env::var("SLURM_JOB_ID").unwrap_or_default(),
    )
}

#[lattice]
fn remote() -> (String, String) {
    remote_user_and_job()
}

#[test]
fn jobs_are_submitted_through_a_login_node() {
    let Some(exec) = login_node("jobs_are_submitted_through_a_login_node") else {
        return;
    };
    let user = exec.ssh.as_ref().unwrap().username.clone().unwrap();
    let r = covalent::dispatch_sync(
        remote()
            .with_executor(covalent::executor::ExecutorRef::new(exec))
            .with_config(config()),
    )
    .unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let node = r.node(0).unwrap();
    let (job_user, job) = node.output_as::<(String, String)>().unwrap();
    assert_eq!(job_user, user, "the job ran as the login user");
    assert_eq!(job, job_id(&node));
    assert!(
        node.stdout().contains("on the cluster"),
        "{:?}",
        node.stdout()
    );
    assert_eq!(job_state(&job), "COMPLETED");
    // The task directory (relative to the login home) is gone, the binary stays cached.
    let dir = node.job_handle().unwrap().0["dir"]
        .as_str()
        .unwrap()
        .to_string();
    let home = sh(&format!("getent passwd {user} | cut -d: -f6"));
    assert!(!Path::new(&home).join(&dir).exists(), "{dir} is removed");
    assert!(Path::new(&home).join(".cache/covalent/slurm/bin").is_dir());
    assert_nothing_left(&r.dispatch_id());
}

#[test]
fn an_unknown_host_key_is_refused() {
    let Some(mut exec) = login_node("an_unknown_host_key_is_refused") else {
        return;
    };
    let empty = tempfile::NamedTempFile::new().unwrap();
    exec.ssh.as_mut().unwrap().known_hosts = Some(empty.path().to_path_buf());
    let start = Instant::now();
    let r = covalent::dispatch_sync(
        remote()
            .with_executor(covalent::executor::ExecutorRef::new(exec))
            .with_config(config()),
    )
    .unwrap();
    assert!(start.elapsed() < Duration::from_secs(20));
    let e = r.node(0).unwrap().error().unwrap().to_string();
    assert!(e.contains("host key is unknown or changed"), "{e}");
    assert_nothing_left(&r.dispatch_id());
}

// ---- the example --------------------------------------------------------------------------------

#[test]
fn the_slurm_example_runs() {
    need_slurm!("the_slurm_example_runs");
    // It names the plugin only through `use covalent_slurm as _;`: this also shows that
    // linking the crate that way registers `slurm`.
    let out = run_example("slurm_executor", &[]);
    assert!(
        out.contains("sum of squares of 1..=4 = 30, computed by 4 Slurm jobs"),
        "{out}"
    );
    assert!(out.contains("square: Slurm job "), "{out}");
}
