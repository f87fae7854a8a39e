//! How a graph is kept in the store: a compact, columnar JSON form of the arena (names and
//! electrons interned, inputs as `(source, slot)` pairs, parameter values inline), and the node
//! fingerprints computed from it that decide reuse on redispatch.
//!
//! A node's fingerprint covers what determines its output: its electron (registration path and
//! a digest of its source), or the parameter's value, and the fingerprints of its inputs in
//! slot order. Equal fingerprints mean "same electron, same inputs, same upstream".

use serde::{Deserialize, Serialize};

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
/// inputs `(source, slot)`, parameter value (raw JSON), internal-op tag, and the reference of
/// a parameter value kept in a value file instead (its JSON is longer than
/// [`INLINE_LIMIT`](super::values::INLINE_LIMIT); the value field is then `null`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct NodeRec(
    pub u32,
    pub u8,
    pub i32,
    pub i32,
    pub Vec<(u32, u32)>,
    #[serde(default)] pub Option<Box<serde_json::value::RawValue>>,
    #[serde(default)] pub u32,
    #[serde(default, skip_serializing_if = "Option::is_none")] pub Option<super::values::Stored>,
);

/// A graph as stored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct GraphRec {
    /// When the run started (µs since the Unix epoch); node times in the log are offsets.
    #[serde(default)]
    pub t0: i64,
    pub names: Vec<String>,
    pub electrons: Vec<ElectronRec>,
    pub executors: Vec<String>,
    pub nodes: Vec<NodeRec>,
}

struct Interner {
    list: Vec<String>,
    index: std::collections::HashMap<String, u32>,
    /// The last `&'static str` looked up: consecutive nodes mostly share a name.
    last: Option<(*const u8, usize, u32)>,
}

impl Interner {
    fn new() -> Self {
        Interner {
            list: Vec::new(),
            index: Default::default(),
            last: None,
        }
    }
    fn get_static(&mut self, s: &'static str) -> u32 {
        if let Some((p, len, i)) = self.last
            && p == s.as_ptr()
            && len == s.len()
        {
            return i;
        }
        let i = self.get(s);
        self.last = Some((s.as_ptr(), s.len(), i));
        i
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

/// One node as [`walk`] sees it.
struct Parts<'a> {
    name: u32,
    kind: u8,
    electron: i32,
    executor: i32,
    inputs: &'a [(u32, u32)],
    value: Option<&'a crate::value::Output>,
    tag: u32,
}

/// The interned tables of a walked graph.
struct Tables {
    names: Vec<String>,
    electrons: Vec<ElectronRec>,
    executors: Vec<String>,
}

/// Visits every node in id order with its interned name, electron and executor.
fn walk<'g>(
    graph: &'g Graph,
    param_value: impl Fn(usize) -> Option<&'g crate::value::Output>,
    executor_of: impl Fn(u32) -> Option<String>,
    mut emit: impl FnMut(Parts<'_>),
) -> Tables {
    let mut names = Interner::new();
    let mut electrons: Vec<ElectronRec> = Vec::new();
    let mut electron_index: std::collections::HashMap<&'static str, i32> = Default::default();
    let mut executors = Interner::new();
    // Executor names are resolved once per executor slot, not per node.
    let mut slot_index: Vec<(u32, i32)> = Vec::new();
    for (i, spec) in graph.nodes.iter().enumerate() {
        let name = names.get_static(spec.op.name());
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
            Op::Electron(_) => match slot_index.iter().find(|(s, _)| *s == spec.executor) {
                Some(&(_, e)) => e,
                None => {
                    let e = executor_of(spec.executor)
                        .map(|e| executors.get(&e) as i32)
                        .unwrap_or(-1);
                    slot_index.push((spec.executor, e));
                    e
                }
            },
            _ => -1,
        };
        let value = match &spec.op {
            Op::Param(_) => param_value(i),
            _ => None,
        };
        emit(Parts {
            name,
            kind,
            electron,
            executor,
            inputs: graph.inputs_of(i),
            value,
            tag,
        });
    }
    Tables {
        names: names.list,
        electrons,
        executors: executors.list,
    }
}

/// Encodes a graph; `param_value` gives parameter values as JSON text (a run has moved them
/// out of the graph), `executor_of` the executor name of an executor slot.
pub(crate) fn encode<'g>(
    graph: &'g Graph,
    param_value: impl Fn(usize) -> Option<&'g crate::value::Output>,
    executor_of: impl Fn(u32) -> Option<String>,
) -> GraphRec {
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    let t = walk(graph, param_value, executor_of, |p| {
        nodes.push(NodeRec(
            p.name,
            p.kind,
            p.electron,
            p.executor,
            p.inputs.to_vec(),
            p.value
                .and_then(|v| serde_json::value::RawValue::from_string(v.to_json_string()).ok()),
            p.tag,
            None,
        ))
    });
    GraphRec {
        t0: 0,
        names: t.names,
        electrons: t.electrons,
        executors: t.executors,
        nodes,
    }
}

/// The JSON text of [`encode`]'s result, written directly (no intermediate records: this runs
/// for every recorded dispatch, on graphs of any size).
///
/// With `results` (a recorded run's results dir), a parameter value whose JSON is longer than
/// [`INLINE_LIMIT`](super::values::INLINE_LIMIT) goes to a value file of the dispatch and the
/// node carries its reference.
pub(crate) fn encode_json<'g>(
    graph: &'g Graph,
    t0: i64,
    param_value: impl Fn(usize) -> Option<&'g crate::value::Output>,
    executor_of: impl Fn(u32) -> Option<String>,
    results: Option<&std::path::Path>,
) -> String {
    let mut nodes: Vec<u8> = Vec::with_capacity(graph.nodes.len() * 24);
    let mut num = itoa::Buffer::new();
    let t = walk(graph, param_value, executor_of, |p| {
        let mut int = |out: &mut Vec<u8>, v: i64, sep: u8| {
            out.extend_from_slice(num.format(v).as_bytes());
            out.push(sep);
        };
        if !nodes.is_empty() {
            nodes.push(b',');
        }
        nodes.push(b'[');
        int(&mut nodes, p.name.into(), b',');
        int(&mut nodes, p.kind.into(), b',');
        int(&mut nodes, p.electron.into(), b',');
        int(&mut nodes, p.executor.into(), b',');
        nodes.push(b'[');
        for (k, (src, slot)) in p.inputs.iter().enumerate() {
            if k > 0 {
                nodes.push(b',');
            }
            nodes.push(b'[');
            int(&mut nodes, (*src).into(), b',');
            int(&mut nodes, (*slot).into(), b']');
        }
        nodes.extend_from_slice(b"],");
        let stored = match (p.value, results) {
            (Some(v), Some(r)) => super::values::write(v, &mut nodes, r),
            (Some(v), None) => {
                v.write_json(&mut nodes);
                None
            }
            (None, _) => {
                nodes.extend_from_slice(b"null");
                None
            }
        };
        if stored.is_some() {
            nodes.extend_from_slice(b"null");
        }
        nodes.push(b',');
        match stored {
            None => int(&mut nodes, p.tag.into(), b']'),
            Some(s) => {
                int(&mut nodes, p.tag.into(), b',');
                let _ = serde_json::to_writer(&mut nodes, &s);
                nodes.push(b']');
            }
        }
    });
    // The tables first, keys in the order a `serde_json::Value` map gives them (sorted), then
    // the nodes: written straight into one buffer (no `Value` tree for a graph's few tables).
    let mut out: Vec<u8> = Vec::with_capacity(nodes.len() + 64 * (t.names.len() + 4));
    let tables = (|| -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"electrons\":");
        serde_json::to_writer(&mut out, &t.electrons)?;
        out.extend_from_slice(b",\"executors\":");
        serde_json::to_writer(&mut out, &t.executors)?;
        out.extend_from_slice(b",\"names\":");
        serde_json::to_writer(&mut out, &t.names)?;
        out.extend_from_slice(b",\"t0\":");
        out.extend_from_slice(num.format(t0).as_bytes());
        Ok(())
    })();
    debug_assert!(tables.is_ok(), "strings and integers always serialize");
    out.extend_from_slice(b",\"nodes\":[");
    out.extend_from_slice(&nodes);
    out.extend_from_slice(b"]}");
    // Every piece is JSON written by serde_json or digits and punctuation: valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// For redispatch and resume: per node of `graph`, what an earlier dispatch left under the
/// same node fingerprint in `from` (an output to take instead of running the node, or the job
/// handle of an attempt to follow). Parameters take nothing.
pub(crate) fn by_fingerprint<V: Clone>(
    graph: &Graph,
    from: &std::collections::HashMap<[u8; 16], V>,
) -> Vec<Option<V>> {
    if from.is_empty() {
        return Vec::new();
    }
    let fps = encode(
        graph,
        |i| match &graph.nodes[i].op {
            Op::Param(Some(v)) => Some(v),
            _ => None,
        },
        |_| None,
    )
    .fingerprints();
    graph
        .nodes
        .iter()
        .zip(fps)
        .map(|(n, fp)| match &n.op {
            Op::Param(_) => None,
            _ => from.get(&fp).cloned(),
        })
        .collect()
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
                // A value is hashed by its JSON text, one too long for a row by the digest
                // of that text (which a value file is named by): the same fingerprint whether
                // the graph at hand holds the value or its file's reference.
                match (&node.5, &node.7) {
                    (Some(v), _) if v.get().len() > super::values::INLINE_LIMIT => {
                        h.update(b"#file");
                        h.update(blake3::hash(v.get().as_bytes()).to_hex().as_bytes());
                    }
                    (Some(v), _) => {
                        h.update(v.get().as_bytes());
                    }
                    (None, Some(file)) => {
                        h.update(b"#file");
                        h.update(file.h.as_bytes());
                    }
                    (None, None) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_json_reads_back_as_the_records() {
        let mut b = crate::graph::Builder::new();
        let p = b.param(crate::value::Output::new(vec![1u8, 2]));
        let q = b.param(crate::value::Output::new("x\"y".to_string()));
        let c = b.push(
            Op::Internal(&crate::graph::InternalOp {
                name: ":electron_list:",
                tag: 3,
                internal: true,
                run: |_| Err(crate::electron::TaskError::Failed("unused".into())),
            }),
            crate::graph::NO_EXECUTOR,
        );
        let serial = b.serial();
        b.edge(p, c, 0, serial);
        b.edge(q, c, 1, serial);
        b.edge(p, c, WAIT_SLOT, serial);
        let g = b.finish(c);
        let value = |i: usize| match &g.nodes[i].op {
            Op::Param(Some(v)) => Some(v),
            _ => None,
        };
        let direct: GraphRec =
            serde_json::from_str(&encode_json(&g, 42, value, |_| None, None)).unwrap();
        let records = encode(&g, value, |_| None);
        assert_eq!(direct.t0, 42);
        assert_eq!(
            serde_json::to_value(&direct.nodes).unwrap(),
            serde_json::to_value(&records.nodes).unwrap()
        );
        assert_eq!(direct.names, records.names);
        assert_eq!(direct.edge_name(2, 1), "[1]");
        assert_eq!(direct.edge_name(2, WAIT_SLOT), "!waiting_edge");
        assert_eq!(direct.fingerprints(), records.fingerprints());
    }
}
