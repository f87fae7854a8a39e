//! Lattices and dispatches: a built graph ready to run ([`Lattice`]), starting it
//! ([`dispatch`], [`dispatch_sync`]) and following a running dispatch ([`Dispatch`]).
//!
//! This module owns the user-facing entry points and their errors; building is `graph.rs`,
//! running is `dispatcher/`, recording is `store/`, reporting is `result.rs`.

use std::marker::PhantomData;
use std::sync::Arc;

use uuid::Uuid;

use crate::api_error::Error;
use crate::config::Config;
use crate::dispatcher::{Run, RunObserver, RunSpec};
use crate::electron::{Body, ElectronDef};
use crate::executor::{ExecutorSel, IntoExecutor};
use crate::graph::{Graph, Op};
use crate::result::LatticeResult;
use crate::status::Status;
use crate::store::journal::RunJournal;
use crate::store::{NewDispatch, Store};
use crate::value::Value;

/// A built, not yet run, workflow: what calling a `#[lattice]` function returns.
pub struct Lattice<T> {
    graph: Graph,
    config: Option<Arc<Config>>,
    pub(crate) record: Option<bool>,
    reuse_from: Option<Uuid>,
    /// The id to dispatch under (a detached or resumed dispatch's, chosen by its starter).
    pub(crate) id: Option<Uuid>,
    /// Why another process could not rebuild this lattice from its registered name and inputs
    /// (a change made after it was built), if it could not.
    pub(crate) changed: Option<&'static str>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Lattice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lattice")
            .field("graph", &self.graph)
            .finish()
    }
}

impl<T> Lattice<T> {
    pub(crate) fn from_graph(graph: Graph) -> Self {
        Lattice {
            graph,
            config: None,
            record: None,
            reuse_from: None,
            id: None,
            changed: None,
            _t: PhantomData,
        }
    }

    /// The id and reuse source, for another process to start this lattice with.
    pub(crate) fn reuse_from(&self) -> Option<Uuid> {
        self.reuse_from
    }

    /// Whether a `with_config` was given.
    pub(crate) fn has_config(&self) -> bool {
        self.config.is_some()
    }

    pub(crate) fn into_graph(self) -> Graph {
        self.graph
    }

    /// The lattice's name.
    pub fn name(&self) -> &str {
        &self.graph.name
    }

    /// The transport graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Number of tasks (internal parameter and collection nodes excluded).
    pub fn task_count(&self) -> usize {
        self.graph.task_count()
    }

    /// Cancels the rest of the dispatch at the first failed node.
    pub fn fail_fast(mut self, on: bool) -> Self {
        if on != self.graph.fail_fast {
            self.changed = Some("fail_fast");
        }
        self.graph.fail_fast = on;
        self
    }

    /// Uses this configuration instead of the process-wide one (`covalent.toml`).
    pub fn with_config(mut self, config: impl Into<Arc<Config>>) -> Self {
        self.config = Some(config.into());
        self
    }

    /// Records this dispatch in the store or not (default: `[sdk] record`, true).
    pub fn record(mut self, on: bool) -> Self {
        self.record = Some(on);
        self
    }

    /// Redispatch: reuses the stored outputs of dispatch `previous` for every node whose
    /// electron, inputs and upstream are unchanged (they end REUSED and do not run). This is
    /// also how an interrupted or failed dispatch resumes.
    pub fn reuse(mut self, previous: Uuid) -> Self {
        self.reuse_from = Some(previous);
        self
    }

    /// Replaces every call of electron `old` with `new` (same parameter and output types),
    /// as Covalent's `redispatch(replace_electrons=...)` does. Combine with [`Lattice::reuse`]
    /// to re-run only what the replacement changes.
    pub fn replace_electron(
        mut self,
        old: &'static ElectronDef,
        new: &'static ElectronDef,
    ) -> Result<Self, Error> {
        if (old.signature)() != (new.signature)() {
            return Err(Error::Replace {
                old: old.path.into(),
                new: new.path.into(),
                reason: "their parameter or output types differ".into(),
            });
        }
        if std::mem::discriminant(&old.body) != std::mem::discriminant(&new.body)
            && (matches!(old.body, Body::Sublattice(_)) || matches!(new.body, Body::Sublattice(_)))
        {
            return Err(Error::Replace {
                old: old.path.into(),
                new: new.path.into(),
                reason: "a sublattice can only be replaced by a sublattice".into(),
            });
        }
        self.changed = Some("replace_electron");
        for node in &mut self.graph.nodes {
            if let Op::Electron(d) = &mut node.op
                && d.path == old.path
            {
                *d = new;
            }
        }
        Ok(self)
    }

    /// Sets the default executor of the lattice's electrons (like `#[lattice(executor = ..)]`).
    pub fn with_executor<M>(mut self, executor: impl IntoExecutor<M>) -> Self {
        let sel: ExecutorSel = executor.into_executor();
        self.graph.default_executor = Some(sel);
        self.changed = Some("with_executor");
        self
    }
}

/// A running dispatch.
pub struct Dispatch<T> {
    pub(crate) run: Arc<Run>,
    /// Where the dispatch is recorded, if it is.
    pub(crate) journal: Option<(Arc<RunJournal>, Arc<Store>)>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Dispatch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dispatch({})", self.run.id())
    }
}

impl<T: Value> Dispatch<T> {
    /// The dispatch id (a UUID v7).
    pub fn id(&self) -> Uuid {
        self.run.id()
    }

    /// The dispatch's status now.
    pub fn status(&self) -> Status {
        self.run.status()
    }

    /// Requests cancellation of the whole dispatch: nodes not started end CANCELLED, running
    /// ones are cancelled through their executors.
    pub fn cancel(&self) {
        self.run.cancel_all();
    }

    /// Requests cancellation of some nodes (by id); their dependants end CANCELLED.
    pub fn cancel_nodes(&self, ids: impl IntoIterator<Item = usize>) {
        for i in ids {
            self.run.cancel_node(i);
        }
    }

    /// Waits for the dispatch to end and returns its result.
    pub async fn wait(self) -> Result<LatticeResult<T>, Error> {
        let progress = crate::progress::Progress::start(&self.run);
        self.run.wait_done().await;
        if let Some((j, store)) = &self.journal {
            j.flush(&self.run, store).await;
        }
        drop(progress);
        LatticeResult::from_run(self.run)
    }
}

/// Starts a lattice and returns at once with its [`Dispatch`].
///
/// ```
/// use covalent::prelude::*;
///
/// #[electron]
/// fn add(x: i64, y: i64) -> i64 { x + y }
///
/// #[lattice]
/// fn flow(x: i64) -> i64 { add(x, 1) }
///
/// # covalent_test_support::isolate_home();
/// # covalent::__private::test(async {
/// let d = covalent::dispatch(flow(41)).await?;
/// let r = d.wait().await?;
/// assert_eq!(r.value(), Some(&42));
/// # Ok::<(), covalent::Error>(()) }).unwrap();
/// ```
pub async fn dispatch<T: Value>(lattice: Lattice<T>) -> Result<Dispatch<T>, Error> {
    start(lattice, false).map(|(d, _)| d)
}

/// Starts a lattice. With `keep_one`, one ready pool node is returned instead of queued, for
/// the caller to run.
pub(crate) fn start<T: Value>(
    lattice: Lattice<T>,
    keep_one: bool,
) -> Result<(Dispatch<T>, Option<u32>), Error> {
    let config = match lattice.config {
        Some(c) => c,
        None => {
            let c = Config::global()?;
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                for w in c.warnings() {
                    eprintln!("covalent: warning: {w}");
                }
            });
            c
        }
    };
    let id = lattice.id.unwrap_or_else(Uuid::now_v7);
    let record = lattice.record.unwrap_or(config.sdk.record);
    if let (true, Some((input, reason))) = (record, lattice.graph.input_errors.first()) {
        return Err(Error::Input {
            lattice: lattice.graph.name.clone(),
            input: input.clone(),
            reason: reason.clone(),
        });
    }
    let store = if record || lattice.reuse_from.is_some() {
        Some(Store::open(&config.store_path())?)
    } else {
        None
    };
    // Redispatch and resume: outputs of completed nodes to take, and attempts an earlier
    // dispatcher left running to follow (claimed first, so no two dispatches follow them).
    let (reused, adopt) = match (&store, lattice.reuse_from) {
        (Some(s), Some(prev)) => {
            let from = s.reusable(prev)?;
            let reused = crate::store::encode::by_fingerprint(&lattice.graph, &from.outputs)
                .into_iter()
                .map(|v| v.map(crate::value::Output::new))
                .collect();
            let mut adopt = std::collections::HashMap::new();
            if !from.running.is_empty() {
                if let Err(other) = s.claim_resume(prev, id)? {
                    return Err(Error::Durable(format!(
                        "dispatch {prev} was already resumed as dispatch {other}, which follows the attempts it left running: resume or reuse {other} instead"
                    )));
                }
                for (i, h) in crate::store::encode::by_fingerprint(&lattice.graph, &from.running)
                    .into_iter()
                    .enumerate()
                {
                    if let Some(h) = h {
                        adopt.insert(i as u32, h);
                    }
                }
            }
            (reused, adopt)
        }
        _ => (Vec::new(), Default::default()),
    };
    // The dispatch's row: written now when the id is handed out before the run ends
    // (`dispatch`: it is durable on return); with the first batch for `dispatch_sync`, whose
    // caller learns the id only at the end (within a tick of the start, or in the one commit
    // that records a dispatch that ended sooner).
    let journal = match &store {
        Some(s) if record => {
            let row = NewDispatch::new(
                id,
                (&lattice.graph.name, lattice.graph.path),
                &lattice.graph.inputs_json,
                lattice.graph.task_count(),
                &config.results_dir().join(id.to_string()),
                lattice.reuse_from,
            );
            let row = if keep_one {
                Some(row)
            } else {
                s.insert_dispatch(&row)?;
                None
            };
            Some(
                s.journal()
                    .for_dispatch(id.to_string(), row, Arc::downgrade(s)),
            )
        }
        _ => None,
    };
    let run = Run::new(
        lattice.graph,
        RunSpec {
            id,
            config,
            handle: crate::runtime::handle(),
            parent: None,
            inherited_default: None,
            observer: journal.clone().map(|j| j as Arc<dyn RunObserver>),
            reused,
            adopt,
        },
    );
    let first = run.start(keep_one);
    Ok((
        Dispatch {
            run,
            journal: journal.zip(store),
            _t: PhantomData,
        },
        first,
    ))
}

/// Runs a lattice to the end from synchronous code and returns its result.
///
/// The calling thread takes part: it runs the dispatch's synchronous electrons on the `local`
/// executor (and internal nodes) alongside the worker pool instead of only waiting, so a small
/// dispatch completes without a thread hand-off. Other executors, async electrons and time
/// limits run on the async runtime as with [`dispatch`].
///
/// One consequence: when a cancel gives up a sync electron that the calling thread itself is
/// running and that does not poll [`crate::cancelled`], the dispatch ends on time (its record
/// and [`Dispatch::wait`] elsewhere see it), but this call returns only once that electron
/// returns. Poll `covalent::cancelled()` in long electrons, or use [`dispatch`] and
/// [`Dispatch::wait`], which never run electrons on the waiting thread.
pub fn dispatch_sync<T: Value>(lattice: Lattice<T>) -> Result<LatticeResult<T>, Error> {
    crate::runtime::blocking(move || {
        let (d, first) = start(lattice, true)?;
        let run = d.run;
        let progress = crate::progress::Progress::start(&run);
        run.help_until_done(first);
        drop(progress);
        if let Some((j, store)) = &d.journal {
            // A run that ended within its first tick is written here, in one commit; one the
            // writer took over is waited for (rare enough to go through the runtime).
            let (j, store, run) = (j.clone(), store.clone(), run.clone());
            crate::runtime::handle().block_on(async move { j.flush(&run, &store).await });
        }
        LatticeResult::from_run(run)
    })
    .map_err(Error::Runtime)?
}
