//! What one batch of the journal writes for one run: its graph (once), the nodes whose status
//! changed since the last batch (all remaining ones once the run has ended), and the final
//! dispatch or sublattice row.
//!
//! A node's entry in the log is `[id, status, start, end, output, {extras}]` (see `NodeRow` in
//! `store/mod.rs`). This module owns the entries' encoding and the per-run bookkeeping of what
//! is written; the writer thread and its schedule are `journal.rs`'s.

use std::time::SystemTime;

use rusqlite::{Transaction, params};

use super::encode::encode_json;
use super::values::{self, Stored};
use crate::dispatcher::{NodeExtra, Run};
use crate::graph::Op;
use crate::result::NodeResult;
use crate::status::Status;
use crate::time::micros;

/// `Rows::written` of a node not logged yet.
const UNWRITTEN: u8 = u8::MAX;

/// Where a run is recorded: its dispatch and, for a sublattice, its path under it.
pub(super) struct Key<'a> {
    pub(super) dispatch_id: &'a str,
    /// `""` for the dispatch's own graph, `"3"` for the sublattice of node 3, `"3/1"` deeper.
    pub(super) path: &'a str,
}

/// What has been written of one run.
pub(super) struct Rows {
    graph_written: bool,
    /// Status last written for each node (`UNWRITTEN` if none).
    written: Vec<u8>,
    /// Every node before this one has its terminal state written.
    low: usize,
    /// Next `node_log` sequence number.
    seq: i64,
    /// Tasks written as COMPLETED or REUSED (internal nodes excluded).
    done_tasks: i64,
}

impl Rows {
    /// Nothing written yet of a run of `n` nodes.
    pub(super) fn new(n: usize) -> Self {
        Rows {
            graph_written: false,
            written: vec![UNWRITTEN; n],
            low: 0,
            seq: 0,
            done_tasks: 0,
        }
    }
}

/// Writes what changed of `run` since the last batch (`buf` is scratch space); returns whether
/// its final state is now written.
pub(super) fn write_run(
    tx: &Transaction<'_>,
    run: &Run,
    rows: &mut Rows,
    key: &Key<'_>,
    buf: &mut Vec<u8>,
    changed: &[u32],
) -> rusqlite::Result<bool> {
    // Read "done" before scanning: every node is final once it is set.
    let ended = run.is_done();
    if !rows.graph_written {
        write_graph(tx, run, key)?;
        rows.graph_written = true;
    }
    buf.clear();
    buf.push(b'[');
    scan(buf, run, rows, ended);
    // Running nodes whose details changed (a job handle set) are written again, so the store
    // has them while they run; nodes the scan just wrote already carry them.
    for &i in changed {
        let i = i as usize;
        let status = run.node(i).status();
        if status == Status::Running && rows.written[i] == Status::Running as u8 {
            entry(buf, run, rows, i, status);
        }
    }
    if buf.len() > 1 {
        buf.push(b']');
        let text = std::str::from_utf8(buf).unwrap_or("[]");
        tx.prepare_cached(
            "INSERT INTO node_log (dispatch_id, path, seq, entries) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![key.dispatch_id, key.path, rows.seq, text])?;
        rows.seq += 1;
        if key.path.is_empty() {
            // Each batch is a sign of life too: a dispatch whose process dies before its next
            // heartbeat ends (INTERRUPTED) at its last batch, not at its last heartbeat.
            tx.prepare_cached(
                "UPDATE dispatches SET done_count = ?1, heartbeat_at = ?2 WHERE id = ?3",
            )?
            .execute(params![
                rows.done_tasks,
                crate::time::micros(std::time::SystemTime::now()),
                key.dispatch_id
            ])?;
        }
    }
    if ended {
        write_final(tx, run, key)?;
    }
    Ok(ended)
}

/// The stored JSON of a run's graph (parameter values are in the run's states).
fn encode_run(run: &Run) -> String {
    encode_json(
        run.graph(),
        micros(run.started_wall()),
        |i| match run.graph().nodes[i].op {
            Op::Param(_) => run.node(i).value(),
            _ => None,
        },
        |slot| run.executor_name(slot),
        Some(run.results_dir()),
    )
}

impl super::Store {
    /// Writes an ended dispatch whole (its row, if not written yet, graph, nodes and final
    /// state) in one transaction on this store's connection.
    pub(crate) fn write_whole(
        &self,
        run: &Run,
        id: &str,
        row: Option<&super::NewDispatch>,
    ) -> Result<(), super::StoreError> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        (|| {
            let key = Key {
                dispatch_id: id,
                path: "",
            };
            let mut rows = Rows::new(run.nodes().len());
            let Some(row) = row else {
                // Its row is in already (a job handle made it findable early): the usual batch.
                return write_run(&tx, run, &mut rows, &key, &mut Vec::new(), &[]).map(|_| ());
            };
            // One row, in its final state, carrying the graph and the node log with it: a
            // commit that touches three B-tree pages (the row, its id, its time), where the
            // same dispatch written as a running one and then updated touched a dozen.
            let mut buf = vec![b'['];
            scan(&mut buf, run, &mut rows, true);
            buf.push(b']');
            let nodes = std::str::from_utf8(&buf).ok().filter(|t| *t != "[]");
            let (status, output, output_file, ended) = final_fields(run);
            row.insert_ended(
                &tx,
                &super::Ended {
                    status,
                    output,
                    output_file,
                    error: run.error(),
                    ended_at: ended,
                    done: rows.done_tasks,
                    graph: encode_run(run),
                    nodes,
                },
            )
        })()
        .map_err(|e: rusqlite::Error| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}

/// A top-level run's final status, output (JSON when it completed, or the reference of the
/// file holding it, see `values.rs`) and end (µs).
fn final_fields(run: &Run) -> (Status, Option<String>, Option<String>, i64) {
    let status = run.status();
    let (output, file) = match run.output() {
        Some(v) if status == Status::Completed => {
            let mut buf = Vec::new();
            match values::write_result(v, &mut buf, run.results_dir()) {
                Some(stored) => (None, serde_json::to_string(&stored).ok()),
                None => (String::from_utf8(buf).ok(), None),
            }
        }
        _ => (None, None),
    };
    let ended = run
        .end_offset()
        .map(|d| micros(run.started_wall() + d))
        .unwrap_or_else(|| micros(SystemTime::now()));
    (status, output, file, ended)
}

fn write_graph(tx: &Transaction<'_>, run: &Run, j: &Key<'_>) -> rusqlite::Result<()> {
    let graph = encode_run(run);
    if j.path.is_empty() {
        tx.prepare_cached("INSERT OR REPLACE INTO graphs (dispatch_id, graph) VALUES (?1, ?2)")?
            .execute(params![j.dispatch_id, graph])?;
    } else {
        tx.execute(
            "INSERT INTO sublattices (dispatch_id, path, lattice, status, graph)
             VALUES (?1, ?2, ?3, 'RUNNING', ?4)
             ON CONFLICT (dispatch_id, path) DO UPDATE SET lattice = excluded.lattice,
                 status = excluded.status, graph = excluded.graph",
            params![j.dispatch_id, j.path, run.graph().name, graph],
        )?;
    }
    Ok(())
}

fn write_final(tx: &Transaction<'_>, run: &Run, j: &Key<'_>) -> rusqlite::Result<()> {
    let status = run.status();
    if j.path.is_empty() {
        let (status, output, output_file, ended) = final_fields(run);
        tx.prepare_cached(
            "UPDATE dispatches SET status = ?1, output = ?2, error = ?3, ended_at = ?4,
                 output_file = ?5 WHERE id = ?6",
        )?
        .execute(params![
            status.as_str(),
            output,
            run.error(),
            ended,
            output_file,
            j.dispatch_id
        ])?;
    } else {
        tx.execute(
            "UPDATE sublattices SET status = ?1 WHERE dispatch_id = ?2 AND path = ?3",
            params![status.as_str(), j.dispatch_id, j.path],
        )?;
    }
    Ok(())
}

/// Appends node `i`'s state to a batch: `[id, status, start, end, output, {extras}]` (see
/// `NodeRow` in `store/mod.rs`).
/// Appends the nodes whose status changed since the last batch (all remaining ones when the
/// run has ended). NEW and PENDING nodes are not logged: no entry means "not started".
fn scan(buf: &mut Vec<u8>, run: &Run, a: &mut Rows, ended: bool) {
    let n = a.written.len();
    let mut i = a.low;
    let mut all_final_so_far = true;
    while i < n {
        let written = a.written[i];
        if written != UNWRITTEN && Status::from_u8(written).is_terminal() {
            if all_final_so_far {
                a.low = i + 1;
            }
            i += 1;
            continue;
        }
        let status = if matches!(run.graph().nodes[i].op, Op::Param(_)) {
            a.written[i] = Status::Completed as u8;
            i += 1;
            continue;
        } else {
            run.node(i).status()
        };
        let changed =
            status as u8 != written && (ended || !matches!(status, Status::New | Status::Pending));
        if changed {
            entry(buf, run, a, i, status);
            a.written[i] = status as u8;
        }
        if !status.is_terminal() {
            all_final_so_far = false;
        } else if all_final_so_far {
            a.low = i + 1;
        }
        i += 1;
    }
}

fn entry(buf: &mut Vec<u8>, run: &Run, a: &mut Rows, i: usize, status: Status) {
    let view = NodeResult::new(run, i);
    if matches!(status, Status::Completed | Status::Reused) && !view.is_internal() {
        a.done_tasks += 1;
    }
    if buf.len() > 1 {
        buf.push(b',');
    }
    let mut num = itoa::Buffer::new();
    buf.push(b'[');
    buf.extend_from_slice(num.format(i).as_bytes());
    buf.push(b',');
    buf.extend_from_slice(num.format(status as u8).as_bytes());
    let (start, end) = run.node(i).times();
    for t in [start, end] {
        match t {
            Some(t) => {
                buf.push(b',');
                buf.extend_from_slice(num.format(t.as_micros() as u64).as_bytes());
            }
            None => buf.extend_from_slice(b",null"),
        }
    }
    let mut stored = None;
    match view.output() {
        Some(o) if matches!(status, Status::Completed | Status::Reused) => {
            buf.push(b',');
            stored = values::write(o, buf, run.results_dir());
            if stored.is_some() {
                buf.extend_from_slice(b"null");
            }
        }
        _ => buf.extend_from_slice(b",null"),
    }
    run.node(i)
        .read_extra(|extra| write_extras(buf, run, extra, stored.as_ref()));
    buf.push(b']');
}

/// Appends a node's extras object (`e` error, `k` its kind, `out`/`err` streams, `x` executor,
/// `j` job handle, `t` attempts, `f` file transfers, `of` the file holding its output), if it
/// has any.
fn write_extras(buf: &mut Vec<u8>, run: &Run, extra: Option<&NodeExtra>, stored: Option<&Stored>) {
    let mut extras = serde_json::Map::new();
    if let Some(s) = stored {
        extras.insert("of".into(), serde_json::to_value(s).unwrap_or_default());
    }
    if let Some(x) = extra {
        let mut text = |key: &str, v: &str| {
            extras.insert(key.into(), serde_json::Value::from(v));
        };
        if let Some(e) = &x.error {
            text("e", e.message());
            text("k", e.kind().as_str());
        }
        if !x.stdout.is_empty() {
            text("out", &x.stdout);
        }
        if !x.stderr.is_empty() {
            text("err", &x.stderr);
        }
        if let Some(e) = &x.executor {
            text("x", e.short_name());
        }
        if let Some(h) = &x.job_handle {
            extras.insert("j".into(), h.0.clone());
            // With the handle, what rebuilds the executor in another process (a cancel after
            // the dispatcher died): its options.
            if let Some(e) = &x.executor {
                extras.insert("xo".into(), e.exec.to_dict());
            }
        }
        if let Some(m) = &x.more
            && !m.transfers.is_empty()
        {
            extras.insert(
                "f".into(),
                serde_json::to_value(&m.transfers).unwrap_or_default(),
            );
        }
        if !x.attempts.is_empty() {
            let recs: Vec<crate::record::AttemptRecord> = x
                .attempts
                .iter()
                .map(|t| crate::record::AttemptRecord {
                    number: t.number,
                    start_time: chrono::DateTime::from(run.started_wall() + t.start_offset()),
                    end_time: chrono::DateTime::from(
                        run.started_wall() + t.start_offset() + t.duration(),
                    ),
                    error: t.error.as_ref().map(|e| e.message().to_string()),
                    error_kind: t.error.as_ref().map(|e| e.kind()),
                })
                .collect();
            extras.insert("t".into(), serde_json::to_value(recs).unwrap_or_default());
        }
    }
    if !extras.is_empty() {
        buf.push(b',');
        let _ = serde_json::to_writer(&mut *buf, &serde_json::Value::Object(extras));
    }
}
