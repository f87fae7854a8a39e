//! The `container` executor against real podman (with runc, and an image built offline by
//! `scripts/podman-image.sh`; skipped with a message when that cannot be had, a failure under
//! `COVALENT_REQUIRE_ENGINES=1`), with this test binary as the worker: results, streams and
//! options, failures and crashes, hooks, a time limit, cancellation, retries after a crash,
//! parallel tasks, and a missing image. Every test checks that no container of its dispatch is
//! left.

mod engine;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use covalent::prelude::*;
use covalent_container::{ContainerExecutor, Engine};
use covalent_test_support::run_example;

const CONFIG: &str = r#"
[sdk]
record = false
progress = false

[executors.container]
engine = "podman"
image = "localhost/covalent-worker:latest"
runtime = "runc"
cgroup_manager = "cgroupfs"
network = "none"
"#;

fn config() -> covalent::Config {
    covalent::Config::parse(CONFIG, Path::new("container-test.toml")).unwrap()
}

/// The test settings as a value, for electrons that need more options.
fn podman() -> ContainerExecutor {
    ContainerExecutor {
        engine: Some(Engine::Podman),
        image: engine::IMAGE.into(),
        runtime: Some("runc".into()),
        cgroup_manager: Some("cgroupfs".into()),
        network: Some("none".into()),
        ..Default::default()
    }
}

/// A host directory every container of these tests sees at `/shared`.
static SHARED: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("covalent-container-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
});

fn with_shared_dir() -> ContainerExecutor {
    ContainerExecutor {
        mounts: vec![format!("{}:/shared", SHARED.display())],
        ..podman()
    }
}

macro_rules! need_podman {
    ($test:literal) => {
        if let Err(why) = engine::podman() {
            engine::skip($test, &why);
            return;
        }
    };
}

fn container_of(node: &covalent::NodeResult<'_>) -> String {
    let h = node.job_handle().expect("a job handle");
    h.0["container"]
        .as_str()
        .expect("a container name")
        .to_string()
}

/// Containers (running or not) whose name carries the end of the dispatch id.
fn containers_of(dispatch: &covalent::Uuid) -> Vec<String> {
    let tail = dispatch.simple().to_string()[20..].to_string();
    let out = Command::new("podman")
        .args(["ps", "--all", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&tail))
        .map(str::to_string)
        .collect()
}

fn assert_nothing_left(dispatch: &covalent::Uuid) {
    assert_eq!(
        containers_of(dispatch),
        Vec::<String>::new(),
        "containers left behind"
    );
}

// ---- results and streams --------------------------------------------------------------------

#[electron(executor = "container")]
fn greet(name: String) -> String {
    println!("hello from {}", std::env::current_dir().unwrap().display());
    eprintln!("a warning for {name}");
    format!("hello, {name}")
}

#[electron]
fn shout(s: String) -> String {
    s.to_uppercase()
}

fn with_env() -> ContainerExecutor {
    ContainerExecutor {
        env: [("COVALENT_TEST_GREETING".to_string(), "bonjour".to_string())].into(),
        ..podman()
    }
}

/// What the container looks like from inside: the env option, the hostname (the container's
/// id, not this host's), whether the network is off.
#[electron(executor = with_env())]
fn inside() -> (String, String, bool) {
    let net = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    (
        std::env::var("COVALENT_TEST_GREETING").unwrap_or_default(),
        std::fs::read_to_string("/etc/hostname")
            .unwrap_or_default()
            .trim()
            .to_string(),
        net.lines()
            .filter(|l| l.contains(':'))
            .all(|l| l.trim_start().starts_with("lo:")),
    )
}

#[lattice]
fn greetings(name: String) -> (String, (String, String, bool)) {
    (shout(greet(name)), inside())
}

#[test]
fn tasks_run_in_containers_with_their_streams() {
    need_podman!("tasks_run_in_containers_with_their_streams");
    let r = covalent::dispatch_sync(greetings("world".into()).with_config(config())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let (greeting, (env, hostname, no_network)) = r.value().unwrap().clone();
    assert_eq!(greeting, "HELLO, WORLD");
    assert_eq!(env, "bonjour");
    let this_host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert_ne!(hostname, this_host.trim(), "ran in a container");
    assert!(no_network, "network = \"none\" is passed on");
    let node = r.nodes().find(|n| n.name() == "greet").unwrap();
    assert_eq!(node.executor().as_deref(), Some("container"));
    assert!(
        node.stdout().contains("hello from /covalent/task"),
        "{:?}",
        node.stdout()
    );
    assert!(
        node.stderr().contains("a warning for world"),
        "{:?}",
        node.stderr()
    );
    assert!(container_of(&node).starts_with("covalent-greet-"));
    let dir = node.job_handle().unwrap().0["dir"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!Path::new(&dir).exists(), "the task directory is removed");
    assert_nothing_left(&r.dispatch_id());
}

// ---- failures ---------------------------------------------------------------------------------

#[electron(executor = "container")]
fn fails() -> Result<i64, String> {
    Err("no luck".to_string())
}

#[electron(executor = "container")]
fn aborts() -> i64 {
    eprintln!("about to abort");
    std::process::abort()
}

#[electron(executor = "container")]
fn exits() -> i64 {
    std::process::exit(3)
}

#[lattice]
fn failures() -> (i64, i64, i64) {
    (fails(), aborts(), exits())
}

#[test]
fn failures_and_crashes_fail_their_node_with_the_reason() {
    need_podman!("failures_and_crashes_fail_their_node_with_the_reason");
    let r = covalent::dispatch_sync(failures().with_config(config())).unwrap();
    assert_eq!(r.status(), Status::Failed);
    let err = |name: &str| {
        r.nodes()
            .find(|n| n.name() == name)
            .unwrap()
            .error()
            .unwrap()
            .to_string()
    };
    assert_eq!(err("fails"), "no luck");
    let crash = err("aborts");
    assert!(
        crash.contains("the worker was killed by signal 6 (SIGABRT)"),
        "{crash}"
    );
    assert!(
        crash.contains("about to abort"),
        "the container's stderr is shown: {crash}"
    );
    assert!(
        err("exits").contains("the container exited with code 3"),
        "{}",
        err("exits")
    );
    assert_nothing_left(&r.dispatch_id());
}

static HOOK_RAN: AtomicBool = AtomicBool::new(false);

fn note_hook() {
    HOOK_RAN.store(true, Ordering::SeqCst);
}

#[electron(executor = "container", deps_bash = "test -d /covalent/task", call_before = note_hook)]
fn hooked() -> bool {
    HOOK_RAN.load(Ordering::SeqCst)
}

#[electron(executor = "container", deps_bash = "echo cannot install >&2; false")]
fn broken_deps() -> bool {
    true
}

#[lattice]
fn hooks() -> (bool, bool) {
    (hooked(), broken_deps())
}

#[test]
fn hooks_run_inside_the_container() {
    need_podman!("hooks_run_inside_the_container");
    let r = covalent::dispatch_sync(hooks().with_config(config())).unwrap();
    let node = |name: &str| r.nodes().find(|n| n.name() == name).unwrap();
    assert_eq!(
        node("hooked").output_as::<bool>(),
        Some(true),
        "call_before ran in the worker"
    );
    let e = node("broken_deps").error().unwrap();
    assert!(
        e.contains("deps_bash") && e.contains("cannot install"),
        "{e}"
    );
    assert_nothing_left(&r.dispatch_id());
}

// ---- time limits, cancellation, retries, parallel tasks ----------------------------------------

#[electron(executor = "container", time_limit = "2s")]
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
fn a_time_limit_removes_the_container() {
    need_podman!("a_time_limit_removes_the_container");
    let start = Instant::now();
    let r = covalent::dispatch_sync(timed().with_config(config())).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let node = r.node(0).unwrap();
    assert_eq!(node.status(), Status::Failed);
    assert!(
        node.error().unwrap().contains("timed out after 2s"),
        "{:?}",
        node.error()
    );
    assert!(node.stdout().contains("started"), "{:?}", node.stdout());
    assert_nothing_left(&r.dispatch_id());
}

#[electron(executor = "container")]
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
async fn cancelling_removes_the_container() {
    need_podman!("cancelling_removes_the_container");
    let d = covalent::dispatch(cancellable().with_config(config()))
        .await
        .unwrap();
    let id = d.id();
    let start = Instant::now();
    while containers_of(&id).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the container never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.cancel();
    let r = d.wait().await.unwrap();
    assert_eq!(r.status(), Status::Cancelled);
    let node = r.node(0).unwrap();
    assert_eq!(node.status(), Status::Cancelled);
    assert!(node.stdout().contains("waiting"), "{:?}", node.stdout());
    assert_nothing_left(&id);
}

#[electron(executor = with_shared_dir(), retries = 1)]
fn crashes_once(flag: String) -> i64 {
    let flag = Path::new("/shared").join(flag);
    if !flag.exists() {
        std::fs::write(&flag, "crashed").unwrap();
        std::process::exit(101);
    }
    7
}

#[lattice]
fn retried(flag: String) -> i64 {
    crashes_once(flag)
}

#[test]
fn a_worker_crash_is_retried() {
    need_podman!("a_worker_crash_is_retried");
    let r =
        covalent::dispatch_sync(retried("crash-once".to_string()).with_config(config())).unwrap();
    assert_eq!(r.value(), Some(&7), "{r}");
    let attempts = r.node(0).unwrap().attempts();
    assert_eq!(attempts.len(), 2);
    let first = attempts[0].error.as_ref().unwrap().message();
    assert!(first.contains("exited with code 101"), "{first}");
    assert_nothing_left(&r.dispatch_id());
}

/// Waits until the other task has started too: only finishes if both run at once.
#[electron(executor = with_shared_dir())]
fn rendezvous(me: String, other: String) -> bool {
    let (me, other) = (
        Path::new("/shared").join(me),
        Path::new("/shared").join(other),
    );
    std::fs::write(&me, "here").unwrap();
    let start = Instant::now();
    while !other.exists() {
        if start.elapsed() > Duration::from_secs(20) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[lattice]
fn pair() -> (bool, bool) {
    (
        rendezvous("left".to_string(), "right".to_string()),
        rendezvous("right".to_string(), "left".to_string()),
    )
}

#[test]
fn two_tasks_run_in_parallel() {
    need_podman!("two_tasks_run_in_parallel");
    let r = covalent::dispatch_sync(pair().with_config(config())).unwrap();
    assert_eq!(r.value(), Some(&(true, true)), "{r}");
    assert_nothing_left(&r.dispatch_id());
}

// ---- bad input --------------------------------------------------------------------------------

#[electron(executor = ContainerExecutor { image: "covalent-no-such-image".into(), ..podman() })]
fn nowhere_to_run() -> i64 {
    1
}

#[lattice]
fn missing_image() -> i64 {
    nowhere_to_run()
}

#[test]
fn a_missing_image_is_a_clear_error() {
    need_podman!("a_missing_image_is_a_clear_error");
    let start = Instant::now();
    let r = covalent::dispatch_sync(missing_image().with_config(config())).unwrap();
    assert!(start.elapsed() < Duration::from_secs(20));
    let e = r.node(0).unwrap().error().unwrap().to_string();
    assert_eq!(
        e,
        "image covalent-no-such-image not found locally (images are not pulled here: build or import it)"
    );
    assert_nothing_left(&r.dispatch_id());
}

// ---- the examples -------------------------------------------------------------------------------

#[test]
fn the_container_examples_run() {
    need_podman!("the_container_examples_run");
    // The examples' binaries need no more libraries than this test's, which the image has.
    let out = run_example("container_executor", &[]);
    assert!(out.contains("9 words, counted in 3 containers"), "{out}");
    assert!(
        out.contains("count_words: container covalent-count_words-"),
        "{out}"
    );
    let out = run_example("custom_container_executor", &[]);
    assert!(out.contains("add: adding in a container"), "{out}");
    assert!(
        out.contains(
            "both electrons ran in containers started by the DockerExecutor written above"
        ),
        "{out}"
    );
}
