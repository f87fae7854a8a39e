//! A node's attempts: the single retry loop every path uses (pool nodes and nodes on the async
//! runtime), the two ways one attempt runs (a sync body on this thread, or an executor's
//! `setup`/`run`/`teardown` bounded by the time limit and cancellation) and the record of each
//! attempt.
//!
//! This module owns retries and the per-attempt context; scheduling and completion are
//! `schedule.rs`'s.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::cancel::{self, StopToken};
use crate::electron::{Args, Body, ElectronDef};
use crate::error::{ErrorKind, NodeError};
use crate::executor::{CtxInner, ExecutorError, ExecutorRef, JobHandle, Probe, Task, TaskContext};
use crate::graph::Op;
use crate::invoke::{self, CatchPanic};
use crate::value::Output;

use super::run::Run;
use super::state::Attempt;

impl Run {
    /// The retry loop of node `i`, for every path: runs `attempt(n)` for n = 1, 2, ... until
    /// one succeeds, its error's kind is final, `retries` are spent or the node's cancellation
    /// is requested, and records every attempt. `first` is the first attempt when the caller
    /// has run it already: its start stamp and its outcome.
    async fn attempts<F>(
        &self,
        i: u32,
        retries: u32,
        mut first: Option<Ran>,
        mut attempt: impl FnMut(u32) -> F,
    ) -> Result<Output, NodeError>
    where
        F: Future<Output = Result<Output, NodeError>>,
    {
        let mut n = 1;
        loop {
            let (t0, outcome) = match first.take() {
                Some(ran) => ran,
                None => (self.now(), attempt(n).await),
            };
            match outcome {
                Ok(v) => {
                    self.record_attempt(i, n, t0, None);
                    return Ok(v);
                }
                Err(e) => {
                    self.record_attempt(i, n, t0, Some(e.clone()));
                    if !e.kind().is_retryable()
                        || n > retries
                        || self.cancel.is_requested(i as usize)
                        || self.body_still_runs(i)
                    {
                        return Err(e);
                    }
                    n += 1;
                }
            }
        }
    }

    /// Whether an earlier attempt of node `i` was given up while its body kept running on a
    /// thread that cannot be stopped: no retry may run beside it.
    fn body_still_runs(&self, i: u32) -> bool {
        self.states[i as usize].read_extra(|x| x.is_some_and(|x| x.body_still_runs))
    }

    fn record_attempt(&self, i: u32, number: u32, t0: u64, error: Option<NodeError>) {
        let t1 = self.now();
        self.states[i as usize].extra(|x| {
            x.attempts.push(Attempt {
                number,
                start: Duration::from_nanos(t0 - 1),
                end: Duration::from_nanos(t1 - 1),
                error,
            })
        });
    }

    /// A sync electron on the pool: hooks and body on this thread, with the node's retries.
    pub(super) fn run_pool_electron(
        &self,
        i: u32,
        def: &'static ElectronDef,
        args: &mut Args,
    ) -> Result<Output, NodeError> {
        let Body::Sync(body) = def.body else {
            unreachable!("only sync electrons run on the pool")
        };
        let retries = def
            .retries
            .or(self.exec_of(i as usize).retries)
            .unwrap_or(0);
        // The first attempt runs here, outside the loop: it is the one that almost always
        // succeeds, and a chain runs millions of them; its success needs no attempt record (the
        // node's own times say it all). It starts when the node does.
        let first = self.run_sync_here(i, def, body, args, 1);
        if first.is_ok() {
            return first;
        }
        let start = self.states[i as usize]
            .start
            .load(std::sync::atomic::Ordering::Relaxed);
        now_or_never(self.attempts(i, retries, Some((start, first)), |n| {
            std::future::ready(self.run_sync_here(i, def, body, args, n))
        }))
    }

    /// One attempt of a sync body on this thread, with `covalent::cancelled()` reading node
    /// `i`'s cancel requests.
    fn run_sync_here(
        &self,
        i: u32,
        def: &'static ElectronDef,
        body: fn(&mut Args) -> Result<Output, crate::electron::TaskError>,
        args: &mut Args,
        n: u32,
    ) -> Result<Output, NodeError> {
        let token = StopToken {
            cancel: self.cancel.clone(),
            node: i as usize,
            given_up: None,
        };
        if def.files.is_empty() && !def.uses_files && !crate::files::used() {
            return cancel::with_token(token, || invoke::run_sync(def, body, args))
                .map_err(NodeError::from);
        }
        let scope = scope_here(def, self.results_dir(), i as usize, n).unwrap_or_default();
        let (r, scope) = crate::files::enter(scope, || {
            cancel::with_token(token, || invoke::run_sync(def, body, args))
        });
        if !scope.records.is_empty() {
            self.states[i as usize].extra(|x| x.more().transfers.extend(scope.records));
        }
        r.map_err(NodeError::from)
    }

    /// Runs a node on the async runtime: executors, time limits, retries, cancellation,
    /// sublattices, and attempts a resumed dispatch re-attaches to.
    pub(super) async fn run_async(self: Arc<Self>, i: u32) {
        let Op::Electron(def) = &self.graph.nodes[i as usize].op else {
            unreachable!("internal nodes always run on the pool")
        };
        let def = *def;
        let resolved = self.exec_of(i as usize);
        // Its concurrency pool, then its executor's in-flight limit (always in that order):
        // the node stays PENDING until both have a place for it.
        let _pool = match def.pool {
            Some(name) => match self.config.pools.get(name) {
                Some(&size) => pool_semaphore(name, size).acquire_owned().await.ok(),
                None => {
                    if self.claim(i, 0) {
                        self.complete_async(
                            i,
                            Err(NodeError::new(
                                ErrorKind::Config,
                                format!(
                                    "electron `{}` runs in pool `{name}`, which the configuration does not size: add `[pools]` with `{name} = N` (the most of its nodes running at once) to covalent.toml",
                                    def.name
                                ),
                            )),
                        );
                    }
                    return;
                }
            },
            None => None,
        };
        // What it needs of its executor (if the executor admits by needs): it waits for it.
        let _grant = match &resolved.exec {
            Ok(e) if !def.needs.is_empty() => match e.exec.resource_ledger() {
                Some(ledger) => {
                    if let Some(why) = ledger.never_fits(&def.needs, e.short_name()) {
                        if self.claim(i, 0) {
                            self.complete_async(
                                i,
                                Err(NodeError::new(
                                    ErrorKind::Config,
                                    format!("electron `{}` {why}", def.name),
                                )),
                            );
                        }
                        return;
                    }
                    let g = ledger.admit(&def.needs).await;
                    let a = g.assignment.clone();
                    self.states[i as usize].extra(|x| x.more().assignment = Some(a));
                    Some(g)
                }
                None => None,
            },
            _ => None,
        };
        let limit = match (&def.body, &resolved.exec) {
            (Body::Sublattice(_), _) | (_, Err(_)) => None,
            (_, Ok(e)) => e.exec.in_flight_limit(),
        };
        let _permit = match limit {
            Some(sem) => sem.acquire_owned().await.ok(),
            None => None,
        };
        if !self.claim(i, 0) {
            return;
        }
        let args = self.gather(i as usize);
        if let Body::Sublattice(build) = def.body {
            self.start_sublattice(i, build, args);
            return;
        }
        let exec = match &resolved.exec {
            Ok(e) => e.clone(),
            Err(e) => {
                self.complete_async(i, Err(e.clone().into()));
                return;
            }
        };
        self.states[i as usize].extra(|x| x.executor = Some(exec.clone()));
        let retries = def.retries.or(resolved.retries).unwrap_or(0);
        let time_limit = def.time_limit.or(resolved.time_limit);
        let first = match self.take_adopted(i) {
            Some(h) => match self.adopted_attempt(&exec, i, def, h, time_limit).await {
                Ok(first) => first,
                Err(e) => {
                    self.complete_async(i, Err(e));
                    return;
                }
            },
            None => None,
        };
        let result = self
            .attempts(i, retries, first, |n| {
                self.attempt_on(&exec, i, def, How::Run(&args), n, time_limit)
            })
            .await;
        self.complete_async(i, result);
    }

    /// For a resumed dispatch: the attempt an earlier process started for node `i` (its job
    /// handle `h`), followed to its end when the executor still finds it (its outcome is the
    /// node's first attempt), `None` when it is gone (the node runs anew). An executor that
    /// cannot tell (a host it cannot reach) fails the node rather than risk a second copy.
    async fn adopted_attempt(
        self: &Arc<Self>,
        exec: &ExecutorRef,
        i: u32,
        def: &'static ElectronDef,
        h: JobHandle,
        time_limit: Option<Duration>,
    ) -> Result<Option<Ran>, NodeError> {
        match exec.exec.probe(&h).await {
            Ok(Probe::Gone) => Ok(None),
            Ok(Probe::Running | Probe::Finished) => {
                let t0 = self.now();
                let r = self
                    .attempt_on(exec, i, def, How::Reattach(h), 1, time_limit)
                    .await;
                Ok(Some((t0, r)))
            }
            Err(e) => Err(NodeError::new(
                e.kind(),
                format!(
                    "cannot tell whether the attempt an earlier dispatcher started ({}) still runs: {e}; resume again once that can be checked (nothing was submitted twice)",
                    h.0
                ),
            )),
        }
    }

    /// The context of attempt `n` of node `i`: the job handle it sets goes onto the node (and
    /// to the observer) at once.
    fn context(self: &Arc<Self>, i: u32, def: &'static ElectronDef, n: u32) -> TaskContext {
        TaskContext {
            inner: Arc::new(CtxInner {
                dispatch_id: self.id,
                node_id: i as usize,
                node_name: def.name,
                attempt: n,
                results_dir: self.results_dir().to_path_buf(),
                cancel: self.cancel.clone(),
                job_handle: Mutex::new(None),
                streams: Mutex::new(None),
                transfers: Default::default(),
                assignment: self.states[i as usize]
                    .read_extra(|x| x.and_then(|x| x.more.as_ref()?.assignment.clone())),
                body_thread: Mutex::new(None),
                on_handle: Some(Box::new({
                    let run = Arc::downgrade(self);
                    move |h: &JobHandle| {
                        if let Some(run) = run.upgrade() {
                            run.states[i as usize].extra(|x| x.job_handle = Some(h.clone()));
                            if let Some(o) = &run.observer {
                                o.node_changed(i);
                            }
                        }
                    }
                })),
            }),
        }
    }

    /// Attempt `n` of node `i` on `exec` (running the task, or following one an earlier process
    /// started): its own context, the executor's calls, then the streams and job handle it
    /// recorded kept on the node.
    async fn attempt_on(
        self: &Arc<Self>,
        exec: &ExecutorRef,
        i: u32,
        def: &'static ElectronDef,
        how: How<'_>,
        n: u32,
        time_limit: Option<Duration>,
    ) -> Result<Output, NodeError> {
        let ctx = self.context(i, def, n);
        let e = &exec.exec;
        let r = match how {
            How::Run(args) => {
                let task = Task {
                    def,
                    args: Args::new(args.values.clone()),
                    files: in_process_files(def, &ctx),
                };
                let work = async {
                    e.setup(&ctx).await?;
                    let r = e.run(task, &ctx).await;
                    let t = e.teardown(&ctx).await;
                    let v = r?;
                    t?;
                    Ok(v)
                };
                bounded(exec, &ctx, time_limit, work).await
            }
            How::Reattach(h) => {
                ctx.set_job_handle(&h);
                bounded(exec, &ctx, time_limit, e.reattach(&h, &ctx)).await
            }
        };
        if let Some((out, err)) = ctx.inner.streams.lock().unwrap().take() {
            if let Err(e) = crate::executor::write_streams_to_file(&out, &err, exec.exec.base()) {
                warn(&format!("cannot write the task's streams: {e}"));
            }
            self.states[i as usize].extra(|x| {
                x.stdout.push_str(&out);
                x.stderr.push_str(&err);
            });
        }
        if let Some(h) = ctx.job_handle() {
            self.states[i as usize].extra(|x| x.job_handle = Some(h));
        }
        let moved = std::mem::take(&mut *ctx.inner.transfers.lock().unwrap());
        if !moved.is_empty() {
            self.states[i as usize].extra(|x| x.more().transfers.extend(moved));
        }
        let e = match r {
            Ok(v) => return Ok(v),
            Err(e) => NodeError::from(e),
        };
        let body = ctx.inner.body_thread.lock().unwrap().take();
        match body {
            Some(t)
                if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Cancelled)
                    && t.still_running_after(BODY_GRACE).await =>
            {
                self.states[i as usize].extra(|x| x.body_still_runs = true);
                Err(NodeError::new(
                    e.kind(),
                    format!(
                        "{}; its thread could not be stopped and still runs the electron (a thread cannot be killed), so it is not retried while that runs and its result will be discarded: poll `covalent::cancelled()` in the electron to stop early, or run it with `executor = \"process\"` for a hard kill",
                        e.message()
                    ),
                ))
            }
            _ => Err(e),
        }
    }
}

/// The semaphore of concurrency pool `name` of `size` places, one per name and size in this
/// process (dispatches whose configurations size a pool alike share it).
fn pool_semaphore(name: &str, size: u32) -> Arc<tokio::sync::Semaphore> {
    type Pools = std::collections::HashMap<(String, u32), Arc<tokio::sync::Semaphore>>;
    static POOLS: std::sync::LazyLock<Mutex<Pools>> = std::sync::LazyLock::new(Default::default);
    POOLS
        .lock()
        .unwrap()
        .entry((name.to_string(), size))
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(size as usize)))
        .clone()
}

/// The files side of running `def` in this process for the attempt of `ctx`, when the electron
/// has transfers or the program uses files at all (others pay nothing).
fn in_process_files(
    def: &'static ElectronDef,
    ctx: &TaskContext,
) -> Option<crate::executor::InProcessFiles> {
    if def.files.is_empty() && !def.uses_files && !crate::files::used() {
        return None;
    }
    Some(crate::executor::InProcessFiles {
        scope: scope_here(def, &ctx.inner.results_dir, ctx.node_id(), ctx.attempt())?,
        sink: ctx.inner.transfers.clone(),
    })
}

/// The scope of an electron run in this process: its transfers resolved against the current
/// directory; with transfers, a directory of its own among the dispatch's results.
fn scope_here(
    def: &'static ElectronDef,
    results: &std::path::Path,
    node: usize,
    attempt: u32,
) -> Option<crate::files::Scope> {
    let dir = crate::executor::files::attempt_dir_in(results, node, attempt);
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    // A plan that does not resolve fails the transfers, with its message.
    let (planned, failed) = match crate::files::plan(def.files, false, &cwd) {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    Some(crate::files::Scope {
        dir: (!def.files.is_empty()).then(|| dir.clone()),
        attempt_dir: Some(dir),
        planned,
        attempt,
        failed,
        ..Default::default()
    })
}

/// An attempt that has run: its start stamp and its outcome.
type Ran = (u64, Result<Output, NodeError>);

/// What an attempt does: run the task with these inputs, or follow the attempt of an earlier
/// process that has this job handle.
enum How<'a> {
    Run(&'a Args),
    Reattach(JobHandle),
}

/// Drives a future that never waits (the pool path's attempts) to its end on this thread.
fn now_or_never<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("a pool attempt never waits"),
    }
}

/// How long a given-up attempt's body may take to notice (`covalent::cancelled()`) and return
/// before its thread is reported as one that could not be stopped.
pub(super) const BODY_GRACE: Duration = Duration::from_millis(50);

fn warn(msg: &str) {
    eprintln!("covalent: warning: {msg}");
}

/// One attempt's work on an executor (`setup`/`run`/`teardown`, or `reattach`), bounded by the
/// time limit and cancellation; a timed-out or cancelled attempt is cancelled through the
/// executor with the job handle it recorded.
async fn bounded(
    exec: &ExecutorRef,
    ctx: &TaskContext,
    time_limit: Option<Duration>,
    work: impl Future<Output = Result<Output, ExecutorError>>,
) -> Result<Output, ExecutorError> {
    let work = CatchPanic(Box::pin(work));
    let limited = async {
        match time_limit {
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(r) => r,
                Err(_) => Ok(Err(ExecutorError::TimedOut(limit))),
            },
            None => work.await,
        }
    };
    let r = tokio::select! {
        r = limited => r.unwrap_or_else(|m| {
            Err(ExecutorError::Failed(format!(
                "executor `{}` panicked: {m}",
                exec.short_name()
            )))
        }),
        _ = ctx.cancelled() => Err(ExecutorError::Cancelled),
    };
    if matches!(
        r,
        Err(ExecutorError::TimedOut(_)) | Err(ExecutorError::Cancelled)
    ) {
        let h = ctx.job_handle();
        if let Err(err) = exec.exec.cancel(ctx, h.as_ref()).await {
            warn(&format!("cancelling node {} failed: {err}", ctx.node_id()));
        }
    }
    r
}
