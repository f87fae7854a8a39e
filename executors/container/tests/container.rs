//! The `container` executor against real podman (with runc, and an image built offline by
//! `scripts/podman-image.sh`; skipped with a message when that cannot be had, a failure under
//! `COVALENT_REQUIRE_ENGINES=1`), with this test binary as the worker: the executor
//! conformance suite of `covalent-test-support` (a time limit and cancellation remove the
//! container; tasks share a mounted directory), what is particular to containers (options,
//! the container's view, names), and a missing image. Every test checks that no container of
//! its dispatch is left.

covalent_test_support::isolated_home!();

mod engine;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use covalent::executor::JobHandle;
use covalent::prelude::*;
use covalent_container::ContainerExecutor;
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
    engine::test_executor()
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

/// The task's container is gone (stopped and removed).
fn container_gone(job: &JobHandle) -> Result<(), String> {
    let name = job.0["container"]
        .as_str()
        .ok_or("no container in the job handle")?;
    let out = Command::new("podman")
        .args(["ps", "--all", "--format", "{{.Names}} {{.State}}"])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().find(|l| l.split(' ').next() == Some(name)) {
        Some(line) => Err(format!("container {line}")),
        None => Ok(()),
    }
}

covalent_test_support::executor_conformance! {
    executor: with_shared_dir(),
    name: "container",
    config: config(),
    engine: |_| engine::podman(),
    shared_dir: &*SHARED,
    shared_dir_in_task: "/shared",
    time_limit: "2s",
    stopped: container_gone,
    leftovers: containers_of,
    keeps_streams_of_stopped_tasks: true,
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
