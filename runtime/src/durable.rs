//! Dispatches that outlive the process that started them: detached dispatches
//! ([`dispatch_detached`]), resuming an interrupted dispatch from any process ([`resume`]), and
//! cancelling the attempts a dead dispatcher left running ([`cancel_left_running`]).
//!
//! All three re-run the dispatch's own program, which has every electron, lattice and
//! executor plugin the workflow had, in a mode entered before `main` (like the worker):
//!
//! - **dispatcher mode** (`COVALENT_DISPATCHER=<request file>`): rebuilds the lattice from its
//!   registered name and recorded inputs ([`LatticeEntry`], submitted by `#[lattice]`), runs it
//!   to the end under the id its starter chose (reusing and re-attaching to an earlier dispatch
//!   for a resume), and exits. It runs in a session of its own, with its output in the
//!   dispatch's results directory (`dispatcher.log`), so closing the terminal or losing the
//!   login session does not stop it.
//! - **maintenance mode** (`COVALENT_MAINTAIN=<request file>`): rebuilds each executor from the
//!   options recorded with its job handle, cancels the attempts still running through their
//!   handles (scancel, remote kill, container stop), prints what it did as JSON and exits.
//!
//! This module owns those modes and the lattice registry; recording what they need is the
//! store's (`store/resume.rs`), following an attempt is each executor's (`Executor::probe`,
//! `Executor::reattach`).

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api_error::Error;
use crate::config::Config;
use crate::executor::worker::{PARENT_ENV, RESULT_ENV, TASK_ENV};
use crate::executor::{Probe, TaskContext};
use crate::graph::Graph;
use crate::lattice::Lattice;
use crate::status::Status;
use crate::store::Store;
use crate::store::resume::{LeftRunning, build_of};
use crate::value::Value;

/// Environment variable naming the request a dispatcher-mode process runs.
pub const DISPATCHER_ENV: &str = "COVALENT_DISPATCHER";
/// Environment variable naming the request a maintenance-mode process carries out.
pub const MAINTAIN_ENV: &str = "COVALENT_MAINTAIN";
/// Version of the requests; a program of another version refuses them.
const PROTOCOL: u32 = 1;
/// How long a starter waits for a detached dispatcher to record its dispatch.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A `#[lattice]` function, registered under its stable name (`module::path::function`) so
/// that another run of the same program can rebuild it from recorded inputs.
#[derive(Debug)]
pub struct LatticeEntry {
    /// The registered name.
    pub path: &'static str,
    /// Calls the function with the inputs read back from JSON, in parameter order.
    pub rebuild: fn(&[serde_json::Value]) -> Result<AnyLattice, String>,
}

inventory::collect!(LatticeEntry);

/// A built lattice of any result type (what [`LatticeEntry::rebuild`] returns).
pub struct AnyLattice(Graph);

impl AnyLattice {
    /// Erases a lattice's result type.
    pub fn of<T>(l: Lattice<T>) -> Self {
        AnyLattice(l.into_graph())
    }
}

/// Reads a lattice input back from its record: `(&Reader::<T>::new()).read(name, json)`
/// resolves to [`ViaDeserialize`] when `T` implements `Deserialize`, else to [`ViaNothing`],
/// which says why the lattice cannot be rebuilt (so `#[lattice]` registers every lattice, and
/// only those with inputs that read back can be detached or resumed).
pub struct Reader<T>(std::marker::PhantomData<fn() -> T>);

impl<T> Reader<T> {
    /// A reader of `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Reader(std::marker::PhantomData)
    }
}

/// Reads an input whose type implements `Deserialize`.
pub trait ViaDeserialize<T> {
    /// Reads it.
    fn read(&self, name: &str, v: &serde_json::Value) -> Result<T, String>;
}

impl<T: serde::de::DeserializeOwned> ViaDeserialize<T> for Reader<T> {
    fn read(&self, name: &str, v: &serde_json::Value) -> Result<T, String> {
        serde_json::from_value(v.clone()).map_err(|e| {
            format!(
                "input `{name}` (a `{}`) does not read back from its record: {e}",
                std::any::type_name::<T>()
            )
        })
    }
}

/// The fallback for an input type without `Deserialize`: an error saying so.
pub trait ViaNothing<T> {
    /// Says why it cannot be read.
    fn read(&self, name: &str, _v: &serde_json::Value) -> Result<T, String> {
        Err(format!(
            "input `{name}` (a `{}`) does not implement `Deserialize`, so the lattice cannot be rebuilt from its record: derive `serde::Deserialize` for it",
            std::any::type_name::<T>()
        ))
    }
}

impl<T> ViaNothing<T> for &Reader<T> {}

/// The registered lattice named `path`.
fn find_lattice(path: &str) -> Option<&'static LatticeEntry> {
    inventory::iter::<LatticeEntry>
        .into_iter()
        .find(|e| e.path == path)
}

/// What a dispatcher-mode process is asked to run.
#[derive(Debug, Serialize, Deserialize)]
struct DispatchRequest {
    protocol: u32,
    id: Uuid,
    lattice: String,
    inputs: Vec<serde_json::Value>,
    reuse_from: Option<Uuid>,
}

fn durable(msg: impl Into<String>) -> Error {
    Error::Durable(msg.into())
}

/// Starts `lattice` in a dispatcher process of its own and returns its dispatch id as soon as
/// the dispatch is recorded. The dispatcher is this program re-run in dispatcher mode, in its
/// own session, with its output in `<results dir>/<id>/dispatcher.log`: it keeps running after
/// this program exits, the terminal closes or the login session ends. Follow it with
/// `covalent list`, `covalent result ID --wait` or [`crate::wait_result`].
///
/// The lattice is rebuilt there from its registered name and inputs, so its inputs must
/// implement `Deserialize`, and the dispatch uses the process-wide configuration
/// (`covalent.toml`, `COVALENT_HOME`); changes made to the built lattice (`with_config`,
/// `with_executor`, `replace_electron`, `fail_fast`, `record(false)`) cannot travel and are
/// refused. `.reuse(id)` travels.
pub fn dispatch_detached<T: Value>(lattice: Lattice<T>) -> Result<Uuid, Error> {
    let name = lattice.name().to_string();
    if lattice.has_config() {
        return Err(durable(format!(
            "lattice `{name}` has its own configuration (`with_config`), which a detached dispatcher cannot be given: put it in covalent.toml (COVALENT_CONFIG names the file)"
        )));
    }
    if let Some(change) = lattice.changed {
        return Err(durable(format!(
            "lattice `{name}` was changed after it was built (`{change}`), and a detached dispatcher rebuilds it from its function and inputs: set that in the #[lattice] or #[electron] attributes instead"
        )));
    }
    if lattice.record == Some(false) {
        return Err(durable(format!(
            "lattice `{name}` is set not to be recorded, and a detached dispatch is known only through its record"
        )));
    }
    let graph = lattice.graph();
    if let Some((input, reason)) = graph.input_errors.first() {
        return Err(Error::Input {
            lattice: name,
            input: input.clone(),
            reason: reason.clone(),
        });
    }
    if find_lattice(graph.path).is_none() {
        return Err(durable(format!(
            "lattice `{name}` is not registered by a #[lattice] function of this program, so another process cannot rebuild it"
        )));
    }
    let config = Config::global()?;
    let store = Store::open(&config.store_path())?;
    let request = DispatchRequest {
        protocol: PROTOCOL,
        id: Uuid::now_v7(),
        lattice: graph.path.to_string(),
        inputs: graph.inputs_json.iter().map(|(_, v)| v.clone()).collect(),
        reuse_from: lattice.reuse_from(),
    };
    let program = std::env::current_exe()
        .map_err(|e| durable(format!("cannot find this program's binary: {e}")))?;
    let cwd = std::env::current_dir().ok();
    start_dispatcher(&store, &config, &program, cwd.as_deref(), &request)?;
    Ok(request.id)
}

/// Resumes dispatch `id` (INTERRUPTED, FAILED or CANCELLED) in a detached dispatcher of the
/// program that ran it, and returns the new dispatch's id. The new dispatch takes every node
/// that completed (also those that finished while no dispatcher watched: their results are
/// fetched from where the executor left them), follows every attempt still running (no
/// second submission: the Slurm job, remote process or container started before the crash is
/// the one waited for), and runs only what is gone without a result.
///
/// The program must still be where it ran (it has the lattice, electrons and executors);
/// after a rebuild, nodes whose code changed run again and a warning says the build differs.
pub fn resume(id: Uuid) -> Result<Uuid, Error> {
    resume_in(&Store::open_default()?, id)
}

/// [`resume`], for a dispatch of the given store.
pub fn resume_in(store: &Arc<Store>, id: Uuid) -> Result<Uuid, Error> {
    let origin = store.origin(id)?;
    match origin.status {
        Status::Running => {
            return Err(durable(format!(
                "dispatch {id} is still running (process {} on {}): there is nothing to resume",
                origin.pid, origin.host
            )));
        }
        Status::Completed => {
            return Err(durable(format!(
                "dispatch {id} completed: there is nothing to resume (redispatch it with `.reuse(id)` to run it again)"
            )));
        }
        _ => {}
    }
    if let Some(other) = origin.resumed_by {
        return Err(durable(format!(
            "dispatch {id} was already resumed as dispatch {other}: follow or resume {other} instead"
        )));
    }
    let Some(lattice) = origin.lattice_path.clone() else {
        return Err(durable(format!(
            "dispatch {id} was recorded without its lattice's registered name (by an older version, or for a hand-built graph), so it cannot be rebuilt: redispatch it from its program with `.reuse(id)`"
        )));
    };
    let program = recorded_program(&origin)?;
    let config = Config::global()?;
    let request = DispatchRequest {
        protocol: PROTOCOL,
        id: Uuid::now_v7(),
        lattice,
        inputs: origin.inputs.iter().map(|(_, v)| v.clone()).collect(),
        reuse_from: Some(id),
    };
    if let Err(other) = store.claim_resume(id, request.id)? {
        return Err(durable(format!(
            "dispatch {id} was already resumed as dispatch {other}: follow or resume {other} instead"
        )));
    }
    let started = start_dispatcher(store, &config, &program, origin.cwd.as_deref(), &request);
    if started.is_err() {
        let _ = store.release_claim(id, request.id);
    }
    started.map(|()| request.id)
}

/// The program that ran a dispatch, checked: still there (an error otherwise), and warned
/// about when it was rebuilt since.
fn recorded_program(origin: &crate::store::Origin) -> Result<PathBuf, Error> {
    let id = origin.id;
    let Some(program) = origin.program.clone() else {
        return Err(durable(format!(
            "dispatch {id} was recorded without its program (by an older version): run its program again with `.reuse(id)`"
        )));
    };
    if !program.is_file() {
        return Err(durable(format!(
            "the program that ran dispatch {id}, {}, is no longer there: rebuild it at that path (or run it with `.reuse(id)`)",
            program.display()
        )));
    }
    if origin.build.is_some() && build_of(&program) != origin.build {
        eprintln!(
            "covalent: warning: {} was rebuilt since it ran dispatch {id}; nodes whose code changed run again",
            program.display()
        );
    }
    Ok(program)
}

/// The environment of a program re-run for a dispatch of `store`: the same store, the same
/// configuration file, and none of the worker variables of this process.
fn command_for(store: &Store, program: &Path, cwd: Option<&Path>) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        TASK_ENV,
        RESULT_ENV,
        PARENT_ENV,
        DISPATCHER_ENV,
        MAINTAIN_ENV,
    ] {
        cmd.env_remove(var);
    }
    if let Some(home) = store.path().parent() {
        cmd.env("COVALENT_HOME", absolute(home));
    }
    if let Some(source) = Config::find() {
        cmd.env("COVALENT_CONFIG", absolute(&source));
    }
    if let Some(dir) = cwd.filter(|d| d.is_dir()) {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Starts a dispatcher-mode process for `request` in a session of its own and waits until its
/// dispatch is recorded (or the process ends first: its log is the error).
fn start_dispatcher(
    store: &Arc<Store>,
    config: &Config,
    program: &Path,
    cwd: Option<&Path>,
    request: &DispatchRequest,
) -> Result<(), Error> {
    let dir = config.results_dir().join(request.id.to_string());
    let io =
        |what: &str, e: std::io::Error| durable(format!("cannot {what} in {}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(|e| io("create the dispatch's directory", e))?;
    let request_path = dir.join("dispatcher.json");
    std::fs::write(
        &request_path,
        serde_json::to_vec(request).map_err(|e| durable(e.to_string()))?,
    )
    .map_err(|e| io("write the dispatch request", e))?;
    let log_path = dir.join("dispatcher.log");
    let log = std::fs::File::create(&log_path).map_err(|e| io("create dispatcher.log", e))?;
    let mut cmd = command_for(store, program, cwd);
    cmd.env(DISPATCHER_ENV, &request_path)
        .stdout(log.try_clone().map_err(|e| io("open dispatcher.log", e))?)
        .stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of this process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|e| {
        durable(format!(
            "cannot start a dispatcher ({}): {e}",
            program.display()
        ))
    })?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match store.status(request.id) {
            Ok(_) => break,
            Err(crate::store::StoreError::UnknownDispatch { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(durable(format!(
                "the dispatcher process ended ({status}) before it recorded the dispatch:\n{}",
                log_tail(&log_path)
            )));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(durable(format!(
                "the dispatcher process did not record the dispatch within {} and was stopped:\n{}",
                humantime::format_duration(START_TIMEOUT),
                log_tail(&log_path)
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reaped here while this process lives; it carries on (in its own session) after.
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// The last lines of a log file.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(4000)));
        let _ = f.read_to_string(&mut text);
    }
    crate::executor::worker::tail(text.trim(), 20)
}

/// Dispatcher mode: when the environment names a dispatch request, run it to the end and
/// exit. Returns (does nothing) otherwise.
pub fn enter_if_dispatcher() {
    let Some(path) = std::env::var_os(DISPATCHER_ENV) else {
        return;
    };
    // SAFETY: this runs before `main` or first thing in it, before any thread of this
    // program is started; the variable must not reach the processes this one starts.
    unsafe { std::env::remove_var(DISPATCHER_ENV) };
    let code = match run_request(Path::new(&path)) {
        Ok(Status::Completed) => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("covalent dispatcher: {e}");
            2
        }
    };
    std::process::exit(code);
}

fn run_request(path: &Path) -> Result<Status, Error> {
    let bytes = std::fs::read(path).map_err(|e| {
        durable(format!(
            "cannot read the dispatch request {}: {e}",
            path.display()
        ))
    })?;
    let req: DispatchRequest = serde_json::from_slice(&bytes).map_err(|e| {
        durable(format!(
            "the dispatch request {} is not readable: {e}",
            path.display()
        ))
    })?;
    if req.protocol != PROTOCOL {
        return Err(durable(format!(
            "the dispatch request speaks protocol {} and this program {PROTOCOL}",
            req.protocol
        )));
    }
    let entry = find_lattice(&req.lattice).ok_or_else(|| {
        durable(format!(
            "this program has no #[lattice] `{}`: it is not the program that ran the dispatch",
            req.lattice
        ))
    })?;
    let AnyLattice(graph) = (entry.rebuild)(&req.inputs)
        .map_err(|e| durable(format!("cannot rebuild lattice `{}`: {e}", req.lattice)))?;
    let mut lattice = Lattice::<serde_json::Value>::from_graph(graph);
    lattice.id = Some(req.id);
    if let Some(prev) = req.reuse_from {
        lattice = lattice.reuse(prev);
    }
    eprintln!(
        "covalent dispatcher: dispatch {} of `{}` (process {})",
        req.id,
        req.lattice,
        std::process::id()
    );
    let (d, _) = crate::lattice::start(lattice, false)?;
    let run = d.run.clone();
    let journal = d.journal.clone();
    crate::runtime::handle().block_on(async move {
        run.wait_done().await;
        if let Some((j, store)) = &journal {
            j.flush(&run, store).await;
        }
    });
    let status = d.status();
    eprintln!("covalent dispatcher: dispatch {} ended {status}", req.id);
    Ok(status)
}

/// What a cancel did to one attempt a dead dispatcher left running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelledAttempt {
    /// The node.
    pub node: usize,
    /// Its name.
    pub name: String,
    /// Its executor.
    pub executor: String,
    /// `cancelled`, `ended` (nothing was running any more) or the error that stopped it.
    pub outcome: String,
}

/// What a maintenance-mode process is asked to do.
#[derive(Debug, Serialize, Deserialize)]
struct MaintainRequest {
    protocol: u32,
    dispatch: Uuid,
    results_dir: PathBuf,
    attempts: Vec<LeftRunning>,
}

/// Cancels dispatch `id` whose dispatcher is gone (INTERRUPTED, or FAILED after losing touch
/// with a task): every attempt it left running is cancelled through its job handle by the
/// program that ran it (re-run in maintenance mode, so its plugins are there), then the nodes
/// and the dispatch are recorded CANCELLED. A dispatch still running in a live process is
/// asked to cancel instead ([`crate::cancel`]).
pub fn cancel_left_running(store: &Arc<Store>, id: Uuid) -> Result<Vec<CancelledAttempt>, Error> {
    let origin = store.origin(id)?;
    if origin.status == Status::Running {
        return Err(durable(format!(
            "dispatch {id} is running (process {} on {}): ask it to cancel (`covalent::cancel`)",
            origin.pid, origin.host
        )));
    }
    if let Some(other) = origin.resumed_by {
        return Err(durable(format!(
            "dispatch {id} was resumed as dispatch {other}, which now follows its attempts: cancel {other}"
        )));
    }
    let left = store.left_running(id)?;
    let message = "cancelled after its dispatcher stopped (covalent cancel)";
    if left.is_empty() {
        store.mark_cancelled(id, &[], message)?;
        return Ok(Vec::new());
    }
    let program = recorded_program(&origin)?;
    let config = Config::global()?;
    let results_dir = config.results_dir().join(id.to_string());
    let request = MaintainRequest {
        protocol: PROTOCOL,
        dispatch: id,
        results_dir: results_dir.clone(),
        attempts: left.clone(),
    };
    std::fs::create_dir_all(&results_dir)
        .map_err(|e| durable(format!("cannot create {}: {e}", results_dir.display())))?;
    let request_path = results_dir.join(format!("cancel-{}.json", std::process::id()));
    std::fs::write(
        &request_path,
        serde_json::to_vec(&request).map_err(|e| durable(e.to_string()))?,
    )
    .map_err(|e| durable(format!("cannot write {}: {e}", request_path.display())))?;
    let out = command_for(store, &program, origin.cwd.as_deref())
        .env(MAINTAIN_ENV, &request_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let _ = std::fs::remove_file(&request_path);
    let out = out.map_err(|e| durable(format!("cannot run {}: {e}", program.display())))?;
    let report: Vec<CancelledAttempt> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            durable(format!(
                "{} did not report what it cancelled ({}):\n{}",
                program.display(),
                out.status,
                crate::executor::worker::tail(String::from_utf8_lossy(&out.stderr).trim(), 20)
            ))
        })?;
    let done: Vec<LeftRunning> = left
        .into_iter()
        .filter(|l| {
            report
                .iter()
                .any(|r| r.node == l.node && (r.outcome == "cancelled" || r.outcome == "ended"))
        })
        .collect();
    if done.len() < report.len() {
        let failed: Vec<String> = report
            .iter()
            .filter(|r| r.outcome != "cancelled" && r.outcome != "ended")
            .map(|r| format!("node {} ({}): {}", r.node, r.name, r.outcome))
            .collect();
        return Err(durable(format!(
            "could not cancel every attempt of dispatch {id}, which stays as it was; try again once this is fixed:\n{}",
            failed.join("\n")
        )));
    }
    store.mark_cancelled(id, &done, message)?;
    Ok(report)
}

/// Maintenance mode: when the environment names a maintenance request, carry it out, print
/// the report (one JSON line) and exit. Returns (does nothing) otherwise.
pub fn enter_if_maintenance() {
    let Some(path) = std::env::var_os(MAINTAIN_ENV) else {
        return;
    };
    // SAFETY: as in `enter_if_dispatcher`.
    unsafe { std::env::remove_var(MAINTAIN_ENV) };
    match maintain(Path::new(&path)) {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("covalent maintenance: {e}");
            std::process::exit(2);
        }
    }
}

fn maintain(path: &Path) -> Result<Vec<CancelledAttempt>, Error> {
    let bytes =
        std::fs::read(path).map_err(|e| durable(format!("cannot read {}: {e}", path.display())))?;
    let req: MaintainRequest = serde_json::from_slice(&bytes)
        .map_err(|e| durable(format!("{} is not readable: {e}", path.display())))?;
    if req.protocol != PROTOCOL {
        return Err(durable(format!(
            "the request speaks protocol {} and this program {PROTOCOL}",
            req.protocol
        )));
    }
    let handle = crate::runtime::handle();
    let mut report = Vec::new();
    for left in req.attempts {
        let outcome = handle.block_on(cancel_one(&req.dispatch, &req.results_dir, &left));
        report.push(CancelledAttempt {
            node: left.node,
            name: left.name,
            executor: left.executor.unwrap_or_default(),
            outcome,
        });
    }
    Ok(report)
}

/// Cancels one attempt through its job handle, with its executor rebuilt from the options
/// recorded beside the handle; says what happened.
async fn cancel_one(dispatch: &Uuid, results_dir: &Path, left: &LeftRunning) -> String {
    let executor = left.executor.as_deref().unwrap_or_default();
    let Some(plugin) = crate::executor::find_plugin(executor) else {
        return format!("this program has no executor `{executor}`");
    };
    let options = left.options.clone().unwrap_or(serde_json::Value::Null);
    let exec = match (plugin.construct)(options) {
        Ok(e) => e,
        Err(e) => return format!("cannot rebuild executor `{executor}`: {e}"),
    };
    let job = &left.handle;
    let ctx = TaskContext::elsewhere(*dispatch, left.node, &left.name, results_dir);
    match exec.exec.probe(job).await {
        Ok(Probe::Gone) => "ended".into(),
        Ok(Probe::Running | Probe::Finished) => match exec.exec.cancel(&ctx, Some(job)).await {
            Ok(_) => "cancelled".into(),
            Err(e) => format!("cancelling failed: {e}"),
        },
        Err(e) => format!("cannot tell whether it still runs: {e}"),
    }
}
