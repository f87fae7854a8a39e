//! Reading a dispatch back: its row, its graph, its node log (folded into the last state of
//! each node) and its sublattices, assembled into a [`DispatchRecord`]; a dispatch whose
//! process died reads as INTERRUPTED.
//!
//! This module owns the read path of records; writing is the journal's.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;
use uuid::Uuid;

use super::encode::{self, GraphRec};
use super::values::Stored;
use super::{Store, StoreError, from_micros};
use crate::record::{AttemptRecord, DispatchRecord, NodeRecord, SublatticeRecord, ValueFile};
use crate::status::Status;

impl Store {
    /// The record of a dispatch.
    pub fn get(&self, id: Uuid) -> Result<DispatchRecord, StoreError> {
        self.read(id, true)
    }

    /// The record of a dispatch without its nodes (`nodes` is empty): its status, inputs,
    /// result (or the file holding it) and error, read from its row alone, so it costs the same
    /// for a dispatch of two nodes and of a million. [`Store::summary`] has its task counts.
    pub fn get_without_nodes(&self, id: Uuid) -> Result<DispatchRecord, StoreError> {
        self.read(id, false)
    }

    fn read(&self, id: Uuid, with_nodes: bool) -> Result<DispatchRecord, StoreError> {
        self.sweep_interrupted()?;
        let key = id.to_string();
        type Row = (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = self.with(|c| {
            c.query_row(
                "SELECT d.lattice, d.status, d.inputs, d.output, d.error, d.created_at, d.ended_at,
                        CASE WHEN ?2 THEN coalesce(d.graph, g.graph) END, d.results_dir,
                        d.output_file, d.input_files
                 FROM dispatches d LEFT JOIN graphs g ON ?2 AND g.dispatch_id = d.id
                 WHERE d.id = ?1",
                rusqlite::params![&key, with_nodes],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((
            lattice,
            status,
            inputs,
            output,
            error,
            created,
            ended,
            graph,
            results_dir,
            output_file,
            input_files,
        )) = row
        else {
            return Err(StoreError::UnknownDispatch {
                id: key,
                path: self.path.clone(),
            });
        };
        let status: Status = status.parse().unwrap_or(Status::Running);
        let graph: GraphRec = graph
            .and_then(|g| serde_json::from_str(&g).ok())
            .unwrap_or_default();
        let results_dir = results_dir.map(PathBuf::from);
        let results = results_dir.as_deref();
        let nodes = if with_nodes {
            let rows = self.node_rows(&key)?;
            let subs = self.sublattice_rows(&key)?;
            // An interrupted dispatch's unfinished nodes end when it did (its last sign of
            // life).
            let interrupted = (status == Status::Interrupted).then(|| ended.unwrap_or(created));
            assemble(&graph, None, "", &rows, &subs, interrupted, results)
        } else {
            Vec::new()
        };
        Ok(DispatchRecord {
            id,
            lattice,
            status,
            inputs: serde_json::from_str(&inputs).unwrap_or_default(),
            input_files: input_files_of(input_files.as_deref(), results),
            output: output.and_then(|o| serde_json::from_str(&o).ok()),
            output_file: value_file(output_file.as_deref(), results),
            error,
            start_time: Some(from_micros(created)),
            end_time: ended.map(from_micros),
            results_dir,
            nodes,
        })
    }

    /// The latest logged state of every node of a dispatch, by `(path, node id)`.
    pub(crate) fn node_rows(
        &self,
        id: &str,
    ) -> Result<HashMap<(String, usize), NodeRow>, StoreError> {
        self.node_rows_where(id, None)
    }

    /// The latest logged state of the nodes `keep(path, node id)` selects (every node without
    /// it). Entries of other nodes are skipped unparsed (read as far as their id), one batch in
    /// memory at a time.
    fn node_rows_where(
        &self,
        id: &str,
        keep: Option<&Keep<'_>>,
    ) -> Result<HashMap<(String, usize), NodeRow>, StoreError> {
        // The batch written with the row (a dispatch recorded in one commit) comes first: a
        // resume may have logged more after it.
        let damaged = |e: serde_json::Error| {
            rusqlite::Error::ToSqlConversionFailure(
                format!("the node log of dispatch {id} is damaged: {e}").into(),
            )
        };
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT '', nodes FROM dispatches WHERE id = ?1 AND nodes IS NOT NULL
                 UNION ALL
                 SELECT * FROM (SELECT path, entries FROM node_log WHERE dispatch_id = ?1
                                ORDER BY seq)",
            )?;
            let mut rows = st.query([id])?;
            let mut out = HashMap::new();
            while let Some(r) = rows.next()? {
                let path: String = r.get(0)?;
                let entries: &str = r.get_ref(1)?.as_str()?;
                let Some(keep) = keep else {
                    // Every node: parsed in one pass.
                    let all: Vec<serde_json::Value> =
                        serde_json::from_str(entries).map_err(damaged)?;
                    for row in all.into_iter().filter_map(NodeRow::parse) {
                        out.insert((path.clone(), row.n), row);
                    }
                    continue;
                };
                // Split, not parsed, as far as each entry's id: only the kept ones are parsed.
                let mut kept = Vec::new();
                json_elements(entries, |e| {
                    if let Some(n) = leading_ints(e).0
                        && keep(&path, n as usize)
                    {
                        kept.push(e);
                    }
                })
                .ok_or_else(|| {
                    rusqlite::Error::ToSqlConversionFailure(
                        format!("the node log of dispatch {id} is damaged: not a JSON array")
                            .into(),
                    )
                })?;
                for e in kept {
                    let v: serde_json::Value = serde_json::from_str(e).map_err(damaged)?;
                    if let Some(row) = NodeRow::parse(v) {
                        out.insert((path.clone(), row.n), row);
                    }
                }
            }
            Ok(out)
        })
    }

    /// One page of a dispatch's top-level nodes: the record with `nodes` holding the
    /// `offset`-th to the `offset + limit`-th of them (internal nodes counted and shown only
    /// with `internal`), sublattices under them whole, and how many nodes there are to page
    /// through. The graph is scanned, not built, and only the page's entries of the node log
    /// are parsed: a page of a million-node dispatch costs a fraction of its whole record.
    pub fn get_page(
        &self,
        id: Uuid,
        offset: usize,
        limit: usize,
        internal: bool,
    ) -> Result<(DispatchRecord, usize), StoreError> {
        let mut matching = 0;
        let record = self.read_selected(id, &mut |_, raw| {
            let kind = leading_ints(raw).1.unwrap_or(0) as u8;
            if !internal && matches!(kind, encode::PARAMETER | encode::INTERNAL) {
                return false;
            }
            let hit = matching >= offset && matching - offset < limit;
            matching += 1;
            hit
        })?;
        Ok((record, matching))
    }

    /// The record of a dispatch with `nodes` holding only the top-level nodes `ids` names
    /// (in id order; ids the graph does not have are left out), sublattices under them whole.
    /// Read as [`Store::get_page`] reads a page: the graph scanned, only these nodes' entries
    /// of the node log parsed.
    pub fn get_nodes(&self, id: Uuid, ids: &[usize]) -> Result<DispatchRecord, StoreError> {
        let want: HashSet<usize> = ids.iter().copied().collect();
        self.read_selected(id, &mut |i, _| want.contains(&i))
    }

    /// The record of a dispatch with the top-level nodes `keep(index, node text)` selects,
    /// called for every node of the stored graph in id order.
    fn read_selected(
        &self,
        id: Uuid,
        keep: &mut dyn FnMut(usize, &str) -> bool,
    ) -> Result<DispatchRecord, StoreError> {
        let mut record = self.read(id, false)?;
        let key = id.to_string();
        let page = self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT coalesce(d.graph, g.graph) FROM dispatches d
                 LEFT JOIN graphs g ON g.dispatch_id = d.id WHERE d.id = ?1",
            )?;
            let mut rows = st.query([&key])?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let Ok(text) = r.get_ref(0)?.as_str() else {
                return Ok(None);
            };
            Ok(graph_select(text, keep))
        })?;
        let Some((graph, ids)) = page else {
            return Ok(record);
        };
        let wanted: HashSet<usize> = ids.iter().copied().collect();
        let under_page = |path: &str| {
            path.split('/')
                .next()
                .and_then(|p| p.parse::<usize>().ok())
                .is_some_and(|n| wanted.contains(&n))
        };
        let keep = |path: &str, n: usize| {
            if path.is_empty() {
                wanted.contains(&n)
            } else {
                under_page(path)
            }
        };
        let rows = self.node_rows_where(&key, Some(&keep))?;
        let mut subs = self.sublattice_rows(&key)?;
        subs.retain(|path, _| under_page(path));
        let interrupted = (record.status == Status::Interrupted).then(|| {
            record
                .end_time
                .or(record.start_time)
                .map_or(0, |t| t.timestamp_micros())
        });
        let results = record.results_dir.clone();
        record.nodes = assemble(
            &graph,
            Some(&ids),
            "",
            &rows,
            &subs,
            interrupted,
            results.as_deref(),
        );
        Ok(record)
    }

    fn sublattice_rows(
        &self,
        id: &str,
    ) -> Result<HashMap<String, (String, String, GraphRec)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT path, lattice, status, graph FROM sublattices WHERE dispatch_id = ?1",
            )?;
            let rows = st.query_map([id], |r| {
                let graph: Option<String> = r.get(3)?;
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        graph
                            .and_then(|g| serde_json::from_str(&g).ok())
                            .unwrap_or_default(),
                    ),
                ))
            })?;
            rows.collect()
        })
    }
}

/// The file a stored reference (`values::Stored` as JSON) names, in the dispatch's results dir.
pub(super) fn value_file(reference: Option<&str>, results: Option<&Path>) -> Option<ValueFile> {
    let stored: Stored = serde_json::from_str(reference?).ok()?;
    Some(stored.file(results?))
}

/// The files of a dispatch's inputs kept out of its row (`dispatches.input_files`).
pub(super) fn input_files_of(
    references: Option<&str>,
    results: Option<&Path>,
) -> Vec<(String, ValueFile)> {
    let (Some(text), Some(results)) = (references, results) else {
        return Vec::new();
    };
    serde_json::from_str::<Vec<(String, Stored)>>(text)
        .map(|v| v.into_iter().map(|(k, s)| (k, s.file(results))).collect())
        .unwrap_or_default()
}

/// Which node-log entries to read: `(path, node id) -> keep?`.
type Keep<'a> = dyn Fn(&str, usize) -> bool + 'a;

/// One entry of the node log: `[id, status, start, end, output, {extras}]`, times in µs from
/// the run's start (`GraphRec::t0`), extras (`e` error, `out`/`err` streams, `t` attempts,
/// `j` job handle, `x` executor) only when present.
#[derive(Default)]
pub(crate) struct NodeRow {
    pub(super) n: usize,
    pub(super) s: Status,
    pub(super) a: Option<i64>,
    pub(super) b: Option<i64>,
    pub(super) o: Option<serde_json::Value>,
    e: Option<String>,
    /// The error's kind (absent in stores written before kinds were recorded).
    pub(super) k: Option<crate::error::ErrorKind>,
    out: String,
    err: String,
    t: Option<Vec<AttemptRecord>>,
    /// File transfers.
    f: Option<Vec<crate::files::TransferRecord>>,
    pub(super) j: Option<serde_json::Value>,
    /// The file holding the output (then `o` is empty).
    pub(super) of: Option<Stored>,
    pub(super) x: Option<String>,
    /// The options of the executor that ran it (written with a job handle).
    pub(super) xo: Option<serde_json::Value>,
}

impl NodeRow {
    fn parse(v: serde_json::Value) -> Option<NodeRow> {
        let serde_json::Value::Array(mut a) = v else {
            return None;
        };
        a.resize(6, serde_json::Value::Null);
        let extras = a[5].take();
        let text = |k: &str| extras.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Some(NodeRow {
            n: a[0].as_u64()? as usize,
            s: Status::from_u8(a[1].as_u64()? as u8),
            a: a[2].as_i64(),
            b: a[3].as_i64(),
            o: Some(a[4].take()).filter(|v| !v.is_null()),
            e: text("e"),
            k: text("k").and_then(|k| crate::error::ErrorKind::parse(&k)),
            out: text("out").unwrap_or_default(),
            err: text("err").unwrap_or_default(),
            t: extras
                .get("t")
                .and_then(|t| serde_json::from_value(t.clone()).ok()),
            f: extras
                .get("f")
                .and_then(|f| serde_json::from_value(f.clone()).ok()),
            j: extras.get("j").cloned(),
            of: extras
                .get("of")
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
            x: text("x"),
            xo: extras.get("xo").cloned(),
        })
    }
}

/// Builds node records from a stored graph and its node rows (nodes without a row have not
/// started; parameters carry their value). With `ids`, `graph.nodes` holds only those nodes
/// (a page): the `k`-th is node `ids[k]`.
fn assemble(
    graph: &GraphRec,
    ids: Option<&[usize]>,
    path: &str,
    rows: &HashMap<(String, usize), NodeRow>,
    subs: &HashMap<String, (String, String, GraphRec)>,
    interrupted: Option<i64>,
    results: Option<&Path>,
) -> Vec<NodeRecord> {
    (0..graph.nodes.len())
        .map(|k| {
            let i = ids.map_or(k, |ids| ids[k]);
            let spec = &graph.nodes[k];
            let inputs = spec
                .4
                .iter()
                .map(|&(src, slot)| (src as usize, graph.edge_name(k, slot)))
                .collect();
            let sub_path = if path.is_empty() {
                i.to_string()
            } else {
                format!("{path}/{i}")
            };
            let sublattice = subs
                .get(&sub_path)
                .map(|(lattice, status, g)| SublatticeRecord {
                    lattice: lattice.clone(),
                    status: status.parse().unwrap_or(Status::Running),
                    nodes: assemble(g, None, &sub_path, rows, subs, interrupted, results),
                });
            let mut rec = NodeRecord {
                id: i,
                name: graph.name(k).to_string(),
                internal: graph.internal(k),
                status: Status::New,
                executor: graph.executor(k).map(str::to_string),
                inputs,
                output: None,
                output_file: None,
                error: None,
                error_kind: None,
                stdout: String::new(),
                stderr: String::new(),
                attempts: Vec::new(),
                transfers: Vec::new(),
                start_time: None,
                end_time: None,
                job_handle: None,
                executor_options: None,
                sublattice,
            };
            if spec.1 == encode::PARAMETER {
                rec.status = Status::Completed;
                rec.output = spec
                    .5
                    .as_ref()
                    .and_then(|v| serde_json::from_str(v.get()).ok());
                rec.output_file = spec.7.as_ref().zip(results).map(|(s, r)| s.file(r));
            }
            if let Some(row) = rows.get(&(path.to_string(), i)) {
                let cut = match row.s {
                    Status::Running | Status::Pending => interrupted,
                    _ => None,
                };
                rec.status = if cut.is_some() {
                    Status::Interrupted
                } else {
                    row.s
                };
                rec.executor = row.x.clone().or(rec.executor);
                rec.start_time = row.a.map(|t| from_micros(graph.t0 + t));
                rec.end_time = row.b.map(|t| from_micros(graph.t0 + t)).or_else(|| {
                    cut.zip(rec.start_time)
                        .map(|(at, start)| from_micros(at).max(start))
                });
                rec.output = row.o.clone();
                rec.output_file = row.of.as_ref().zip(results).map(|(s, r)| s.file(r));
                rec.error = row.e.clone();
                rec.error_kind = row.k;
                rec.stdout = row.out.clone();
                rec.stderr = row.err.clone();
                rec.job_handle = row.j.clone();
                rec.executor_options = row.xo.clone();
                rec.transfers = row.f.clone().unwrap_or_default();
                rec.attempts =
                    row.t
                        .clone()
                        .unwrap_or_else(|| match (rec.start_time, rec.end_time) {
                            (Some(s), Some(e)) if rec.status != Status::Reused => {
                                vec![AttemptRecord {
                                    number: 1,
                                    start_time: s,
                                    end_time: e,
                                    error: rec.error.clone(),
                                    error_kind: rec.error_kind,
                                }]
                            }
                            _ => Vec::new(),
                        });
            }
            rec
        })
        .collect()
}

/// A stored graph's text, its tables parsed and its nodes only split (each node's JSON text).
pub(super) struct Scan<'a> {
    pub(super) t0: i64,
    pub(super) names: Vec<String>,
    pub(super) electrons: Vec<encode::ElectronRec>,
    pub(super) executors: Vec<String>,
    pub(super) nodes: Vec<&'a str>,
}

impl<'a> Scan<'a> {
    /// Splits a stored graph (`GraphRec` as JSON); `None` if the text is not one.
    pub(super) fn read(text: &'a str) -> Option<Scan<'a>> {
        let (mut t0, mut names, mut electrons, mut executors, mut nodes) =
            (0, None, None, None, None);
        json_fields(text, |key, rest| {
            if key == "nodes" {
                // Split in the same pass that finds the end of the list.
                let mut list = Vec::new();
                let len = json_elements(rest, |n| list.push(n))?;
                nodes = Some(list);
                return Some(len);
            }
            let len = json_value_len(rest)?;
            let value = &rest[..len];
            let parsed = match key {
                "t0" => serde_json::from_str(value).map(|v| t0 = v).is_ok(),
                "names" => serde_json::from_str(value).map(|v| names = Some(v)).is_ok(),
                "electrons" => serde_json::from_str(value)
                    .map(|v| electrons = Some(v))
                    .is_ok(),
                "executors" => serde_json::from_str(value)
                    .map(|v| executors = Some(v))
                    .is_ok(),
                _ => true,
            };
            parsed.then_some(len)
        })?;
        Some(Scan {
            t0,
            names: names?,
            electrons: electrons?,
            executors: executors?,
            nodes: nodes?,
        })
    }
}

/// Calls `each(key, text from the value on)` for every field of the JSON object `text`; `each`
/// returns the length of the value (see [`json_value_len`]), `None` to stop. `None` if `text`
/// is not an object or `each` stopped.
pub(super) fn json_fields<'a>(
    text: &'a str,
    mut each: impl FnMut(&str, &'a str) -> Option<usize>,
) -> Option<()> {
    let b = text.as_bytes();
    let mut at = skip_ws(b, 0);
    if b.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_ws(b, at + 1);
    if b.get(at) == Some(&b'}') {
        return Some(());
    }
    loop {
        let end = skip_string(b, at)?;
        let key = &text[at + 1..end - 1];
        at = skip_ws(b, end);
        if b.get(at) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, at + 1);
        let end = start + each(key, &text[start..])?;
        at = skip_ws(b, end);
        match b.get(at) {
            Some(b',') => at = skip_ws(b, at + 1),
            Some(b'}') => return Some(()),
            _ => return None,
        }
    }
}

/// Calls `each(element text)` for every element of the JSON array at the start of `text`
/// (split, not parsed: strings and brackets are followed, nothing is checked further) and
/// returns the array's length in bytes; `None` if `text` does not start with an array.
pub(super) fn json_elements<'a>(text: &'a str, mut each: impl FnMut(&'a str)) -> Option<usize> {
    let b = text.as_bytes();
    let mut at = skip_ws(b, 0);
    if b.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_ws(b, at + 1);
    if b.get(at) == Some(&b']') {
        return Some(at + 1);
    }
    loop {
        let end = skip_value(b, at)?;
        each(&text[at..end]);
        at = skip_ws(b, end);
        match b.get(at) {
            Some(b',') => at = skip_ws(b, at + 1),
            Some(b']') => return Some(at + 1),
            _ => return None,
        }
    }
}

/// The length in bytes of the JSON value at the start of `text` (strings and brackets
/// followed, nothing checked further); `None` if there is none.
pub(super) fn json_value_len(text: &str) -> Option<usize> {
    skip_value(text.as_bytes(), 0)
}

fn skip_ws(b: &[u8], mut at: usize) -> usize {
    while at < b.len() && b[at].is_ascii_whitespace() {
        at += 1;
    }
    at
}

/// The end of the JSON string starting at `at` (just past its closing quote).
fn skip_string(b: &[u8], at: usize) -> Option<usize> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end of the JSON value starting at `at` (just past it).
fn skip_value(b: &[u8], at: usize) -> Option<usize> {
    match *b.get(at)? {
        b'"' => skip_string(b, at),
        b'[' | b'{' => {
            let mut depth = 0usize;
            let mut i = at;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut i = at;
            while i < b.len() && !matches!(b[i], b',' | b']' | b'}') && !b[i].is_ascii_whitespace()
            {
                i += 1;
            }
            (i > at).then_some(i)
        }
    }
}

/// The graph of a stored dispatch with only the nodes `keep(index, node text)` selects parsed:
/// the names, electrons and executors it refers to, the selected nodes (see [`assemble`]'s
/// `ids`) and their ids. `None` if the text is not a graph.
fn graph_select(
    text: &str,
    keep: &mut dyn FnMut(usize, &str) -> bool,
) -> Option<(GraphRec, Vec<usize>)> {
    let scan = Scan::read(text)?;
    let mut page = Vec::new();
    let mut ids = Vec::new();
    for (i, raw) in scan.nodes.iter().enumerate() {
        if keep(i, raw) {
            page.push(serde_json::from_str::<encode::NodeRec>(raw).ok()?);
            ids.push(i);
        }
    }
    let graph = GraphRec {
        t0: scan.t0,
        names: scan.names,
        electrons: scan.electrons,
        executors: scan.executors,
        nodes: page,
    };
    Some((graph, ids))
}

/// The first two integers of a JSON array's text (`[12,1,...` gives 12 and 1): a node's id and
/// status in a log entry, its name and kind in a stored graph.
pub(super) fn leading_ints(raw: &str) -> (Option<u64>, Option<u64>) {
    let b = raw.as_bytes();
    let mut at = b.iter().position(|&c| c == b'[').map_or(b.len(), |p| p + 1);
    let mut int = || {
        while at < b.len() && b[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        let mut v: u64 = 0;
        while at < b.len() && b[at].is_ascii_digit() {
            v = v.checked_mul(10)?.checked_add(u64::from(b[at] - b'0'))?;
            at += 1;
        }
        while at < b.len() && b[at].is_ascii_whitespace() {
            at += 1;
        }
        let ok = at > start && at < b.len() && matches!(b[at], b',' | b']');
        at += 1;
        ok.then_some(v)
    };
    let first = int();
    (first, first.and_then(|_| int()))
}

#[cfg(test)]
mod tests {
    use super::{json_elements, json_fields, json_value_len, leading_ints};

    #[test]
    fn json_is_split_into_fields_and_elements_following_strings_and_brackets() {
        let text = r#" { "a" : [1, "x]\"y", {"b": [2]}] , "c":-3.5e2,"d":"}" } "#;
        let mut fields = Vec::new();
        let split = json_fields(text, |k, rest| {
            let len = json_value_len(rest)?;
            fields.push((k.to_string(), &rest[..len]));
            Some(len)
        });
        assert!(split.is_some());
        assert_eq!(
            fields,
            [
                ("a".to_string(), r#"[1, "x]\"y", {"b": [2]}]"#),
                ("c".to_string(), "-3.5e2"),
                ("d".to_string(), r#""}""#),
            ]
        );
        let mut elements = Vec::new();
        assert_eq!(
            json_elements(fields[0].1, |e| elements.push(e)),
            Some(fields[0].1.len())
        );
        assert_eq!(elements, ["1", r#""x]\"y""#, r#"{"b": [2]}"#]);
        assert_eq!(json_elements(" [ ] ,", |_| panic!("no element")), Some(4));
        assert!(json_elements("[1, [2", |_| {}).is_none());
        assert!(json_elements("{}", |_| {}).is_none());
        assert!(json_fields("[1]", |_, _| Some(1)).is_none());
    }

    #[test]
    fn leading_ints_reads_the_first_two_integers_of_an_array() {
        assert_eq!(leading_ints("[12,1,0,[]]"), (Some(12), Some(1)));
        assert_eq!(leading_ints(" [ 7 , 3 ]"), (Some(7), Some(3)));
        assert_eq!(leading_ints("[5]"), (Some(5), None));
        assert_eq!(leading_ints("[-1,2]"), (None, None));
        assert_eq!(leading_ints("[1.5,2]"), (None, None));
        assert_eq!(leading_ints("{}"), (None, None));
        assert_eq!(leading_ints("[99999999999999999999,1]"), (None, None));
    }
}
