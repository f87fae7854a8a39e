//! The seed 004 how-to in Rust: writing your own container executor on the `Executor` trait.
//!
//! Covalent's walkthrough builds a `DockerExecutor` that runs each electron in a Docker
//! container: plugin defaults (`image`, `workdir`, `options` for `docker run`), a helper that
//! formats the container command, and a `run()` that ships the function in, runs the
//! container and brings the result back. This is the same executor, step by step, for a Rust
//! program; the comments marked "Step" follow the original's order. (The `covalent-container`
//! crate is the finished version, with more options and checks.)
//!
//! Try it (as root, Debian; nothing is pulled from a registry):
//!
//! ```sh
//! bash scripts/podman-image.sh                       # podman + runc + a worker image
//! cargo run --example custom_container_executor      # add + multiply, each in a container
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use covalent::executor::worker::{
    RESULT_ENV, ResultEnvelope, TASK_ENV, TaskEnvelope, current_binary, tail,
};
use covalent::executor::{
    BaseOptions, Executor, ExecutorError, JobHandle, Output, Task, TaskContext,
};
use covalent::prelude::*;
use serde::{Deserialize, Serialize};

// Step 1. The executor's options, with their defaults.
//
// Covalent keeps a plugin's defaults in `_EXECUTOR_PLUGIN_DEFAULTS`; here they are the
// struct's `Default`. serde makes it a plugin: `#[serde(default)]` lets `covalent.toml`
// (`[executors.docker]`) override any subset, and `to_dict` / `from_dict` come for free.
// `BaseOptions` (flattened) adds what every executor has: `time_limit`, `retries`,
// `log_stdout`, `log_stderr`, `cache_dir`.

/// Runs each electron in a container.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DockerExecutor {
    /// The base options.
    #[serde(flatten)]
    pub base: BaseOptions,
    /// The image to run (the seed used `python:3.8`; a Rust worker needs its own libraries).
    pub image: String,
    /// Where task files are written on this host.
    pub workdir: PathBuf,
    /// Options of `docker run`: `{ network = "none" }` becomes `--network=none`; an empty
    /// value is a bare flag.
    pub options: BTreeMap<String, String>,
    /// `podman` or `docker` (empty: podman when installed, else docker).
    pub engine: String,
    /// Options before `run`, e.g. podman's `--runtime runc`.
    pub engine_options: Vec<String>,
}

impl Default for DockerExecutor {
    fn default() -> Self {
        DockerExecutor {
            base: BaseOptions::default(),
            image: "localhost/covalent-worker:latest".into(),
            workdir: std::env::temp_dir().join("docker-executor"),
            options: BTreeMap::new(),
            engine: String::new(),
            engine_options: Vec::new(),
        }
    }
}

// Step 2. Register the plugin under a name, so `#[electron(executor = "docker")]` and
// `[executors.docker]` find it (Covalent's `executor_plugin_name`).
covalent::register_executor!("docker", DockerExecutor);

impl DockerExecutor {
    /// The engine's program.
    fn program(&self) -> String {
        if !self.engine.is_empty() {
            return self.engine.clone();
        }
        let found = |p: &str| {
            std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
        };
        if found("podman") { "podman" } else { "docker" }.into()
    }

    // Step 3. Format the container command (the seed's `_format_exec_command`).
    //
    // Instead of pickling a function, a Rust program ships itself: the container runs this
    // very binary (mounted read-only), and the worker protocol tells it which electron to run:
    // `COVALENT_WORKER_TASK` names the task envelope, `COVALENT_WORKER_RESULT` the file to
    // write the result to. Both live in a per-task directory mounted at `/task`.
    fn format_exec_command(&self, name: &str, task_dir: &Path, binary: &Path) -> Vec<String> {
        let mut cmd: Vec<String> = self.engine_options.clone();
        cmd.extend(["run", "--rm", "--pull", "never", "--name", name].map(String::from));
        for (key, value) in &self.options {
            cmd.push(if value.is_empty() {
                format!("--{key}")
            } else {
                format!("--{key}={value}")
            });
        }
        cmd.push("--volume".into());
        cmd.push(format!("{}:/worker:ro", binary.display()));
        cmd.push("--volume".into());
        cmd.push(format!("{}:/task", task_dir.display()));
        cmd.push("--env".into());
        cmd.push(format!("{TASK_ENV}=/task/task.json"));
        cmd.push("--env".into());
        cmd.push(format!("{RESULT_ENV}=/task/result.json"));
        cmd.push(self.image.clone());
        cmd.push("/worker".into());
        cmd
    }
}

// Step 4. `run`: the core of the executor.
//
// The runtime calls it for every attempt of every node, and enforces `time_limit` and
// `retries` around it, so `run` only runs the task. It is async (Covalent's
// `AsyncBaseExecutor`): waiting for a container does not hold a thread.
#[covalent::executor::async_trait]
impl Executor for DockerExecutor {
    fn short_name(&self) -> &str {
        "docker"
    }

    fn base(&self) -> &BaseOptions {
        &self.base
    }

    async fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        // 4a. A directory for this task, named after its dispatch, node and attempt (the
        // container gets the same name).
        let c = ctx.get_dispatch_context();
        let name = format!(
            "docker-executor-{}-{}-{}",
            c.dispatch_id.simple(),
            c.node_id,
            ctx.attempt()
        );
        let task_dir = self.workdir.join(&name);
        std::fs::create_dir_all(&task_dir).map_err(|e| {
            ExecutorError::Failed(format!("cannot create {}: {e}", task_dir.display()))
        })?;

        // 4b. The task envelope: electron name, inputs as JSON, ids, hooks, build check.
        TaskEnvelope::of(&task, ctx)?
            .write(&task_dir.join("task.json"))
            .map_err(|e| ExecutorError::Failed(format!("cannot write the task: {e}")))?;

        // 4c. Run the container, and record its name as the job handle so `cancel` can find it.
        let binary = current_binary().map_err(|e| ExecutorError::Failed(e.to_string()))?;
        let args = self.format_exec_command(&name, &task_dir, &binary);
        ctx.set_job_handle(BTreeMap::from([("container", &name)]));
        let out = tokio::process::Command::new(self.program())
            .args(&args)
            .stdin(Stdio::null())
            .kill_on_drop(true) // a time-out drops this future: stop waiting at once
            .output()
            .await
            .map_err(|e| ExecutorError::Failed(format!("cannot start {}: {e}", self.program())))?;

        // 4d. The container's stdout and stderr become the node's (Covalent returned them
        // from `run` as strings; here they are recorded on the context).
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ctx.record_streams(stdout, stderr.clone());

        // 4e. The result: the worker's value, or its error (a failing electron, a panic, a
        // failing hook) classified so retries apply. No result file means the container
        // itself failed: say how, with the end of its stderr. A large output is in a file of
        // its own beside the result: `into_output_in` moves it to the dispatch's value files
        // before the task dir goes.
        let result = ResultEnvelope::read(&task_dir.join("result.json"))
            .map(|r| r.into_output_in(&task_dir, ctx));
        let _ = std::fs::remove_dir_all(&task_dir);
        match result {
            Ok(r) => r,
            Err(_) => Err(ExecutorError::Failed(format!(
                "the container exited with {}:\n{}",
                out.status,
                tail(&stderr, 10)
            ))),
        }
    }

    // Step 5. `cancel`: called with the job handle when the node is cancelled or runs out of
    // time (after `run`'s future was dropped). Covalent's seed could not cancel; stopping
    // and removing the container is one command.
    async fn cancel(
        &self,
        _ctx: &TaskContext,
        job: Option<&JobHandle>,
    ) -> Result<bool, ExecutorError> {
        let Some(name) = job.and_then(|j| j.0["container"].as_str()) else {
            return Ok(false);
        };
        let status = tokio::process::Command::new(self.program())
            .args(
                self.engine_options
                    .iter()
                    .map(String::as_str)
                    .chain(["rm", "--force", name]),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|e| ExecutorError::Failed(e.to_string()))?;
        Ok(status.success())
    }
}

// Step 6. Use it, by name (options from `[executors.docker]`) or by value.

/// podman as `scripts/podman-image.sh` sets it up: runc with the cgroupfs manager.
fn local_podman() -> DockerExecutor {
    DockerExecutor {
        engine_options: ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
            .map(String::from)
            .to_vec(),
        options: [("network".to_string(), "none".to_string())].into(),
        ..Default::default()
    }
}

/// The same settings for the executor used by name.
const LOCAL_PODMAN: &str = r#"
[executors.docker]
engine_options = ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
options = { network = "none" }
"#;

#[electron(executor = "docker")]
fn add(x: i64, y: i64) -> i64 {
    println!("adding in a container");
    x + y
}

#[electron(executor = local_podman())]
fn multiply(x: i64, y: i64) -> i64 {
    println!("multiplying in a container");
    x * y
}

#[lattice]
fn workflow(x: i64, y: i64) -> i64 {
    let r1 = add(x, y);
    multiply(y, r1)
}

#[covalent::main]
async fn main() -> anyhow::Result<()> {
    let config = match covalent::Config::find() {
        Some(file) => covalent::Config::from_file(&file)?,
        None => covalent::Config::parse(LOCAL_PODMAN, Path::new("(built-in podman settings)"))?,
    };
    let result = covalent::dispatch(workflow(3, 4).with_config(config))
        .await?
        .wait()
        .await?;
    println!("{result}");
    for node in result.nodes().filter(|n| !n.is_internal()) {
        println!("{}: {}", node.name(), node.stdout().trim());
    }
    anyhow::ensure!(
        result.value() == Some(&28),
        "the workflow failed: {}",
        result.error().unwrap_or("no value")
    );
    println!("both electrons ran in containers started by the DockerExecutor written above");
    Ok(())
}
