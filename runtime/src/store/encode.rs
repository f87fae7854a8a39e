//! How a graph is kept in the store: a compact, columnar JSON form of the arena (names and
//! electrons interned, inputs as `(source, slot)` pairs, parameter values inline), and the node
//! fingerprints computed from it that decide reuse on redispatch.
//!
//! A node's fingerprint covers what determines its output: its electron (registration path and
//! a digest of its source), or the parameter's value, and the fingerprints of its inputs in
//! slot order. Equal fingerprints mean "same electron, same inputs, same upstream".

use serde::{Deserialize, Serialize};

use crate::dispatcher::Run;
use crate::electron::Body;
use crate::graph::{Graph, Op, WAIT_SLOT};

pub(crate) const PARAMETER: u8 = 0;
pub(crate) const ELECTRON: u8 = 1;
pub(crate) const SUBLATTICE: u8 = 2;
pub(crate) const INTERNAL: u8 = 3;
pub(crate) const OPERATOR: u8 = 4;

/// One interned electron: registration path, source digest, parameter names.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ElectronRec(pub String, pub String, pub Vec<String>);

/// One node: name index, kind, electron index (-1 if none), executor index (-1 if none),
/// inputs `(source, slot)`, parameter value, internal-op tag.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct NodeRec(
    pub u32,
    pub u8,
    pub i32,
    pub i32,
    pub Vec<(u32, u32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")] pub Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "is_zero")] pub u32,
);

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A graph as stored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct GraphRec {
    pub names: Vec<String>,
    pub electrons: Vec<ElectronRec>,
    pub executors: Vec<String>,
    pub nodes: Vec<NodeRec>,
}

struct Interner {
    list: Vec<String>,
    index: std::collections::HashMap<String, u32>,
}

impl Interner {
    fn new() -> Self {
        Interner {
            list: Vec::new(),
            index: Default::default(),
        }
    }
    fn get(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// Encodes a graph; `params` gives parameter values (a run has moved them out of the graph).
pub(crate) fn encode(
    graph: &Graph,
    param_value: impl Fn(usize) -> Option<serde_json::Value>,
    executor_of: impl Fn(usize) -> Option<String>,
) -> GraphRec {
    let mut names = Interner::new();
    let mut electrons: Vec<ElectronRec> = Vec::new();
    let mut electron_index: std::collections::HashMap<&'static str, i32> = Default::default();
    let mut executors = Interner::new();
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    for (i, spec) in graph.nodes.iter().enumerate() {
        let name = names.get(spec.op.name());
        let (kind, electron, tag) = match &spec.op {
            Op::Param(_) => (PARAMETER, -1, 0),
            Op::Electron(d) => {
                let e = *electron_index.entry(d.path).or_insert_with(|| {
                    electrons.push(ElectronRec(
                        d.path.to_string(),
                        d.digest.to_string(),
                        d.params.iter().map(|s| s.to_string()).collect(),
                    ));
                    (electrons.len() - 1) as i32
                });
                let kind = if matches!(d.body, Body::Sublattice(_)) {
                    SUBLATTICE
                } else {
                    ELECTRON
                };
                (kind, e, 0)
            }
            Op::Internal(o) => (if o.internal { INTERNAL } else { OPERATOR }, -1, o.tag),
        };
        let executor = match &spec.op {
            Op::Electron(_) => executor_of(i)
                .map(|e| executors.get(&e) as i32)
                .unwrap_or(-1),
            _ => -1,
        };
        let value = match &spec.op {
            Op::Param(_) => param_value(i),
            _ => None,
        };
        nodes.push(NodeRec(
            name,
            kind,
            electron,
            executor,
            graph.inputs_of(i).to_vec(),
            value,
            tag,
        ));
    }
    GraphRec {
        names: names.list,
        electrons,
        executors: executors.list,
        nodes,
    }
}

/// Encodes a run's graph (parameter values are in the run's states).
pub(crate) fn encode_run(run: &Run) -> GraphRec {
    encode(
        &run.graph,
        |i| {
            run.states[i]
                .value
                .get()
                .map(|v| v.to_json().unwrap_or_else(serde_json::Value::String))
        },
        |i| crate::result::NodeResult::new(run, i).executor(),
    )
}

impl GraphRec {
    /// Edge label of input `slot` of node `i`.
    pub(crate) fn edge_name(&self, i: usize, slot: u32) -> String {
        if slot == WAIT_SLOT {
            return "!waiting_edge".into();
        }
        let n = &self.nodes[i];
        if n.2 >= 0
            && let Some(p) = self.electrons[n.2 as usize].2.get(slot as usize)
        {
            return p.clone();
        }
        format!("[{slot}]")
    }

    /// Name of node `i`.
    pub(crate) fn name(&self, i: usize) -> &str {
        &self.names[self.nodes[i].0 as usize]
    }

    /// Executor of node `i`.
    pub(crate) fn executor(&self, i: usize) -> Option<&str> {
        let e = self.nodes[i].3;
        (e >= 0).then(|| self.executors[e as usize].as_str())
    }

    /// Whether node `i` is internal.
    pub(crate) fn internal(&self, i: usize) -> bool {
        matches!(self.nodes[i].1, PARAMETER | INTERNAL)
    }

    /// Fingerprints of every node (see the module docs).
    pub(crate) fn fingerprints(&self) -> Vec<[u8; 16]> {
        let n = self.nodes.len();
        let mut fp: Vec<Option<[u8; 16]>> = vec![None; n];
        let mut stack = Vec::new();
        for root in 0..n {
            if fp[root].is_some() {
                continue;
            }
            stack.push((root, false));
            while let Some((i, expanded)) = stack.pop() {
                if fp[i].is_some() {
                    continue;
                }
                let node = &self.nodes[i];
                if !expanded {
                    stack.push((i, true));
                    for &(src, _) in &node.4 {
                        if fp[src as usize].is_none() {
                            stack.push((src as usize, false));
                        }
                    }
                    continue;
                }
                let mut h = blake3::Hasher::new();
                h.update(&[node.1]);
                h.update(self.names[node.0 as usize].as_bytes());
                h.update(&node.6.to_le_bytes());
                if node.2 >= 0 {
                    let e = &self.electrons[node.2 as usize];
                    h.update(e.0.as_bytes());
                    h.update(b"#");
                    h.update(e.1.as_bytes());
                }
                if let Some(v) = &node.5 {
                    h.update(v.to_string().as_bytes());
                }
                for &(src, slot) in &node.4 {
                    h.update(&slot.to_le_bytes());
                    // A cycle cannot occur (graphs are built in call order), but never panic.
                    h.update(&fp[src as usize].unwrap_or([0; 16]));
                }
                let mut out = [0u8; 16];
                out.copy_from_slice(&h.finalize().as_bytes()[..16]);
                fp[i] = Some(out);
            }
        }
        fp.into_iter().map(|f| f.unwrap_or([0; 16])).collect()
    }
}
