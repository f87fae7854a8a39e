//! The worker protocol: how an out-of-process executor runs one task by re-running the same
//! binary in worker mode.
//!
//! The executor writes a [`TaskEnvelope`] (protocol version, electron registration name and
//! source digest, inputs as JSON, dispatch and node ids) to a file and starts the program with
//! `COVALENT_WORKER_TASK=<envelope>` and `COVALENT_WORKER_RESULT=<result file>` in its
//! environment. Before `main` runs (a constructor in this crate, `entry.rs`, so it works for
//! `cargo run` binaries, examples and `cargo test` harnesses alike, and no user code runs
//! first) the program notices those variables, runs the electron (hooks included), writes a
//! [`ResultEnvelope`] (the output or a classified error, and timings) and exits. The task's own
//! stdout and stderr are the process's.
//!
//! A different protocol version, or an electron whose source digest differs from the one the
//! dispatcher built (a worker binary of another build), is a clear error, never a wrong answer.
//!
//! This module owns the envelopes and the worker side; starting workers is each executor's job.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::electron::{Args, TaskError, find_electron};
use crate::executor::{ExecutorError, Task, TaskContext};
use crate::value::Output;

pub use super::child::{describe_exit, kill_group, signal_name, tail, with_stderr_tail};

/// Quotes a string for a POSIX shell (`'...'`), for executors that build remote commands.
pub use crate::files::shell_quote;

/// A readable name for one attempt of a task, unique per dispatch, node and attempt
/// (`covalent-<electron>-<end of dispatch id>-n<node>-a<attempt>`), usable as a job or
/// container name.
pub fn attempt_name(task: &Task, ctx: &TaskContext) -> String {
    let mut name: String = task
        .electron_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if name.is_empty() {
        name.push_str("task");
    }
    let id = ctx.dispatch_id().simple().to_string();
    format!(
        "covalent-{name}-{}-n{}-a{}",
        &id[id.len() - 12..],
        ctx.node_id(),
        ctx.attempt()
    )
}

/// The file a worker leaves in its task's directory when the dispatcher has files to bring
/// home from there (remote task scripts keep such a directory until it has).
pub const FETCH_MARKER: &str = "covalent-fetch";

/// Version of the envelopes; a worker refuses any other.
pub const PROTOCOL: u32 = 1;

/// Environment variable naming the task envelope a worker runs.
pub const TASK_ENV: &str = "COVALENT_WORKER_TASK";
/// Environment variable naming the file a worker writes its result to.
pub const RESULT_ENV: &str = "COVALENT_WORKER_RESULT";

/// What a worker is asked to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskEnvelope {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The covalent version that wrote it.
    pub covalent: String,
    /// The electron's registration name (`module::path::function`).
    pub electron: String,
    /// Digest of the electron's source in the dispatcher's build.
    pub digest: String,
    /// Inputs as JSON, in parameter order.
    pub inputs: Vec<serde_json::Value>,
    /// The dispatch id.
    pub dispatch_id: String,
    /// The node id.
    pub node_id: usize,
    /// The attempt number.
    pub attempt: u32,
    /// `deps_bash` commands the worker runs first (from the electron's definition).
    pub deps_bash: Vec<String>,
    /// `call_before` / `call_after` hooks, by name (run from the worker's own definition).
    pub hooks: Vec<String>,
    /// The dispatching program's build ([`binary_hash`]), when the worker binary is not known
    /// to be the same file (a `remote_binary` the user put there): a worker of another build
    /// refuses the task, since code the electron calls may differ even where its own source
    /// does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// Files: the task's directory, its transfers, what the dispatcher staged for it
    /// ([`files`](super::files)).
    #[serde(default)]
    pub files: super::files::TaskFiles,
    /// What the node was admitted with by its declared needs ([`crate::assigned`] in the task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned: Option<crate::resources::Assignment>,
}

/// Why a worker did not produce a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerErrorKind {
    /// The electron returned `Err`.
    Failed,
    /// The electron panicked.
    Panicked,
    /// An input could not be read as its parameter type.
    Input,
    /// A `deps_bash` command or hook failed.
    Hook,
    /// The envelope could not be read or has another protocol version.
    Protocol,
    /// The binary has no electron of that name, or a different build of it.
    Build,
    /// The output would not reach the dispatcher as it is (a NaN, a map key that is not a
    /// string, ...).
    Serialization,
    /// A file transfer before or after the task failed.
    Transfer,
}

/// What a worker reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultEnvelope {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The output, when the task succeeded.
    pub output: Option<serde_json::Value>,
    /// The error kind, when it failed.
    pub error_kind: Option<WorkerErrorKind>,
    /// The error message, when it failed.
    pub error: Option<String>,
    /// When the task started in the worker (µs since the Unix epoch).
    pub started_at: i64,
    /// When it ended.
    pub ended_at: i64,
    /// The output, when it succeeded and its JSON is longer than
    /// [`INLINE_LIMIT`](crate::store::INLINE_LIMIT): written beside the envelope
    /// ([`OutputFile::name`]), `output` then being `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<OutputFile>,
    /// The transfers the worker made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfers: Vec<crate::files::TransferRecord>,
    /// Files the task made for the dispatcher to bring home (from the task's directory):
    /// [`files::receive`](super::files::receive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fetch: Vec<crate::files::Fetch>,
}

/// A large output a worker wrote to a file beside its result envelope (in the directory of
/// [`RESULT_ENV`]) instead of into it: the executor brings the file to the dispatcher's side
/// and hands it to [`ResultEnvelope::into_output_in`] or [`adopt_value_file`], which check it
/// and make it the node's output without reading it into memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// BLAKE3 of the JSON text, hex.
    pub h: String,
    /// Its length in bytes.
    pub n: u64,
}

impl OutputFile {
    /// The file's name, beside the result envelope.
    pub fn name(&self) -> String {
        format!("value-{}.json", self.h)
    }
}

impl TaskEnvelope {
    /// The envelope of a task; a [`ExecutorError::Serialization`] when an input would not
    /// reach the worker as it is.
    pub fn of(task: &Task, ctx: &TaskContext) -> Result<TaskEnvelope, ExecutorError> {
        Ok(TaskEnvelope {
            protocol: PROTOCOL,
            covalent: env!("CARGO_PKG_VERSION").to_string(),
            electron: task.def.path.to_string(),
            digest: task.def.digest.to_string(),
            inputs: task.inputs_json()?,
            dispatch_id: ctx.dispatch_id().to_string(),
            node_id: ctx.node_id(),
            attempt: ctx.attempt(),
            deps_bash: task.def.deps_bash.iter().map(|s| s.to_string()).collect(),
            hooks: task
                .def
                .call_before
                .iter()
                .chain(task.def.call_after)
                .map(|h| h.name.to_string())
                .collect(),
            build: None,
            files: super::files::here(task, ctx)?,
            assigned: ctx.assignment().cloned(),
        })
    }

    /// The envelope of a task that runs away from this machine (an ssh host, a Slurm job, a
    /// container; `here`: the ssh authority of its host, when it has one): files of this
    /// machine it needs are the executor's to [`send`](super::files::send) before it starts,
    /// and those it makes for this machine to [`receive`](super::files::receive) after.
    pub fn away(
        task: &Task,
        ctx: &TaskContext,
        here: Option<String>,
    ) -> Result<TaskEnvelope, ExecutorError> {
        let mut e = TaskEnvelope::of(task, ctx)?;
        e.files = super::files::away(task, ctx, here)?;
        Ok(e)
    }

    /// [`files::send`](super::files::send) for this envelope: the files of this machine the
    /// task needs, into its directory through `access` (noted in the envelope).
    pub async fn send_files(
        &mut self,
        access: &dyn super::files::TaskDirAccess,
        ctx: &TaskContext,
    ) -> Result<(), ExecutorError> {
        super::files::send(&mut self.files, &self.inputs, access, ctx).await
    }

    /// Writes it as JSON.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(
            path,
            serde_json::to_vec(self).map_err(std::io::Error::other)?,
        )
    }

    /// As JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ResultEnvelope {
    /// [`files::receive`](super::files::receive) for this result: records the worker's
    /// transfers and, when the task succeeded, brings home the files it made for this machine
    /// through `access` (for a task beside the dispatcher: none).
    pub async fn receive_files(
        &self,
        access: &dyn super::files::TaskDirAccess,
        ctx: &TaskContext,
    ) -> Result<(), ExecutorError> {
        let fetch: &[crate::files::Fetch] = if self.error_kind.is_none() {
            &self.fetch
        } else {
            &[]
        };
        super::files::receive(&self.transfers, fetch, access, ctx).await
    }

    /// Records the worker's transfers on `ctx` (for an executor whose tasks run beside the
    /// dispatcher, which has nothing to bring home).
    pub fn record_transfers(&self, ctx: &TaskContext) {
        for r in &self.transfers {
            ctx.record_transfer(r.clone());
        }
    }

    /// Reads a result file.
    pub fn read(path: &Path) -> Result<ResultEnvelope, ExecutorError> {
        let text = std::fs::read(path).map_err(|e| {
            ExecutorError::Failed(format!(
                "the worker wrote no result ({}): {e}",
                path.display()
            ))
        })?;
        Self::parse(&text)
    }

    /// Parses a result.
    pub fn parse(bytes: &[u8]) -> Result<ResultEnvelope, ExecutorError> {
        let r: ResultEnvelope = serde_json::from_slice(bytes).map_err(|e| {
            ExecutorError::Serialization(format!("the worker's result is not readable: {e}"))
        })?;
        if r.protocol != PROTOCOL {
            return Err(ExecutorError::Failed(format!(
                "the worker speaks protocol {} and this dispatcher {PROTOCOL}: run a worker binary of this build",
                r.protocol
            )));
        }
        Ok(r)
    }

    /// The value file the worker wrote its output to, if it did (a large output).
    pub fn output_file(&self) -> Option<&OutputFile> {
        self.output_file
            .as_ref()
            .filter(|_| self.error_kind.is_none())
    }

    /// [`into_output`](Self::into_output) for an envelope read from `task_dir` (a directory on
    /// this machine): a large output the worker wrote beside it is checked and moved among the
    /// value files of `ctx`'s dispatch ([`adopt_value_file`]) before the directory is removed.
    pub fn into_output_in(
        self,
        task_dir: &Path,
        ctx: &TaskContext,
    ) -> Result<Output, ExecutorError> {
        match self.output_file() {
            Some(f) => adopt_value_file(&task_dir.join(f.name()), f, ctx),
            None => self.into_output(),
        }
    }

    /// The task's output, or its error classified for retries. An output the worker wrote to
    /// a file needs [`into_output_in`](Self::into_output_in) (or the file fetched and
    /// [`adopt_value_file`]): here it is an error saying so.
    pub fn into_output(self) -> Result<Output, ExecutorError> {
        if let Some(f) = self.output_file() {
            return Err(ExecutorError::Failed(format!(
                "the worker wrote its output ({} bytes) to the file {} beside its result, and this executor only reads results inline: read it with `ResultEnvelope::into_output_in`",
                f.n,
                f.name()
            )));
        }
        match (self.output, self.error_kind) {
            (Some(v), None) => Ok(Output::new(v)),
            (_, kind) => {
                let msg = self
                    .error
                    .unwrap_or_else(|| "the worker reported no output".into());
                Err(match kind {
                    Some(WorkerErrorKind::Failed) | None => {
                        ExecutorError::Task(TaskError::Failed(msg))
                    }
                    Some(WorkerErrorKind::Panicked) => {
                        ExecutorError::Task(TaskError::Panicked(msg))
                    }
                    Some(WorkerErrorKind::Input) => ExecutorError::Task(TaskError::Input(msg)),
                    Some(WorkerErrorKind::Hook) => ExecutorError::Task(TaskError::Hook(msg)),
                    Some(WorkerErrorKind::Protocol) | Some(WorkerErrorKind::Build) => {
                        ExecutorError::Failed(msg)
                    }
                    Some(WorkerErrorKind::Serialization) => ExecutorError::Serialization(msg),
                    Some(WorkerErrorKind::Transfer) => {
                        ExecutorError::Task(TaskError::Transfer(msg))
                    }
                })
            }
        }
    }
}

/// Where an executor puts a value file it fetches from elsewhere (another host, a job's
/// file system) before [`adopt_value_file`]: a fresh temporary name among the value files of
/// `ctx`'s dispatch (the directory is created).
pub fn value_download_path(ctx: &TaskContext) -> Result<PathBuf, ExecutorError> {
    let dir = values_dir(ctx)?;
    Ok(dir.join(format!(".{}.part", uuid::Uuid::now_v7().simple())))
}

fn values_dir(ctx: &TaskContext) -> Result<PathBuf, ExecutorError> {
    let dir = ctx
        .results_dir()
        .map(crate::store::values::dir_of)
        .and_then(|d| std::fs::create_dir_all(&d).map(|()| d))
        .map_err(|e| {
            ExecutorError::Failed(format!(
                "cannot make the dispatch's value-file directory: {e}"
            ))
        })?;
    Ok(dir)
}

/// Makes the value file `file` at `path` (on this machine) the node's output: its length and
/// BLAKE3 digest are checked (a file cut short or garbled on its way fails the attempt, and is
/// removed), then it is moved among the value files of `ctx`'s dispatch, where the store
/// names it without copying. The value is read only when somebody asks for it.
pub fn adopt_value_file(
    path: &Path,
    file: &OutputFile,
    ctx: &TaskContext,
) -> Result<Output, ExecutorError> {
    let fail = |what: String| {
        let _ = std::fs::remove_file(path);
        Err(ExecutorError::Failed(format!(
            "the output the worker wrote to {} {what}",
            file.name()
        )))
    };
    let digest = match std::fs::File::open(path).and_then(|mut f| {
        let mut h = blake3::Hasher::new();
        let n = std::io::copy(&mut f, &mut h)?;
        Ok((n, h.finalize().to_hex().to_string()))
    }) {
        Ok((n, _)) if n != file.n => {
            return fail(format!("has {n} bytes, {} expected (cut short?)", file.n));
        }
        Ok((_, h)) => h,
        Err(e) => return fail(format!("cannot be read ({}): {e}", path.display())),
    };
    if digest != file.h {
        return fail(format!(
            "does not match its digest (garbled on its way?): {digest}, {} expected",
            file.h
        ));
    }
    let dir = values_dir(ctx)?;
    // The name the store gives this content, unless a file has it already (the same value,
    // stored or held by another node): then a name of its own, so that neither value's file
    // goes when the other's value does (the store copies it under its name if it records it).
    let canonical = dir.join(format!("{}.json", file.h));
    let dest = if canonical.exists() {
        dir.join(format!("{}.{}.json", file.h, uuid::Uuid::now_v7().simple()))
    } else {
        canonical
    };
    if std::fs::rename(path, &dest).is_err() {
        // Another file system (a container's work dir): copied, then put in place whole.
        let tmp = dir.join(format!(".{}.part", uuid::Uuid::now_v7().simple()));
        let copied = std::fs::copy(path, &tmp).and_then(|_| std::fs::rename(&tmp, &dest));
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return fail(format!("cannot be moved to {}: {e}", dir.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    Ok(Output::from_json_file(dest, file.h.clone(), file.n))
}

/// The running program's binary (what workers re-run).
pub fn current_binary() -> std::io::Result<PathBuf> {
    std::env::current_exe()
}

/// A content hash of the running program's binary (hex), computed once: remote executors
/// ship the binary once per hash.
pub fn binary_hash() -> Result<String, String> {
    static HASH: OnceLock<Result<String, String>> = OnceLock::new();
    HASH.get_or_init(|| {
        let path = current_binary().map_err(|e| e.to_string())?;
        let mut f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut h = blake3::Hasher::new();
        std::io::copy(&mut f, &mut h).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(h.finalize().to_hex()[..32].to_string())
    })
    .clone()
}

fn now_micros() -> i64 {
    crate::time::micros(SystemTime::now())
}

/// Runs one envelope in this process and returns the result with the output inline (the
/// worker side, when no result file is named).
pub fn run_envelope(env: &TaskEnvelope) -> ResultEnvelope {
    let ran = run_task(env);
    let output = ran.result.as_ref().ok().map(Output::to_json);
    match output {
        Some(Ok(json)) => ran.envelope(Some(json), None),
        Some(Err(e)) => ran.failed(WorkerErrorKind::Serialization, e),
        None => ran.envelope(None, None),
    }
}

/// Runs one envelope in this process, writing a large output to a file in `dir` (the result
/// file's directory) instead of into the envelope.
fn run_envelope_into(env: &TaskEnvelope, dir: &Path) -> ResultEnvelope {
    let ran = run_task(env);
    let Ok(v) = &ran.result else {
        return ran.envelope(None, None);
    };
    let mut buf = Vec::new();
    match crate::store::values::write_in(v, &mut buf, dir, "value-") {
        Ok(Some(stored)) => ran.envelope(
            None,
            Some(OutputFile {
                h: stored.h,
                n: stored.n,
            }),
        ),
        Ok(None) => match serde_json::from_slice(&buf) {
            Ok(json) => ran.envelope(Some(json), None),
            Err(e) => ran.failed(WorkerErrorKind::Serialization, e.to_string()),
        },
        // No file could be written there: inline after all (slow, but the value arrives).
        Err(_) => match v.to_json() {
            Ok(json) => ran.envelope(Some(json), None),
            Err(e) => ran.failed(WorkerErrorKind::Serialization, e),
        },
    }
}

/// What running a task gave: its output (checked to read back faithfully), or why there is
/// none.
struct Ran {
    started_at: i64,
    result: Result<Output, (WorkerErrorKind, String)>,
    transfers: Vec<crate::files::TransferRecord>,
    fetch: Vec<crate::files::Fetch>,
}

impl Ran {
    fn envelope(
        &self,
        output: Option<serde_json::Value>,
        file: Option<OutputFile>,
    ) -> ResultEnvelope {
        let (error_kind, error) = match &self.result {
            Ok(_) => (None, None),
            Err((k, m)) => (Some(k.clone()), Some(m.clone())),
        };
        ResultEnvelope {
            protocol: PROTOCOL,
            output,
            error_kind,
            error,
            started_at: self.started_at,
            ended_at: now_micros(),
            output_file: file,
            transfers: self.transfers.clone(),
            fetch: if self.result.is_ok() {
                self.fetch.clone()
            } else {
                Vec::new()
            },
        }
    }

    fn failed(&self, kind: WorkerErrorKind, msg: String) -> ResultEnvelope {
        Ran {
            started_at: self.started_at,
            result: Err((kind, msg)),
            transfers: self.transfers.clone(),
            fetch: Vec::new(),
        }
        .envelope(None, None)
    }
}

/// Runs the task in its files scope: in its own directory when the envelope names one (made
/// and entered for the task, the previous directory restored after), with what the dispatcher
/// staged; the scope's transfers and files to bring home go into the result. The output is
/// checked (and so serialized once) inside the scope.
fn run_task(env: &TaskEnvelope) -> Ran {
    let started_at = now_micros();
    let before = std::env::current_dir().ok();
    if env.files.fresh_dir
        && let Some(d) = &env.files.dir
    {
        // What an earlier task left goes; what the dispatcher staged for this one stays.
        let keep: Vec<&str> = env
            .files
            .staged
            .iter()
            .filter_map(|s| s.rel.split('/').next())
            .collect();
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                let name = e.file_name();
                if keep.iter().any(|k| std::ffi::OsStr::new(k) == name) {
                    continue;
                }
                let p = e.path();
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    let entered = match &env.files.dir {
        Some(d) => std::fs::create_dir_all(d)
            .and_then(|()| std::env::set_current_dir(d))
            .map_err(|e| format!("cannot make and enter the task's directory {d}: {e}")),
        None => Ok(()),
    };
    if let Err(e) = entered {
        return Ran {
            started_at,
            result: Err((WorkerErrorKind::Transfer, e)),
            transfers: Vec::new(),
            fetch: Vec::new(),
        };
    }
    // The task's directory: the one entered, or (for a task away from the dispatcher) the
    // work directory it started in; beside the dispatcher, the attempt's own among the
    // results (the worker's current directory is the executor's `workdir`, for everyone).
    let dir = if env.files.dir.is_some() || env.files.attempt_dir.is_none() {
        std::env::current_dir().ok()
    } else {
        None
    };
    let scope = env.files.scope(dir, env.attempt);
    let (mut ran, scope) = crate::files::enter(scope, || {
        crate::resources::with_assignment(env.assigned.clone(), || run_task_here(env, started_at))
    });
    ran.transfers = scope.records;
    ran.fetch = scope.fetch;
    if !ran.fetch.is_empty() && ran.result.is_ok() {
        // Tells the task's script that its directory holds files to bring home: it is kept
        // until the dispatcher has them.
        let _ = std::fs::write(FETCH_MARKER, b"");
    }
    if env.files.dir.is_some()
        && let Some(b) = before
    {
        let _ = std::env::set_current_dir(b);
    }
    ran
}

fn run_task_here(env: &TaskEnvelope, started_at: i64) -> Ran {
    crate::invoke::install_panic_hook();
    let fail = |kind: WorkerErrorKind, msg: String| Ran {
        started_at,
        result: Err((kind, msg)),
        transfers: Vec::new(),
        fetch: Vec::new(),
    };
    if env.protocol != PROTOCOL {
        return fail(
            WorkerErrorKind::Protocol,
            format!(
                "the dispatcher speaks worker protocol {} and this worker {PROTOCOL} (covalent {} vs {}): run a worker binary of the same build",
                env.protocol,
                env.covalent,
                env!("CARGO_PKG_VERSION")
            ),
        );
    }
    let Some(def) = find_electron(&env.electron) else {
        return fail(
            WorkerErrorKind::Build,
            format!(
                "this worker binary has no electron `{}`: it is not a build of the dispatching program",
                env.electron
            ),
        );
    };
    if def.digest != env.digest {
        return fail(
            WorkerErrorKind::Build,
            format!(
                "electron `{}` differs between the dispatching program and this worker binary (source digest {} vs {}): rebuild and ship the same binary",
                env.electron, env.digest, def.digest
            ),
        );
    }
    if let Some(want) = &env.build {
        match binary_hash() {
            Ok(have) if &have == want => {}
            have => {
                let have = have.unwrap_or_else(|e| format!("unknown ({e})"));
                return fail(
                    WorkerErrorKind::Build,
                    format!(
                        "this worker binary ({}) is build {have}, the dispatching program is build {want}: a worker must be the very binary that dispatches (code the electron calls may differ even where its own source does not); copy the dispatching binary there, or let the executor ship it",
                        current_binary()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    ),
                );
            }
        }
    }
    let args = Args::new(env.inputs.iter().cloned().map(Output::new).collect());
    let task = Task {
        def,
        args,
        files: None,
    };
    // Async electrons need a runtime; sync ones run right here.
    let result = if task.is_async() {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => {
                let _guard = rt.enter();
                task.call_blocking()
            }
            Err(e) => Err(TaskError::Failed(format!(
                "cannot start an async runtime: {e}"
            ))),
        }
    } else {
        task.call_blocking()
    };
    match result {
        Ok(v) => match v.check() {
            Ok(()) => Ran {
                started_at,
                result: Ok(v),
                transfers: Vec::new(),
                fetch: Vec::new(),
            },
            Err(e) => fail(
                WorkerErrorKind::Serialization,
                format!(
                    "the output of `{}` (a `{}`) cannot be sent back as JSON faithfully, {e}",
                    def.name,
                    v.type_name()
                ),
            ),
        },
        Err(e) => {
            let kind = match &e {
                TaskError::Failed(_) => WorkerErrorKind::Failed,
                TaskError::Panicked(_) => WorkerErrorKind::Panicked,
                TaskError::Input(_) => WorkerErrorKind::Input,
                TaskError::Hook(_) => WorkerErrorKind::Hook,
                TaskError::Transfer(_) => WorkerErrorKind::Transfer,
            };
            let msg = match e {
                TaskError::Failed(m)
                | TaskError::Panicked(m)
                | TaskError::Input(m)
                | TaskError::Hook(m)
                | TaskError::Transfer(m) => m,
            };
            fail(kind, msg)
        }
    }
}

/// Environment variable that makes a worker serve tasks one after another instead of running
/// one: requests ([`ServeRequest`], one JSON line each) come on its stdin, replies
/// ([`ServeReply`]) go to the stdout it was started with; the tasks' own stdout goes to the
/// file named by [`SERVE_STDOUT_ENV`] and their stderr to the worker's stderr (a file), each
/// reply saying which bytes of them the task wrote.
pub const SERVE_ENV: &str = "COVALENT_WORKER_SERVE";
/// The file a serving worker's tasks write their stdout to (appended to).
pub const SERVE_STDOUT_ENV: &str = "COVALENT_WORKER_STDOUT";
/// For a serving worker without [`SERVE_STDOUT_ENV`]: the directory its scratch stream files
/// go in (named in its [`ServeHello`], so that the dispatcher can read what a task printed
/// before it crashed the worker); without it they are unlinked temporary files.
pub const SERVE_STREAMS_DIR_ENV: &str = "COVALENT_WORKER_STREAMS_DIR";

/// A task for a serving worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServeRequest {
    /// The task.
    pub task: TaskEnvelope,
    /// Where a large output's file goes ([`OutputFile`]).
    pub dir: PathBuf,
}

/// A serving worker's answer to one [`ServeRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServeReply {
    /// The task's result.
    pub result: ResultEnvelope,
    /// The byte range of the stdout file this task wrote (`[start, end)`).
    pub stdout: (u64, u64),
    /// The byte range of the stderr file this task wrote.
    pub stderr: (u64, u64),
    /// What the task wrote to stdout and stderr, for a worker started without
    /// [`SERVE_STDOUT_ENV`] (one whose files the dispatcher cannot read: a Slurm step, a
    /// process on another host); the ranges are then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<(String, String)>,
}

/// Where the tasks of a serving worker started without [`SERVE_STDOUT_ENV`] write: two
/// scratch files of its own (already unlinked), emptied before each task and read after it,
/// and the worker's own stderr, given back to fd 2 between tasks.
struct InlineStreams {
    out: std::fs::File,
    err: std::fs::File,
    own_stderr: libc::c_int,
    /// The files' paths, when they are kept where the dispatcher can read them.
    paths: Option<(PathBuf, PathBuf)>,
}

impl InlineStreams {
    fn new() -> std::io::Result<InlineStreams> {
        let dir = std::env::var_os(SERVE_STREAMS_DIR_ENV).map(PathBuf::from);
        if let Some(d) = &dir {
            std::fs::create_dir_all(d)?;
        }
        let id = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
        let scratch = |ext: &str| -> std::io::Result<(std::fs::File, PathBuf)> {
            let path = match &dir {
                Some(d) => d.join(format!("worker-{id}.{ext}")),
                None => std::env::temp_dir().join(format!(".covalent-worker-stream-{id}.{ext}")),
            };
            let f = std::fs::OpenOptions::new()
                .create_new(true)
                .read(true)
                .write(true)
                .open(&path)?;
            if dir.is_none() {
                std::fs::remove_file(&path)?;
            }
            Ok((f, path))
        };
        // SAFETY: dup(2) of fd 2; the copy is ours for the worker's life.
        let own_stderr = unsafe { libc::dup(2) };
        if own_stderr < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let ((out, out_path), (err, err_path)) = (scratch("out")?, scratch("err")?);
        Ok(InlineStreams {
            out,
            err,
            own_stderr,
            paths: dir.map(|_| (out_path, err_path)),
        })
    }

    /// Removes the kept files (at the worker's end).
    fn remove(&self) {
        if let Some((o, e)) = &self.paths {
            let _ = std::fs::remove_file(o);
            let _ = std::fs::remove_file(e);
        }
    }

    /// Empties the files and points fd 1 and 2 at them.
    fn begin(&mut self) {
        use std::io::Seek;
        use std::os::fd::AsRawFd;
        for f in [&mut self.out, &mut self.err] {
            let _ = f.set_len(0);
            let _ = f.seek(std::io::SeekFrom::Start(0));
        }
        // SAFETY: dup2(2) of descriptors this worker owns onto 1 and 2.
        unsafe {
            libc::dup2(self.out.as_raw_fd(), 1);
            libc::dup2(self.err.as_raw_fd(), 2);
        }
    }

    /// What the task wrote; fd 2 is the worker's own again.
    fn end(&mut self) -> (String, String) {
        use std::os::unix::fs::FileExt;
        let read = |f: &std::fs::File| {
            let n = f.metadata().map(|m| m.len()).unwrap_or(0);
            let mut buf = vec![0; n as usize];
            match f.read_exact_at(&mut buf, 0) {
                Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
                Err(_) => String::new(),
            }
        };
        let texts = (read(&self.out), read(&self.err));
        // SAFETY: dup2(2) of the saved stderr back onto 2.
        unsafe {
            libc::dup2(self.own_stderr, 2);
        }
        texts
    }
}

/// The first line a serving worker writes, once it is ready: where it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeHello {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// Its process id (on its host).
    pub pid: u32,
    /// Its host name.
    pub host: String,
    /// `SLURM_JOB_ID`, when it runs as a Slurm job step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    /// `SLURM_STEP_ID`, when it runs as a Slurm job step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_step: Option<String>,
    /// Its working directory when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Its scratch stdout and stderr files, when they are in [`SERVE_STREAMS_DIR_ENV`]: what
    /// the task being served has printed so far (the worker removes them when it ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<(PathBuf, PathBuf)>,
}

/// This host's name.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `len` bytes into the buffer.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok {
        String::from_utf8_lossy(&buf[..n]).into_owned()
    } else {
        String::new()
    }
}

/// The size of the file behind `fd` (where its next appended byte goes).
fn fd_size(fd: libc::c_int) -> u64 {
    // SAFETY: fstat(2) writes a `stat` for a descriptor; a bad one is an error, not UB.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) == 0 {
            st.st_size as u64
        } else {
            0
        }
    }
}

/// Serving mode: runs the requests on stdin one after another until stdin closes, then exits.
fn serve() -> ! {
    use std::io::{BufRead, Write};
    use std::os::fd::FromRawFd;
    // The replies keep the stdout this worker was given (a pipe to the dispatcher); fd 1 is
    // pointed at the stream file, so what tasks print never mixes with replies.
    // SAFETY: dup(2) of fd 1, owned by the new `File` from here on.
    let proto = unsafe { libc::dup(1) };
    if proto < 0 {
        eprintln!("covalent worker: cannot keep its reply channel");
        std::process::exit(70);
    }
    // SAFETY: `proto` is a fresh descriptor nothing else owns.
    let mut replies = std::io::BufWriter::new(unsafe { std::fs::File::from_raw_fd(proto) });
    let mut inline = None;
    if std::env::var_os(SERVE_STDOUT_ENV).is_none() {
        match InlineStreams::new() {
            Ok(s) => inline = Some(s),
            Err(e) => {
                eprintln!("covalent worker: cannot make its stream files: {e}");
                std::process::exit(70);
            }
        }
    }
    if let Some(path) = std::env::var_os(SERVE_STDOUT_ENV) {
        use std::os::fd::AsRawFd;
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            // SAFETY: dup2(2) onto fd 1; the file stays open through fd 1 after `f` is closed.
            Ok(f) => unsafe {
                libc::dup2(f.as_raw_fd(), 1);
            },
            Err(e) => {
                eprintln!("covalent worker: cannot open its stdout file: {e}");
                std::process::exit(70);
            }
        }
    }
    let hello = ServeHello {
        protocol: PROTOCOL,
        pid: std::process::id(),
        host: host_name(),
        slurm_job: std::env::var("SLURM_JOB_ID").ok(),
        slurm_step: std::env::var("SLURM_STEP_ID").ok(),
        cwd: std::env::current_dir().ok(),
        streams: inline.as_ref().and_then(|s| s.paths.clone()),
    };
    let said = serde_json::to_writer(&mut replies, &hello)
        .map_err(std::io::Error::other)
        .and_then(|()| replies.write_all(b"\n"))
        .and_then(|()| replies.flush());
    if said.is_err() {
        std::process::exit(0);
    }
    // While a task runs, a thread watches stdin for its end (poll(2) reports the hang-up
    // without reading): the dispatcher is gone (killed, or its link to this step lost), and
    // the task is not left running unseen: this worker (and the process group it leads) ends
    // at once. At the end of stdin between tasks, the loop below ends the worker.
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watching = busy.clone();
    let scratch = inline.as_ref().and_then(|s| s.paths.clone());
    let watcher = std::thread::Builder::new()
        .name("covalent-serve-watch".into())
        .spawn(move || {
            loop {
                if !watching.load(std::sync::atomic::Ordering::Acquire) {
                    std::thread::park_timeout(std::time::Duration::from_millis(100));
                    continue;
                }
                let mut fd = libc::pollfd {
                    fd: 0,
                    events: 0,
                    revents: 0,
                };
                // SAFETY: poll(2) on one valid `pollfd` for at most 100 ms.
                let n = unsafe { libc::poll(&mut fd, 1, 100) };
                let hung_up = n > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR) != 0;
                if hung_up && watching.load(std::sync::atomic::Ordering::Acquire) {
                    if let Some((o, e)) = &scratch {
                        let _ = std::fs::remove_file(o);
                        let _ = std::fs::remove_file(e);
                    }
                    if let Some(d) = pool_worker_dir() {
                        let _ = std::fs::remove_dir_all(d);
                    }
                    crate::executor::child::kill_own_group();
                }
            }
        });
    let Ok(watcher) = watcher else {
        eprintln!("covalent worker: cannot start its stdin watcher");
        std::process::exit(70);
    };
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        busy.store(true, std::sync::atomic::Ordering::Release);
        watcher.thread().unpark();
        let _ = std::io::stdout().flush();
        if let Some(s) = &mut inline {
            s.begin();
        }
        let before = (fd_size(1), fd_size(2));
        let result = match serde_json::from_str::<ServeRequest>(&line) {
            Ok(req) => run_envelope_into(&req.task, &req.dir),
            Err(e) => ResultEnvelope {
                protocol: PROTOCOL,
                output: None,
                error_kind: Some(WorkerErrorKind::Protocol),
                error: Some(format!("the worker could not read its request: {e}")),
                started_at: now_micros(),
                ended_at: now_micros(),
                output_file: None,
                transfers: Vec::new(),
                fetch: Vec::new(),
            },
        };
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        busy.store(false, std::sync::atomic::Ordering::Release);
        let streams = inline.as_mut().map(InlineStreams::end);
        let reply = match streams {
            Some(texts) => ServeReply {
                result,
                stdout: (0, 0),
                stderr: (0, 0),
                streams: Some(texts),
            },
            None => ServeReply {
                result,
                stdout: (before.0, fd_size(1)),
                stderr: (before.1, fd_size(2)),
                streams: None,
            },
        };
        let sent = serde_json::to_writer(&mut replies, &reply)
            .map_err(std::io::Error::other)
            .and_then(|()| replies.write_all(b"\n"))
            .and_then(|()| replies.flush());
        if sent.is_err() {
            // The dispatcher is gone.
            break;
        }
    }
    if let Some(s) = &inline {
        s.remove();
    }
    std::process::exit(0);
}

/// Environment variable naming the pid of the dispatcher a local worker belongs to: set by the
/// `process` executor, whose workers end (with their whole process group) when it dies.
pub const PARENT_ENV: &str = "COVALENT_WORKER_PARENT";

/// How often a local worker checks that its dispatcher is still there.
const PARENT_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// With [`PARENT_ENV`] set: a thread that kills this worker's process group (the worker leads
/// it, so the task's own children go too) once the dispatcher that started it is gone (this
/// process was re-parented), so no task outlives a killed dispatcher unseen.
fn watch_parent() {
    let Some(parent) = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<libc::pid_t>().ok())
    else {
        return;
    };
    let check = move || {
        // SAFETY: getppid(2) has no preconditions.
        unsafe { libc::getppid() == parent }
    };
    // A serving worker's directory (its stream files) is its dispatcher's to remove; one
    // killed with no chance to is removed here.
    let own_dir = pool_worker_dir();
    let orphaned = move || {
        if let Some(d) = &own_dir {
            let _ = std::fs::remove_dir_all(d);
        }
        crate::executor::child::kill_own_group();
    };
    if !check() {
        orphaned();
    }
    let _ = std::thread::Builder::new()
        .name("covalent-parent-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(PARENT_CHECK);
                if !check() {
                    orphaned();
                }
            }
        });
}

/// The directory of a reusable `process` worker (its stream files, named after it), which the
/// worker removes itself when its dispatcher is gone before it could.
fn pool_worker_dir() -> Option<PathBuf> {
    std::env::var_os(SERVE_STDOUT_ENV)
        .map(PathBuf::from)
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("covalent-worker-"))
        })
}

/// Worker mode: when the environment names a task, run it, write the result and exit.
/// Returns (does nothing) otherwise.
pub fn enter_if_worker() {
    if std::env::var_os(SERVE_ENV).is_some() {
        watch_parent();
        serve();
    }
    let Some(task) = std::env::var_os(TASK_ENV) else {
        return;
    };
    watch_parent();
    let result_path = std::env::var_os(RESULT_ENV).map(PathBuf::from);
    let task = PathBuf::from(task);
    let result = match std::fs::read(&task)
        .map_err(|e| format!("cannot read the task envelope {}: {e}", task.display()))
        .and_then(|b| {
            serde_json::from_slice::<TaskEnvelope>(&b)
                .map_err(|e| format!("the task envelope {} is not readable: {e}", task.display()))
        }) {
        Ok(env) => match result_path.as_deref().and_then(Path::parent) {
            Some(dir) => run_envelope_into(&env, dir),
            None => run_envelope(&env),
        },
        Err(msg) => ResultEnvelope {
            protocol: PROTOCOL,
            output: None,
            error_kind: Some(WorkerErrorKind::Protocol),
            error: Some(msg),
            started_at: now_micros(),
            ended_at: now_micros(),
            output_file: None,
            transfers: Vec::new(),
            fetch: Vec::new(),
        },
    };
    let bytes = serde_json::to_vec(&result).unwrap_or_default();
    let written = match &result_path {
        // Whole or not at all: a dispatcher that looks while it is written (one re-attaching
        // after a crash) never reads half a result.
        Some(p) => {
            let tmp = p.with_extension("json.part");
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, p))
                .map_err(|e| format!("{}: {e}", p.display()))
        }
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| e.to_string())
        }
    };
    if let Err(e) = written {
        eprintln!("covalent worker: cannot write the result: {e}");
        std::process::exit(70);
    }
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    /// A value file cut short or garbled on its way is refused (and removed), never taken as
    /// the value; a whole one becomes the value, read from the file, and goes with it.
    #[test]
    fn value_files_are_checked_before_they_become_the_value() {
        use super::{OutputFile, adopt_value_file};
        let results = tempfile::tempdir().unwrap();
        let ctx = crate::executor::TaskContext::elsewhere(
            uuid::Uuid::now_v7(),
            1,
            "big",
            &results.path().join("d"),
        );
        let text = serde_json::to_string(&(0..50_000u32).collect::<Vec<_>>()).unwrap();
        let file = OutputFile {
            h: blake3::hash(text.as_bytes()).to_hex().to_string(),
            n: text.len() as u64,
        };
        let arrived = results.path().join(file.name());
        let err = |bytes: &[u8]| {
            std::fs::write(&arrived, bytes).unwrap();
            let e = adopt_value_file(&arrived, &file, &ctx)
                .err()
                .unwrap()
                .to_string();
            assert!(!arrived.exists(), "a refused file is removed");
            e
        };
        let short = err(&text.as_bytes()[..text.len() - 7]);
        assert!(short.contains("cut short"), "{short}");
        let mut garbled = text.clone().into_bytes();
        garbled[1000] = b'9' + b'0' - garbled[1000] % 10;
        let garbled = err(&garbled);
        assert!(garbled.contains("does not match its digest"), "{garbled}");

        std::fs::write(&arrived, &text).unwrap();
        let v = adopt_value_file(&arrived, &file, &ctx).unwrap();
        let kept = results
            .path()
            .join("d/values")
            .join(format!("{}.json", file.h));
        assert!(!arrived.exists() && kept.exists());
        assert_eq!(v.get::<Vec<u32>>().unwrap().len(), 50_000);
        assert_eq!(v.to_json_string(), text);
        drop(v);
        assert!(!kept.exists(), "an unrecorded value's file goes with it");
        assert!(!results.path().join("d").exists(), "and the emptied dirs");
    }

    #[test]
    fn shell_quoting_survives_the_shell() {
        for s in [
            "plain",
            "with space",
            "it's",
            "$HOME",
            "a\"b",
            "",
            "x;rm -rf /",
            "$(id)",
            "back\\slash",
            "new\nline",
            "*",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }
}
