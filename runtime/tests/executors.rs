//! Executors: the async and blocking interfaces, the task context, base options, plugins and
//! configuration, hooks.

covalent_test_support::isolated_home!();

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use covalent::Config;
use covalent::executor::{
    BaseOptions, BlockingExecutor, Executor, ExecutorError, ExecutorRef, JobHandle, LocalExecutor,
    Output, Task, TaskContext,
};
use covalent::prelude::*;
use serde::{Deserialize, Serialize};

/// Records what the runtime tells it.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Probe {
    #[serde(flatten)]
    base: BaseOptions,
    #[serde(skip)]
    seen: Arc<Mutex<Vec<String>>>,
}

#[covalent::executor::async_trait]
impl Executor for Probe {
    fn short_name(&self) -> &str {
        "probe"
    }
    fn base(&self) -> &BaseOptions {
        &self.base
    }
    async fn setup(&self, ctx: &TaskContext) -> Result<(), ExecutorError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("setup {}", ctx.node_id()));
        Ok(())
    }
    async fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let c = ctx.get_dispatch_context();
        ctx.set_job_handle(format!("job-{}", c.node_id));
        ctx.record_streams(format!("out of {}\n", task.electron_name()), "err\n");
        self.seen.lock().unwrap().push(format!(
            "run {} {} {} in {}",
            task.electron_name(),
            c.node_id,
            serde_json::Value::from(task.inputs_json()?),
            c.dispatch_id
        ));
        Ok(task.call().await?)
    }
    async fn teardown(&self, ctx: &TaskContext) -> Result<(), ExecutorError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("teardown {}", ctx.node_id()));
        Ok(())
    }
}

static LOGS: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());

static PROBE: LazyLock<ExecutorRef> = LazyLock::new(|| {
    ExecutorRef::new(Probe {
        base: BaseOptions {
            log_stdout: Some(LOGS.path().join("logs/out.log")),
            log_stderr: Some(LOGS.path().join("logs/err.log")),
            ..Default::default()
        },
        seen: Arc::default(),
    })
});

#[electron(executor = &PROBE)]
fn probed(x: i64) -> i64 {
    x + 1
}

static OTHER: LazyLock<ExecutorRef> = LazyLock::new(|| ExecutorRef::new(Probe::default()));

#[electron(executor = &OTHER)]
fn other(x: i64) -> i64 {
    x + 1
}

#[lattice]
fn probe_flow() -> i64 {
    probed(probed(1))
}

#[test]
fn executors_get_setup_run_teardown_with_a_context() {
    let r = covalent::dispatch_sync(probe_flow()).unwrap();
    assert_eq!(r.value(), Some(&3));
    let probe = PROBE.downcast_ref::<Probe>().unwrap();
    let seen = probe.seen.lock().unwrap().clone();
    let id = r.dispatch_id();
    // The inner call is node 0 (its argument is evaluated first), the outer one node 2.
    assert_eq!(
        seen,
        vec![
            "setup 0".to_string(),
            format!("run probed 0 [1] in {id}"),
            "teardown 0".to_string(),
            "setup 2".to_string(),
            format!("run probed 2 [2] in {id}"),
            "teardown 2".to_string(),
        ]
    );
    let n = r.node(0).unwrap();
    assert_eq!(n.executor().as_deref(), Some("probe"));
    assert_eq!(n.executor_instance(), Some(PROBE.instance_id()));
    assert_eq!(n.job_handle(), Some(JobHandle(serde_json::json!("job-0"))));
    assert_eq!(n.stdout(), "out of probed\n");
    assert_eq!(n.stderr(), "err\n");
    let out = std::fs::read_to_string(LOGS.path().join("logs/out.log")).unwrap();
    assert_eq!(out, "out of probed\nout of probed\n");
    let err = std::fs::read_to_string(LOGS.path().join("logs/err.log")).unwrap();
    assert_eq!(err, "err\nerr\n");
}

/// A blocking executor that doubles the output of every i64 task.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Doubler {
    #[serde(flatten)]
    base: BaseOptions,
    factor: i64,
}

impl BlockingExecutor for Doubler {
    fn short_name(&self) -> &str {
        "doubler"
    }
    fn base(&self) -> &BaseOptions {
        &self.base
    }
    fn run(&self, task: Task, _ctx: &TaskContext) -> Result<Output, ExecutorError> {
        if self.factor == 0 {
            return Err(ExecutorError::Failed("factor must not be 0".into()));
        }
        let out = task.call_blocking()?;
        let v: i64 = out.get().map_err(ExecutorError::Failed)?;
        Ok(Output::new(v * self.factor))
    }
}

covalent::register_executor!("doubler", Doubler);

#[electron(executor = "doubler")]
fn doubled(x: i64) -> i64 {
    x
}

#[electron(executor = Doubler { factor: 3, ..Default::default() })]
fn tripled(x: i64) -> i64 {
    x
}

#[lattice]
fn by_name() -> i64 {
    doubled(5)
}

#[lattice]
fn by_value() -> i64 {
    tripled(5)
}

fn config(text: &str) -> Config {
    Config::parse(text, Path::new("test-covalent.toml")).unwrap()
}

#[test]
fn blocking_plugins_are_configured_from_covalent_toml() {
    let cfg = config("[executors.doubler]\nfactor = 2\n");
    let r = covalent::dispatch_sync(by_name().with_config(cfg)).unwrap();
    assert_eq!(r.value(), Some(&10), "{r}");
    let r = covalent::dispatch_sync(by_value()).unwrap();
    assert_eq!(r.value(), Some(&15));
}

#[test]
fn a_failing_plugin_constructor_fails_the_node_not_the_dispatcher() {
    // Defaults give factor = 0: the executor rejects every task.
    let r = covalent::dispatch_sync(by_name().with_config(Config::default())).unwrap();
    assert_eq!(r.status(), covalent::Status::Failed);
    assert!(r.error().unwrap().contains("factor must not be 0"), "{r}");
}

#[test]
fn a_wrong_type_in_the_config_names_file_line_and_key() {
    let e = Config::parse(
        "[sdk]\ndefault_executor = \"local\"\n\n[executors.doubler]\nfactor = \"two\"\n",
        Path::new("covalent.toml"),
    )
    .unwrap_err()
    .to_string();
    // The key's own line and text, not the table's header.
    assert!(
        e.contains("covalent.toml:5: `factor = \"two\"` in [executors.doubler]"),
        "{e}"
    );
    assert!(e.contains("factor"), "{e}");
    let e = Config::parse("[sdk]\nfail_fast = 3\n", Path::new("covalent.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("covalent.toml:2: `fail_fast = 3`"), "{e}");
    let e = Config::parse(
        "[sdk]\ndefualt_executor = \"x\"\n",
        Path::new("covalent.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("defualt_executor"), "{e}");
    let e = Config::parse(
        "[executors.local]\n# the pool\n\nmax_workerz = 3\n",
        Path::new("c.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("c.toml:4: `max_workerz = 3` in [executors.local]") && e.contains("max_workers"),
        "{e}"
    );
    let e = Config::parse(
        "[executors.local]\ncache_dir = \"/tmp\"\nmax_workers = \"x\"\n",
        Path::new("c.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("c.toml:3: `max_workers = \"x\"`"), "{e}");
}

#[test]
fn configured_executors_this_program_lacks_are_warned_about() {
    let c = Config::parse(
        "[sdk]\ndefault_executor = \"loacl\"\n\n[executors.doubler]\nfactor = 2\n\n[executors.slrum]\npartition = \"a\"\n",
        Path::new("covalent.toml"),
    )
    .unwrap();
    let w = c.warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].starts_with(
            "covalent.toml:7: [executors.slrum] configures no executor this program has (it has: "
        ) && w[0].contains("doubler")
            && w[0].contains("check the name"),
        "{w:?}"
    );
    assert!(w[1].contains("`default_executor = \"loacl\"`"), "{w:?}");
    assert!(w[1].contains("will fail"), "{w:?}");
    assert!(Config::default().warnings().is_empty());
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let e = Config::from_file(Path::new("/nonexistent/covalent.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/covalent.toml"), "{e}");
}

#[electron(executor = "nonexistent")]
fn nowhere() -> i64 {
    1
}

#[lattice]
fn unknown_executor() -> (i64, i64) {
    (nowhere(), other(1))
}

#[test]
fn an_unknown_executor_fails_its_node_and_lists_the_registered_ones() {
    let r = covalent::dispatch_sync(unknown_executor()).unwrap();
    assert_eq!(r.status(), covalent::Status::Failed);
    let e = r.node(0).unwrap().error().unwrap();
    assert!(e.contains("unknown executor `nonexistent`"), "{e}");
    assert!(e.contains("local") && e.contains("doubler"), "{e}");
    // The other branch still ran.
    assert_eq!(
        r.nodes()
            .find(|n| n.name() == "other")
            .unwrap()
            .output_as::<i64>(),
        Some(2)
    );
}

#[test]
fn registered_executors_have_defaults() {
    let all = covalent::executor::registered_executors();
    let local = all.iter().find(|e| e.name == "local").unwrap();
    assert!(
        local.defaults.get("time_limit").is_some(),
        "{:?}",
        local.defaults
    );
    assert!(all.iter().any(|e| e.name == "doubler"));
}

#[test]
fn executors_round_trip_through_to_dict_and_from_dict() {
    use covalent::executor::ToDict;
    let e = LocalExecutor {
        base: BaseOptions {
            time_limit: Some(std::time::Duration::from_secs(90)),
            retries: Some(2),
            ..Default::default()
        },
        max_workers: Some(16),
        ..Default::default()
    };
    let d = e.to_dict();
    assert_eq!(d["time_limit"], serde_json::json!("1m 30s"));
    let back: LocalExecutor = covalent::executor::from_dict(d).unwrap();
    assert_eq!(back, e);
    let bad = covalent::executor::from_dict::<LocalExecutor>(serde_json::json!({"retries": "x"}));
    assert!(bad.unwrap_err().to_string().contains("retries"));
}

static FLAKY: AtomicU32 = AtomicU32::new(0);

#[electron]
fn flaky_on_local() -> Result<u32, String> {
    let n = FLAKY.fetch_add(1, Ordering::SeqCst);
    if n < 2 { Err("not yet".into()) } else { Ok(n) }
}

#[lattice]
fn defaults_from_config() -> u32 {
    flaky_on_local()
}

#[test]
fn executor_base_options_set_default_retries() {
    let cfg = config("[executors.local]\nretries = 2\n");
    let r = covalent::dispatch_sync(defaults_from_config().with_config(cfg)).unwrap();
    assert_eq!(r.status(), covalent::Status::Completed, "{r}");
    assert_eq!(r.node(0).unwrap().attempt_count(), 3);
}

static HOOKS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn before() {
    HOOKS.lock().unwrap().push("before");
}

fn after() -> Result<(), String> {
    HOOKS.lock().unwrap().push("after");
    Ok(())
}

#[electron(deps_bash = ["true", "echo ready"], call_before = [before], call_after = after)]
fn hooked() -> i64 {
    HOOKS.lock().unwrap().push("body");
    1
}

#[electron(deps_bash = "echo missing-tool >&2; exit 3")]
fn broken_deps() -> i64 {
    1
}

#[lattice]
fn hooks() -> (i64, i64) {
    (hooked(), broken_deps())
}

#[test]
fn deps_bash_and_call_hooks_run_around_the_task() {
    let r = covalent::dispatch_sync(hooks()).unwrap();
    assert_eq!(*HOOKS.lock().unwrap(), vec!["before", "body", "after"]);
    assert_eq!(r.node(0).unwrap().status(), covalent::Status::Completed);
    let e = r
        .nodes()
        .find(|n| n.name() == "broken_deps")
        .unwrap()
        .error()
        .unwrap();
    assert!(e.contains("deps_bash") && e.contains("missing-tool"), "{e}");
}

static LATTICE_DEFAULT: LazyLock<ExecutorRef> =
    LazyLock::new(|| ExecutorRef::new(LocalExecutor::default()));

#[electron]
fn plain(x: i64) -> i64 {
    x
}

#[lattice(executor = &LATTICE_DEFAULT)]
fn with_default() -> (i64, i64) {
    (plain(1), other(1))
}

#[test]
fn a_lattice_executor_is_the_default_for_its_electrons() {
    let r = covalent::dispatch_sync(with_default()).unwrap();
    assert_eq!(
        r.nodes()
            .find(|n| n.name() == "plain")
            .unwrap()
            .executor_instance(),
        Some(LATTICE_DEFAULT.instance_id())
    );
    assert_eq!(
        r.nodes()
            .find(|n| n.name() == "other")
            .unwrap()
            .executor_instance(),
        Some(OTHER.instance_id())
    );
}

/// Rejects a missing port, as a plugin needing configuration would.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Picky {
    #[serde(deserialize_with = "nonzero_port")]
    port: u16,
}

fn nonzero_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let p = u16::deserialize(d)?;
    if p == 0 {
        return Err(serde::de::Error::custom("set `port` in [executors.picky]"));
    }
    Ok(p)
}

#[covalent::executor::async_trait]
impl Executor for Picky {
    fn short_name(&self) -> &str {
        "picky"
    }
    async fn run(&self, task: Task, _ctx: &TaskContext) -> Result<Output, ExecutorError> {
        Ok(task.call().await?)
    }
}

covalent::register_executor!("picky", Picky);

#[electron(executor = "picky")]
fn on_picky() -> i64 {
    1
}

#[lattice]
fn picky_flow() -> (i64, i64) {
    (on_picky(), other(1))
}

#[test]
fn a_plugin_whose_constructor_fails_fails_its_nodes_with_the_reason() {
    let r = covalent::dispatch_sync(picky_flow().with_config(Config::default())).unwrap();
    assert_eq!(r.status(), covalent::Status::Failed);
    let e = r.node(0).unwrap().error().unwrap();
    assert!(e.contains("cannot create executor `picky`"), "{e}");
    assert!(e.contains("set `port` in [executors.picky]"), "{e}");
    assert_eq!(
        r.nodes()
            .find(|n| n.name() == "other")
            .unwrap()
            .output_as::<i64>(),
        Some(2)
    );
    let r =
        covalent::dispatch_sync(picky_flow().with_config(config("[executors.picky]\nport = 22\n")))
            .unwrap();
    assert_eq!(r.status(), covalent::Status::Completed, "{r}");
}

/// Records the cancel call and watches the cancel flag.
#[derive(Default, Serialize, Deserialize)]
struct Watcher {
    #[serde(skip)]
    cancelled_with: Arc<Mutex<Option<Option<JobHandle>>>>,
    #[serde(skip)]
    saw_flag: Arc<std::sync::atomic::AtomicBool>,
}

impl BlockingExecutor for Watcher {
    fn short_name(&self) -> &str {
        "watcher"
    }
    fn run(&self, _task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        ctx.set_job_handle(42);
        let start = std::time::Instant::now();
        while !ctx.get_cancel_requested() {
            if start.elapsed() > std::time::Duration::from_secs(20) {
                return Err(ExecutorError::Failed("never cancelled".into()));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        self.saw_flag.store(true, Ordering::SeqCst);
        Err(ExecutorError::Cancelled)
    }
    fn cancel(&self, _ctx: &TaskContext, h: Option<&JobHandle>) -> Result<bool, ExecutorError> {
        *self.cancelled_with.lock().unwrap() = Some(h.cloned());
        Ok(true)
    }
}

static WATCHER: LazyLock<ExecutorRef> = LazyLock::new(|| ExecutorRef::blocking(Watcher::default()));

#[electron(executor = &WATCHER, name = "watched job")]
fn watched() -> i64 {
    1
}

#[lattice]
fn watched_flow() -> i64 {
    watched()
}

#[covalent::test]
async fn cancel_reaches_the_executor_with_the_job_handle() {
    let d = covalent::dispatch(watched_flow()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    d.cancel();
    let r = d.wait().await.unwrap();
    assert_eq!(r.status(), covalent::Status::Cancelled);
    let n = r.node(0).unwrap();
    assert_eq!(n.name(), "watched job", "the `name` option names the node");
    assert_eq!(n.status(), covalent::Status::Cancelled);
    assert_eq!(n.job_handle(), Some(JobHandle(serde_json::json!(42))));
    let w = WATCHER
        .downcast_ref::<covalent::executor::Blocking<Watcher>>()
        .unwrap();
    assert_eq!(
        *w.0.cancelled_with.lock().unwrap(),
        Some(Some(JobHandle(serde_json::json!(42))))
    );
    for _ in 0..200 {
        if w.0.saw_flag.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        w.0.saw_flag.load(Ordering::SeqCst),
        "run saw get_cancel_requested()"
    );
}

/// An executor with a bug: it panics.
#[derive(Default, Serialize, Deserialize)]
struct Buggy;

#[covalent::executor::async_trait]
impl Executor for Buggy {
    fn short_name(&self) -> &str {
        "buggy"
    }
    async fn run(&self, _task: Task, _ctx: &TaskContext) -> Result<Output, ExecutorError> {
        panic!("executor bug")
    }
}

#[electron(executor = Buggy)]
fn on_buggy() -> i64 {
    1
}

#[lattice]
fn buggy_flow() -> (i64, i64) {
    (on_buggy(), other(1))
}

#[test]
fn a_panicking_executor_fails_its_node_not_the_dispatcher() {
    let r = covalent::dispatch_sync(buggy_flow()).unwrap();
    assert_eq!(r.status(), covalent::Status::Failed);
    let e = r.node(0).unwrap().error().unwrap();
    assert!(e.contains("executor `buggy` panicked: executor bug"), "{e}");
    assert_eq!(
        r.nodes()
            .find(|n| n.name() == "other")
            .unwrap()
            .output_as::<i64>(),
        Some(2)
    );
}

/// Lets two of its nodes run at once, through the runtime's in-flight limit.
#[derive(Default, Serialize, Deserialize)]
struct Narrow {}

static NARROW_RUNNING: AtomicU32 = AtomicU32::new(0);
static NARROW_MOST: AtomicU32 = AtomicU32::new(0);

static NARROW_SLOTS: LazyLock<Arc<tokio::sync::Semaphore>> =
    LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(2)));

#[covalent::executor::async_trait]
impl Executor for Narrow {
    fn short_name(&self) -> &str {
        "narrow"
    }
    fn in_flight_limit(&self) -> Option<Arc<tokio::sync::Semaphore>> {
        Some(NARROW_SLOTS.clone())
    }
    async fn run(&self, task: Task, _ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let now = NARROW_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        NARROW_MOST.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        NARROW_RUNNING.fetch_sub(1, Ordering::SeqCst);
        Ok(task.call().await?)
    }
}

static NARROW: LazyLock<ExecutorRef> = LazyLock::new(|| ExecutorRef::new(Narrow::default()));

#[electron(executor = &NARROW)]
fn narrow(x: i64) -> i64 {
    x * 10
}

#[lattice]
fn narrow_fan(n: i64) -> Vec<i64> {
    (0..n).map(narrow).collect::<Vec<_>>()
}

#[test]
fn an_in_flight_limit_keeps_the_other_nodes_pending() {
    let r = covalent::dispatch_sync(narrow_fan(6)).unwrap();
    assert_eq!(r.value(), Some(&(0..6).map(|x| x * 10).collect::<Vec<_>>()));
    let most = NARROW_MOST.load(Ordering::SeqCst);
    assert_eq!(most, 2, "the executor ran {most} tasks at once");
    // A node's start is recorded when it leaves PENDING: never more than two ran at once.
    let spans: Vec<_> = r
        .nodes()
        .filter(|n| n.name() == "narrow")
        .map(|n| (n.start_time().unwrap(), n.end_time().unwrap()))
        .collect();
    assert_eq!(spans.len(), 6);
    for (s, _) in &spans {
        let overlapping = spans.iter().filter(|(a, b)| a <= s && s < b).count();
        assert!(overlapping <= 2, "{overlapping} nodes were running at {s}");
    }
}
