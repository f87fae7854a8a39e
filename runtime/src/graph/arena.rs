//! The arena a lattice body builds: node specs (electron or internal op, executor slot),
//! edges in compressed rows, the [`Graph`] the dispatcher runs, and the thread-local
//! [`Builder`] that `#[lattice]` installs around the body.
//!
//! This module owns the graph's layout and its construction; it must not run anything.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::electron::{Args, ElectronDef, SubGraph, TaskError};
use crate::executor::ExecutorSel;
use crate::value::Output;

/// Slot number of a data-less ordering edge.
pub(crate) const WAIT_SLOT: u32 = u32::MAX;
/// "No executor chosen at the call site."
pub(crate) const NO_EXECUTOR: u32 = u32::MAX;

/// A node the runtime adds by itself (collect, tuple, index, arithmetic).
pub(crate) struct InternalOp {
    pub name: &'static str,
    /// Tells apart ops that share a name and inputs (the index of a tuple field).
    pub tag: u32,
    /// Hidden from task counts (parameters, collections, indexing).
    pub internal: bool,
    pub run: fn(&mut Args) -> Result<Output, TaskError>,
}

pub(crate) enum Op {
    /// A literal argument; its value is known at build time.
    Param(Option<Output>),
    Electron(&'static ElectronDef),
    Internal(&'static InternalOp),
}

impl Op {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Param(_) => ":parameter:",
            Op::Electron(d) => d.name,
            Op::Internal(o) => o.name,
        }
    }
    pub(crate) fn is_internal(&self) -> bool {
        match self {
            Op::Param(_) => true,
            Op::Electron(_) => false,
            Op::Internal(o) => o.internal,
        }
    }
}

pub(crate) struct NodeSpec {
    pub op: Op,
    /// Index into [`Graph::executors`], or [`NO_EXECUTOR`].
    pub executor: u32,
}

#[derive(Clone, Copy)]
struct Edge {
    src: u32,
    dst: u32,
    slot: u32,
}

/// A built transport graph: a dense arena of nodes with compressed input and dependant lists.
pub struct Graph {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) executors: Vec<ExecutorSel>,
    /// Input rows: `inputs[in_off[i]..in_off[i+1]]` are `(source, slot)` of node `i` in slot
    /// order, ordering edges last.
    pub(crate) in_off: Vec<u32>,
    pub(crate) inputs: Vec<(u32, u32)>,
    /// Dependant rows: `deps[out_off[i]..out_off[i+1]]`.
    pub(crate) out_off: Vec<u32>,
    pub(crate) deps: Vec<u32>,
    /// The node whose value is the lattice's result.
    pub(crate) output: u32,
    /// The lattice-level default executor.
    pub(crate) default_executor: Option<ExecutorSel>,
    pub(crate) name: String,
    /// The registered name of the `#[lattice]` function that built it (`""` for sublattices
    /// and hand-built graphs): how another process rebuilds it.
    pub(crate) path: &'static str,
    pub(crate) inputs_json: Vec<(String, serde_json::Value)>,
    /// Lattice inputs with no faithful JSON form (name, why): a recorded dispatch refuses them.
    pub(crate) input_errors: Vec<(String, String)>,
    pub(crate) fail_fast: bool,
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graph")
            .field("name", &self.name)
            .field("nodes", &self.nodes.len())
            .field("edges", &self.inputs.len())
            .finish()
    }
}

impl Graph {
    /// Wraps the graph for the trip through a sublattice's body ([`SubGraph`]).
    pub(crate) fn into_sub(self) -> SubGraph {
        SubGraph(Box::new(self))
    }

    /// The graph a sublattice's body built.
    pub(crate) fn from_sub(sub: SubGraph) -> Graph {
        *sub.0
            .downcast::<Graph>()
            .expect("a sublattice's body builds its graph through `__private::sublattice`")
    }

    /// Number of nodes, internal ones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// Number of task nodes (internal parameter/collection nodes excluded).
    pub fn task_count(&self) -> usize {
        self.nodes.iter().filter(|n| !n.op.is_internal()).count()
    }
    pub(crate) fn inputs_of(&self, i: usize) -> &[(u32, u32)] {
        &self.inputs[self.in_off[i] as usize..self.in_off[i + 1] as usize]
    }
    pub(crate) fn deps_of(&self, i: usize) -> &[u32] {
        &self.deps[self.out_off[i] as usize..self.out_off[i + 1] as usize]
    }
    /// Edge label of input `slot` of node `i`.
    pub(crate) fn edge_name(&self, i: usize, slot: u32) -> String {
        if slot == WAIT_SLOT {
            return "!waiting_edge".into();
        }
        match &self.nodes[i].op {
            Op::Electron(d) => d
                .params
                .get(slot as usize)
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("arg{slot}")),
            _ => format!("[{slot}]"),
        }
    }
}

static GRAPH_SERIAL: AtomicU32 = AtomicU32::new(1);

/// The graph under construction (installed by `#[lattice]` while its body runs).
#[doc(hidden)]
pub struct Builder {
    pub(super) serial: u32,
    nodes: Vec<NodeSpec>,
    edges: Vec<Edge>,
    executors: Vec<ExecutorSel>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            serial: GRAPH_SERIAL.fetch_add(1, Ordering::Relaxed),
            nodes: Vec::new(),
            edges: Vec::new(),
            executors: Vec::new(),
        }
    }

    pub(crate) fn serial(&self) -> u32 {
        self.serial
    }

    pub(super) fn check(&self, graph: u32) {
        if graph != self.serial {
            panic!(
                "a Node from another lattice was used here: nodes belong to the lattice body that created them"
            );
        }
    }

    pub(crate) fn push(&mut self, op: Op, executor: u32) -> u32 {
        let id = self.nodes.len() as u32;
        self.nodes.push(NodeSpec { op, executor });
        id
    }

    pub(crate) fn param(&mut self, v: Output) -> u32 {
        self.push(Op::Param(Some(v)), NO_EXECUTOR)
    }

    pub(crate) fn edge(&mut self, src: u32, dst: u32, slot: u32, graph: u32) {
        self.check(graph);
        self.edges.push(Edge { src, dst, slot });
    }

    pub(crate) fn executor_index(&mut self, sel: ExecutorSel) -> u32 {
        if let Some(i) = self.executors.iter().position(|e| e.same(&sel)) {
            return i as u32;
        }
        self.executors.push(sel);
        (self.executors.len() - 1) as u32
    }

    /// Freezes the arena into compressed rows.
    pub(crate) fn finish(self, output: u32) -> Graph {
        let n = self.nodes.len();
        // Inputs: stable counting sort by destination keeps slot order; ordering edges go last.
        let mut in_off = vec![0u32; n + 1];
        let mut out_off = vec![0u32; n + 1];
        for e in &self.edges {
            in_off[e.dst as usize + 1] += 1;
            out_off[e.src as usize + 1] += 1;
        }
        for i in 0..n {
            in_off[i + 1] += in_off[i];
            out_off[i + 1] += out_off[i];
        }
        let mut inputs = vec![(0u32, 0u32); self.edges.len()];
        let mut deps = vec![0u32; self.edges.len()];
        let mut in_fill = in_off.clone();
        let mut out_fill = out_off.clone();
        for e in self.edges.iter().filter(|e| e.slot != WAIT_SLOT) {
            inputs[in_fill[e.dst as usize] as usize] = (e.src, e.slot);
            in_fill[e.dst as usize] += 1;
        }
        for e in &self.edges {
            if e.slot == WAIT_SLOT {
                inputs[in_fill[e.dst as usize] as usize] = (e.src, e.slot);
                in_fill[e.dst as usize] += 1;
            }
            deps[out_fill[e.src as usize] as usize] = e.dst;
            out_fill[e.src as usize] += 1;
        }
        Graph {
            nodes: self.nodes,
            executors: self.executors,
            in_off,
            inputs,
            out_off,
            deps,
            output,
            default_executor: None,
            name: String::new(),
            path: "",
            inputs_json: Vec::new(),
            input_errors: Vec::new(),
            fail_fast: false,
        }
    }
}

thread_local! {
    static BUILDERS: RefCell<Vec<Builder>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the builder of the lattice body being built on this thread.
///
/// # Panics
/// Outside a lattice body, with a message that names `what`.
pub(crate) fn with_builder<R>(what: &str, f: impl FnOnce(&mut Builder) -> R) -> R {
    BUILDERS.with(|s| {
        let mut s = s.borrow_mut();
        match s.last_mut() {
            Some(b) => f(b),
            None => {
                drop(s);
                panic!(
                    "{what} was used outside a #[lattice] body: electrons called in a lattice add nodes to its graph. \
                     To run an electron as plain Rust, call `NAME::call(..)`"
                )
            }
        }
    })
}

/// Runs a lattice body with a fresh builder installed; returns the finished arena.
pub(crate) fn build(body: impl FnOnce() -> u32) -> Graph {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            BUILDERS.with(|s| {
                s.borrow_mut().pop();
            });
        }
    }
    BUILDERS.with(|s| s.borrow_mut().push(Builder::new()));
    let guard = Pop;
    let output = body();
    let b = BUILDERS
        .with(|s| s.borrow_mut().pop())
        .expect("builder stack");
    std::mem::forget(guard);
    b.finish(output)
}
