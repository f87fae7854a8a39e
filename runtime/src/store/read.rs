//! Reading a dispatch back: its row, its graph, its node log (folded into the last state of
//! each node) and its sublattices, assembled into a [`DispatchRecord`]; a dispatch whose
//! process died reads as INTERRUPTED.
//!
//! This module owns the read path of records; writing is the journal's.

use std::collections::HashMap;
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
        );
        let row: Option<Row> = self.with(|c| {
            c.query_row(
                "SELECT d.lattice, d.status, d.inputs, d.output, d.error, d.created_at, d.ended_at,
                        CASE WHEN ?2 THEN coalesce(d.graph, g.graph) END, d.results_dir,
                        d.output_file
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
            assemble(&graph, "", &rows, &subs, interrupted, results)
        } else {
            Vec::new()
        };
        Ok(DispatchRecord {
            id,
            lattice,
            status,
            inputs: serde_json::from_str(&inputs).unwrap_or_default(),
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
        // The batch written with the row (a dispatch recorded in one commit) comes first: a
        // resume may have logged more after it.
        let batches: Vec<(String, String)> = self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT '', nodes FROM dispatches WHERE id = ?1 AND nodes IS NOT NULL
                 UNION ALL
                 SELECT * FROM (SELECT path, entries FROM node_log WHERE dispatch_id = ?1
                                ORDER BY seq)",
            )?;
            let rows = st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        let mut out = HashMap::new();
        for (path, entries) in batches {
            let entries: Vec<serde_json::Value> =
                serde_json::from_str(&entries).map_err(|e| StoreError::Sqlite {
                    path: self.path.clone(),
                    reason: format!("the node log of dispatch {id} is damaged: {e}"),
                })?;
            for e in entries.into_iter().filter_map(NodeRow::parse) {
                out.insert((path.clone(), e.n), e);
            }
        }
        Ok(out)
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
/// started; parameters carry their value).
fn assemble(
    graph: &GraphRec,
    path: &str,
    rows: &HashMap<(String, usize), NodeRow>,
    subs: &HashMap<String, (String, String, GraphRec)>,
    interrupted: Option<i64>,
    results: Option<&Path>,
) -> Vec<NodeRecord> {
    (0..graph.nodes.len())
        .map(|i| {
            let spec = &graph.nodes[i];
            let inputs = spec
                .4
                .iter()
                .map(|&(src, slot)| (src as usize, graph.edge_name(i, slot)))
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
                    nodes: assemble(g, &sub_path, rows, subs, interrupted, results),
                });
            let mut rec = NodeRecord {
                id: i,
                name: graph.name(i).to_string(),
                internal: graph.internal(i),
                status: Status::New,
                executor: graph.executor(i).map(str::to_string),
                inputs,
                output: None,
                output_file: None,
                error: None,
                error_kind: None,
                stdout: String::new(),
                stderr: String::new(),
                attempts: Vec::new(),
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
