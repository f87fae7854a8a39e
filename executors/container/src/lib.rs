//! The `container` executor: runs each covalent task in a container, through podman or the
//! docker CLI (seed 004's `DockerExecutor`, made real).
//!
//! ```no_run
//! use covalent::prelude::*;
//! use covalent_container as _; // links the plugin, so `executor = "container"` is known
//!
//! #[electron(executor = "container")]
//! fn isolated(x: u64) -> u64 { x * 2 }
//!
//! #[lattice]
//! fn flow() -> u64 { isolated(21) }
//!
//! fn main() {
//!     let r = covalent::dispatch_sync(flow()).unwrap();
//!     assert_eq!(r.value(), Some(&42));
//! }
//! ```
//!
//! How a task runs: the task envelope goes to a directory of its own under `workdir`; the
//! engine runs `image` with this program's binary mounted read-only at `/covalent/bin/` and
//! the task directory at `/covalent/task` (the working directory), and the binary, started as
//! a worker, writes its result there. The container's stdout and stderr are the node's. The
//! container is named after the dispatch, node and attempt; that name is the node's job
//! handle. Images are never pulled (`--pull never`): a missing image is an error that says
//! so. Containers are removed after use (`--rm`, and `rm --force` after a time-out or
//! cancellation, or when a run is dropped), and so is the task directory.
//!
//! The image needs what the binary needs at run time: its shared libraries (glibc at least as
//! new as the build host's) and, for `deps_bash`, bash. `scripts/podman-image.sh` builds such
//! an image offline from the host's own files.
//!
//! A container outlives its dispatcher (the engine runs it): a resumed dispatch waits for the
//! same container (`container inspect`), reads its logs and its result, and `covalent cancel`
//! of a dispatch whose dispatcher died removes it.
//!
//! Register the plugin by linking the crate: `use covalent_container as _;` anywhere in the
//! program, or call [`link`] once.

#![deny(unsafe_code)]

mod engine;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use covalent::executor::files::LocalTaskDir;
use covalent::executor::worker::{
    ResultEnvelope, TaskEnvelope, current_binary, signal_name, with_stderr_tail,
};
use covalent::executor::{
    BaseOptions, Executor, ExecutorError, JobHandle, Output, Probe, Task, TaskContext,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

pub use engine::Engine;

/// Links this crate into a program, so the `container` plugin is registered (as
/// `use covalent_container as _;` does).
#[inline(never)]
pub fn link() {}

/// Runs each task in a container. Options (`[executors.container]` in `covalent.toml`, or the
/// fields):
///
/// | option | default | meaning |
/// |---|---|---|
/// | `engine` | podman if on `PATH`, else docker | `"podman"` or `"docker"` |
/// | `image` | `"covalent-worker"` | the image tasks run in (never pulled) |
/// | `runtime` | the engine's | OCI runtime, e.g. `"runc"` (podman: global `--runtime`) |
/// | `cgroup_manager` | podman's | `"cgroupfs"` or `"systemd"` (podman only) |
/// | `network` | the engine's | `--network`, e.g. `"none"` |
/// | `env` | `{}` | environment variables in the container |
/// | `mounts` | `[]` | more `--volume` specs, e.g. `"/data:/data:ro"` |
/// | `run_options` | `[]` | more `run` arguments, e.g. `["--memory", "2g"]`, `["--user", "1000:1000"]` |
/// | `workdir` | `<cache_dir>/container` | where task directories are made on this host |
/// | `remove` | `true` | `--rm`: remove each container when it ends |
/// | `init` | `true` | `--init`: a tiny init is PID 1, so a crashing worker reports its own signal (podman needs catatonit) |
/// | `command_timeout` | `30s` | time limit of engine commands other than the run itself |
///
/// plus the [`BaseOptions`] (`time_limit`, `retries`, `log_stdout`, ...).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerExecutor {
    /// Base options.
    #[serde(flatten)]
    pub base: BaseOptions,
    /// The engine (default: podman if found, else docker).
    pub engine: Option<Engine>,
    /// The image.
    pub image: String,
    /// OCI runtime (podman's global `--runtime`, docker's `run --runtime`).
    pub runtime: Option<String>,
    /// podman's cgroup manager (`cgroupfs` on hosts without systemd).
    pub cgroup_manager: Option<String>,
    /// `--network`.
    pub network: Option<String>,
    /// Environment variables in the container.
    pub env: BTreeMap<String, String>,
    /// More `--volume` specs.
    pub mounts: Vec<String>,
    /// More `run` arguments.
    pub run_options: Vec<String>,
    /// Where task directories go on this host.
    pub workdir: Option<PathBuf>,
    /// `--rm`.
    pub remove: bool,
    /// `--init`: the worker is not PID 1 (which ignores its own `abort()` and SIGTERM).
    pub init: bool,
    /// Time limit of engine commands other than the run itself.
    #[serde(with = "covalent::executor::serde_duration")]
    pub command_timeout: Duration,
}

impl Default for ContainerExecutor {
    fn default() -> Self {
        ContainerExecutor {
            base: BaseOptions::default(),
            engine: None,
            image: "covalent-worker".into(),
            runtime: None,
            cgroup_manager: None,
            network: None,
            env: BTreeMap::new(),
            mounts: Vec::new(),
            run_options: Vec::new(),
            workdir: None,
            remove: true,
            init: true,
            command_timeout: Duration::from_secs(30),
        }
    }
}

/// The job handle a node records.
#[derive(Debug, Serialize, Deserialize)]
struct Handle {
    engine: Engine,
    container: String,
    dir: PathBuf,
}

/// What running containers have printed so far, by container name: a time-out or
/// cancellation drops the run (and its pipe readers) before `cancel` records the streams.
type Streams = Arc<Mutex<(Vec<u8>, Vec<u8>)>>;
static PRINTED: LazyLock<Mutex<HashMap<String, Streams>>> = LazyLock::new(Default::default);

fn failed(msg: impl Into<String>) -> ExecutorError {
    ExecutorError::Failed(msg.into())
}

fn config(reason: impl Into<String>) -> ExecutorError {
    ExecutorError::Config {
        name: "container".into(),
        reason: reason.into(),
    }
}

/// Removes the container and the task directory if a run is dropped before its end (a
/// time-out, a cancellation, a dispatch going away). `cancel` removes them too, and waits.
struct Leftover {
    program: PathBuf,
    engine: Engine,
    name: String,
    dir: PathBuf,
    armed: bool,
}

impl Drop for Leftover {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let dir = self.dir.clone();
        let spawned = std::process::Command::new(&self.program)
            .args(self.engine.remove_args(&self.name))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        std::thread::spawn(move || {
            if let Ok(mut child) = spawned {
                let _ = child.wait();
            }
            let _ = std::fs::remove_dir_all(dir);
        });
    }
}

/// Copies a pipe into one half of a shared buffer as it comes.
async fn pump(pipe: Option<impl tokio::io::AsyncRead + Unpin>, into: Streams, err: bool) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut g = into.lock().unwrap();
                let half = if err { &mut g.1 } else { &mut g.0 };
                half.extend_from_slice(&buf[..n]);
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl ContainerExecutor {
    /// A container executor with default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs tasks in this image.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    fn root(&self) -> Result<PathBuf, ExecutorError> {
        let dir = match &self.workdir {
            Some(w) if w.is_absolute() => w.clone(),
            Some(w) => std::env::current_dir()
                .map_err(|e| failed(format!("cannot resolve workdir {}: {e}", w.display())))?
                .join(w),
            None => self.base.cache_dir().join("container"),
        };
        Ok(dir)
    }

    /// Runs an engine command (not the task) with the command time limit.
    async fn engine_cmd(
        &self,
        program: &Path,
        args: &[String],
    ) -> Result<std::process::Output, String> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match tokio::time::timeout(self.command_timeout, cmd.output()).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(format!("cannot run {}: {e}", program.display())),
            Err(_) => Err(format!(
                "{} {} gave no answer within {} (command_timeout)",
                program.display(),
                args.join(" "),
                humantime::format_duration(self.command_timeout)
            )),
        }
    }

    /// Why a run that wrote no result failed.
    fn run_error(
        &self,
        engine: Engine,
        code: Option<i32>,
        signal: Option<i32>,
        stderr: &str,
    ) -> ExecutorError {
        let with_stderr = |msg: String| with_stderr_tail(msg, stderr);
        // 125-127 are the engine failing to run the container (an executor failure); any other
        // end without a result is the worker going away (retried like a lost worker).
        let lost = |msg: String| ExecutorError::WorkerLost(with_stderr(msg));
        match code {
            Some(125) if engine.image_missing(stderr) => failed(format!(
                "image {} not found locally (images are not pulled here: build or import it)",
                self.image
            )),
            Some(125) if stderr.contains("container-init binary not found") => {
                failed(with_stderr(format!(
                    "{} has no init binary for --init: install catatonit (or tini), or set init = false",
                    engine.program()
                )))
            }
            Some(125) => failed(with_stderr(format!(
                "{} could not run the container",
                engine.program()
            ))),
            Some(c @ (126 | 127)) => failed(with_stderr(format!(
                "the worker binary could not start in image {} (exit code {c}): the image needs the binary's shared libraries (glibc at least as new as this host's)",
                self.image
            ))),
            Some(c) if c > 128 && c < 128 + 65 => lost(format!(
                "the container exited with code {c}: the worker was killed by {}",
                signal_name(c - 128)
            )),
            Some(c) => lost(format!("the container exited with code {c}")),
            None => lost(format!(
                "{} was killed by {}",
                engine.program(),
                signal.map(signal_name).unwrap_or_else(|| "a signal".into())
            )),
        }
    }
}

#[covalent::executor::async_trait]
impl Executor for ContainerExecutor {
    fn short_name(&self) -> &str {
        "container"
    }

    fn base(&self) -> &BaseOptions {
        &self.base
    }

    async fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let (engine, program) = Engine::resolve(self.engine).map_err(failed)?;
        let binary = current_binary()
            .map_err(|e| failed(format!("cannot find this program's binary: {e}")))?;
        let name = covalent::executor::worker::attempt_name(&task, ctx);
        let dir = self.root()?.join(&name);
        let args = engine::run_args(
            self,
            engine,
            &engine::RunSpec {
                name: &name,
                task_dir: &dir,
                binary: &binary,
            },
        )
        .map_err(config)?;
        let mut envelope = TaskEnvelope::away(&task, ctx, None)?;
        // The files of this machine the task needs, into its (mounted) directory.
        let access = LocalTaskDir(dir.clone());
        if let Err(e) = envelope.send_files(&access, ctx).await {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        std::fs::create_dir_all(&dir)
            .and_then(|_| envelope.write(&dir.join("task.json")))
            .map_err(|e| {
                failed(format!(
                    "cannot write the task envelope in {}: {e}",
                    dir.display()
                ))
            })?;
        ctx.set_job_handle(&Handle {
            engine,
            container: name.clone(),
            dir: dir.clone(),
        });
        let mut leftover = Leftover {
            program: program.clone(),
            engine,
            name: name.clone(),
            dir: dir.clone(),
            armed: true,
        };
        let printed: Streams = Arc::default();
        PRINTED
            .lock()
            .unwrap()
            .insert(name.clone(), printed.clone());
        let spawned = tokio::process::Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                PRINTED.lock().unwrap().remove(&name);
                return Err(failed(format!("cannot start {}: {e}", program.display())));
            }
        };
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let (_, _, status) = tokio::join!(
            pump(out, printed.clone(), false),
            pump(err, printed.clone(), true),
            child.wait()
        );
        PRINTED.lock().unwrap().remove(&name);
        let status =
            status.map_err(|e| failed(format!("waiting for {}: {e}", engine.program())))?;
        // Read (a large output moved out of the task dir, files brought home) before the dir
        // goes.
        let result = match std::fs::read(dir.join("result.json")).ok() {
            Some(b) => Some(match ResultEnvelope::parse(&b) {
                Ok(r) => match r.receive_files(&access, ctx).await {
                    Ok(()) => r.into_output_in(&dir, ctx),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }),
            None => None,
        };
        let _ = std::fs::remove_dir_all(&dir);
        // It ended: --rm removed it (or `remove = false` keeps it on purpose), except when the
        // engine itself failed half-way (125), after which a created container may be left.
        leftover.armed = false;
        if self.remove && status.code() == Some(125) {
            let _ = self.engine_cmd(&program, &engine.remove_args(&name)).await;
        }
        let (stdout, stderr) = {
            let g = printed.lock().unwrap();
            (text(&g.0), text(&g.1))
        };
        ctx.record_streams(stdout, stderr.clone());
        match result {
            Some(r) => r,
            None => {
                use std::os::unix::process::ExitStatusExt;
                Err(self.run_error(engine, status.code(), status.signal(), &stderr))
            }
        }
    }

    async fn cancel(
        &self,
        ctx: &TaskContext,
        job: Option<&JobHandle>,
    ) -> Result<bool, ExecutorError> {
        let Some(handle) = job.and_then(Handle::of) else {
            return Ok(false);
        };
        let (_, program) = Engine::resolve(Some(handle.engine)).map_err(failed)?;
        let out = self
            .engine_cmd(&program, &handle.engine.remove_args(&handle.container))
            .await
            .map_err(failed)?;
        let _ = std::fs::remove_dir_all(&handle.dir);
        if let Some(printed) = PRINTED.lock().unwrap().remove(&handle.container) {
            let g = printed.lock().unwrap();
            ctx.record_streams(text(&g.0), text(&g.1));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success()
            && !stderr.contains("no such container")
            && !stderr.contains("No such container")
        {
            return Err(failed(format!(
                "{} rm --force {} failed: {}",
                handle.engine.program(),
                handle.container,
                stderr.trim()
            )));
        }
        Ok(true)
    }

    async fn probe(&self, job: &JobHandle) -> Result<Probe, ExecutorError> {
        let Some(h) = Handle::of(job) else {
            return Ok(Probe::Gone);
        };
        let (_, program) = Engine::resolve(Some(h.engine)).map_err(failed)?;
        let state = self.state(&program, h.engine, &h.container).await?;
        if state.as_deref().is_some_and(may_run) {
            return Ok(Probe::Running);
        }
        if h.dir.join("result.json").is_file() {
            return Ok(Probe::Finished);
        }
        // Ended without a result (or never started): clear what is left.
        if state.is_some() {
            let _ = self
                .engine_cmd(&program, &h.engine.remove_args(&h.container))
                .await;
        }
        let _ = std::fs::remove_dir_all(&h.dir);
        Ok(Probe::Gone)
    }

    async fn reattach(&self, job: &JobHandle, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let h = Handle::of(job)
            .ok_or_else(|| failed(format!("not a container job handle: {}", job.0)))?;
        let (_, program) = Engine::resolve(Some(h.engine)).map_err(failed)?;
        // Not started by this process: watch it until it has ended.
        while self
            .state(&program, h.engine, &h.container)
            .await?
            .as_deref()
            .is_some_and(may_run)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Its output, while the engine still has it (`--rm` removes it with the container).
        let logs = self
            .engine_cmd(&program, &["logs".to_string(), h.container.clone()])
            .await
            .ok()
            .filter(|o| o.status.success());
        let (stdout, stderr) = match logs {
            Some(o) => (text(&o.stdout), text(&o.stderr)),
            None => (
                String::new(),
                "(the container's output went with it: it ended while no dispatcher watched it)"
                    .to_string(),
            ),
        };
        ctx.record_streams(stdout, stderr.clone());
        let result = match std::fs::read(h.dir.join("result.json")).ok() {
            Some(b) => Some(match ResultEnvelope::parse(&b) {
                Ok(r) => match r.receive_files(&LocalTaskDir(h.dir.clone()), ctx).await {
                    Ok(()) => r.into_output_in(&h.dir, ctx),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }),
            None => None,
        };
        if self.remove {
            let _ = self
                .engine_cmd(&program, &h.engine.remove_args(&h.container))
                .await;
        }
        let _ = std::fs::remove_dir_all(&h.dir);
        match result {
            Some(r) => r,
            None => Err(ExecutorError::WorkerLost(with_stderr_tail(
                format!(
                    "container {} ended without a result while no dispatcher watched it",
                    h.container
                ),
                &stderr,
            ))),
        }
    }
}

impl ContainerExecutor {
    /// The state of a container (`running`, `exited`, ...), `None` when there is none.
    async fn state(
        &self,
        program: &Path,
        engine: Engine,
        name: &str,
    ) -> Result<Option<String>, ExecutorError> {
        let _ = engine;
        let args: Vec<String> = [
            "container",
            "inspect",
            "--format",
            "{{.State.Status}}",
            name,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = self.engine_cmd(program, &args).await.map_err(failed)?;
        let stdout = text(&out.stdout);
        Ok(out.status.success().then(|| stdout.trim().to_string()))
    }
}

/// States in which a container may still run its task.
fn may_run(state: &str) -> bool {
    matches!(
        state,
        "created" | "configured" | "initialized" | "running" | "paused" | "restarting"
    )
}

impl Handle {
    fn of(job: &JobHandle) -> Option<Handle> {
        serde_json::from_value(job.0.clone()).ok()
    }
}

covalent::register_executor!("container", ContainerExecutor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_configuration_is_valid() {
        let text = r#"
[executors.container]
image = "localhost/covalent-worker:latest"
engine = "podman"
runtime = "runc"
cgroup_manager = "cgroupfs"
network = "none"
env = { RUST_LOG = "info" }
mounts = ["/data:/data:ro"]
run_options = ["--memory", "2g"]
init = true
remove = true
"#;
        let config = covalent::Config::parse(text, Path::new("README.md")).unwrap();
        assert!(config.executor("container").is_ok());
    }

    #[test]
    fn options_round_trip_and_reject_bad_values() {
        let e: ContainerExecutor = covalent::executor::from_dict(serde_json::json!({
            "engine": "podman",
            "image": "worker",
            "runtime": "runc",
            "cgroup_manager": "cgroupfs",
            "run_options": ["--memory", "1g"],
        }))
        .unwrap();
        assert_eq!(e.engine, Some(Engine::Podman));
        assert!(e.remove, "--rm by default");
        let again: ContainerExecutor =
            covalent::executor::from_dict(covalent::executor::ToDict::to_dict(&e)).unwrap();
        assert_eq!(again.run_options, e.run_options);
        let err = covalent::executor::from_dict::<ContainerExecutor>(
            serde_json::json!({ "engine": "lxc" }),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("engine") && err.contains("podman"), "{err}");
        let err =
            covalent::executor::from_dict::<ContainerExecutor>(serde_json::json!({ "imgae": "x" }))
                .err()
                .unwrap()
                .to_string();
        assert!(err.contains("unknown key `imgae`"), "{err}");
    }
}

#[cfg(test)]
covalent_test_support::isolated_home!();
