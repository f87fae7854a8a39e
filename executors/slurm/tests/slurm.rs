//! The `slurm` executor against a real single-node Slurm cluster (started through
//! `scripts/slurm-up.sh` when it is not up and this machine allows it; skipped with a message
//! otherwise, a failure under `COVALENT_REQUIRE_ENGINES=1`), with this test binary as the
//! worker: the executor conformance suite of `covalent-test-support` (a time limit and
//! cancellation scancel the job), and what is particular to Slurm: job ids, states and
//! options, `--time` from a time limit, Slurm's own TIMEOUT, submission through a login node
//! over SSH, and bad input (no sbatch, a rejected job, an unreachable or unknown login node).
//!
//! Every test checks that no job of its dispatch is left queued or running.

covalent_test_support::isolated_home!();

mod engine;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use covalent::executor::JobHandle;
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

/// The job was scancelled (what a time-out or cancellation must do to it).
fn scancelled(job: &JobHandle) -> Result<(), String> {
    let id = job.0["job_id"]
        .as_str()
        .ok_or("no job id in the job handle")?;
    match job_state(id) {
        state if state == "CANCELLED" => Ok(()),
        state => Err(format!("job {id} is {state:?}, not CANCELLED")),
    }
}

covalent_test_support::executor_conformance! {
    executor: "slurm",
    name: "slurm",
    config: config(),
    engine: |_| engine::slurm(),
    shared_dir: std::env::temp_dir(),
    shared_dir_in_task: std::env::temp_dir(),
    time_limit: "3s",
    stopped: scancelled,
    leftovers: live_jobs,
    keeps_streams_of_stopped_tasks: true,
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
    std::process::abort()
}

#[lattice]
fn failures() -> (i64, i64) {
    (fails(), aborts())
}

/// The Slurm side of the suite's failure scenario: an `Err` is a job that COMPLETED, a crash a
/// FAILED job, and the node says which.
#[test]
fn failed_tasks_and_crashed_jobs_have_their_slurm_states() {
    need_slurm!("failed_tasks_and_crashed_jobs_have_their_slurm_states");
    let r = covalent::dispatch_sync(failures().with_config(config())).unwrap();
    assert_eq!(r.status(), Status::Failed);
    let node = |name: &str| r.nodes().find(|n| n.name() == name).unwrap();
    assert_eq!(job_state(&job_id(&node("fails"))), "COMPLETED");
    let crash = node("aborts");
    let e = crash.error().unwrap();
    let id = job_id(&crash);
    assert!(e.contains(&format!("Slurm job {id} ended FAILED")), "{e}");
    assert_eq!(job_state(&id), "FAILED");
    assert_nothing_left(&r.dispatch_id());
}

// ---- time limits ------------------------------------------------------------------------------

#[electron(executor = "slurm", time_limit = "3s")]
fn quick_with_a_limit() -> i64 {
    1
}

#[lattice]
fn limited() -> i64 {
    quick_with_a_limit()
}

/// The suite shows that a time limit scancels the job; here, that it also becomes `--time`.
#[test]
fn a_time_limit_becomes_time_in_whole_minutes() {
    need_slurm!("a_time_limit_becomes_time_in_whole_minutes");
    let r = covalent::dispatch_sync(limited().with_config(config())).unwrap();
    assert_eq!(r.value(), Some(&1), "{r}");
    let id = job_id(&r.node(0).unwrap());
    assert_eq!(
        sh(&format!("squeue -h -t all -j {id} -o %l")),
        "1:00",
        "--time is the limit in whole minutes, rounded up"
    );
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
    match engine::login_node_ssh() {
        Ok(ssh) => Some(SlurmExecutor {
            ssh: Some(ssh),
            poll_interval: Duration::from_millis(100),
            ..Default::default()
        }),
        Err(why) => {
            engine::skip(test, &why);
            None
        }
    }
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

#[electron]
fn remote_big(n: u32) -> Vec<u32> {
    (0..n).collect()
}

#[lattice]
fn remote_big_flow(n: u32) -> Vec<u32> {
    remote_big(n)
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

    // A large output (1.3 MB of JSON) is written by the job to a file of its own, streamed
    // back over the login node's connection, checked, and its task directory removed after.
    let exec = login_node("jobs_are_submitted_through_a_login_node").unwrap();
    let n = 200_000u32;
    let r = covalent::dispatch_sync(
        remote_big_flow(n)
            .with_executor(covalent::executor::ExecutorRef::new(exec))
            .with_config(config()),
    )
    .unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let v = r.value().unwrap();
    assert!(v.len() == n as usize && v.iter().enumerate().all(|(i, &x)| x as usize == i));
    let dir = r.node(0).unwrap().job_handle().unwrap().0["dir"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!Path::new(&home).join(&dir).exists(), "{dir} is removed");
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

/// Set in the child process of `a_deep_home_does_not_break_the_login_node_connection`.
const DEEP_CHILD: &str = "COVALENT_TEST_DEEP_HOME_CHILD";

#[test]
fn a_deep_home_does_not_break_the_login_node_connection() {
    if login_node("a_deep_home_does_not_break_the_login_node_connection").is_none() {
        return;
    }
    // A home and a temporary directory of 100 characters each, as on many HPC file systems.
    let base = tempfile::tempdir().unwrap();
    let home = covalent_test_support::deep_dir(base.path(), "h", 100);
    let tmp = covalent_test_support::deep_dir(base.path(), "t", 100);
    let env = engine::sshd().unwrap();
    let key = &env.iter().find(|(k, _)| k == "COVALENT_SSH_KEY").unwrap().1;
    covalent_test_support::run_ignored_test(
        "deep_home_child",
        &[
            (DEEP_CHILD, "1".as_ref()),
            ("HOME", home.as_ref()),
            ("TMPDIR", tmp.as_ref()),
            (
                "COVALENT_SSHD_DIR",
                Path::new(key).parent().unwrap().as_os_str(),
            ),
        ],
    );
}

#[test]
#[ignore = "run by a_deep_home_does_not_break_the_login_node_connection with a deep HOME"]
fn deep_home_child() {
    if std::env::var_os(DEEP_CHILD).is_none() {
        return;
    }
    assert_eq!(std::env::var("HOME").unwrap().len(), 100);
    let mut exec = login_node("deep_home_child").expect("the parent checked the login node");
    // A fresh connection: its socket is made here.
    exec.ssh
        .as_mut()
        .unwrap()
        .options
        .push("ServerAliveCountMax=4".into());
    let r = covalent::dispatch_sync(
        remote()
            .with_executor(covalent::executor::ExecutorRef::new(exec))
            .with_config(config()),
    )
    .unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
}
