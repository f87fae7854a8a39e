//! What the store keeps so that a dispatch outlives its dispatcher: the program that ran it
//! (path and build fingerprint) and its lattice's registered name ([`Origin`]), the attempts it
//! left running with their job handles and executor options, the claim a resume takes on them
//! (so two resumes never follow the same attempts), and the record of a cancel made after the
//! dispatcher died.
//!
//! This module owns that SQL; deciding what to do with it is `durable.rs`'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::encode::GraphRec;
use super::{Store, StoreError};
use crate::error::ErrorKind;
use crate::executor::JobHandle;
use crate::status::Status;
use crate::time::micros;

/// A fingerprint of a build of a program: its size and modification time. Cheap (no hashing
/// of a binary of tens of megabytes at every start) and changed by every rebuild.
pub fn build_of(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(format!("{}-{}.{:09}", m.len(), m.mtime(), m.mtime_nsec()))
}

/// This program's path and build, as recorded with each dispatch it starts.
pub(crate) fn this_program() -> (Option<String>, Option<String>) {
    static THIS: OnceLock<(Option<String>, Option<String>)> = OnceLock::new();
    THIS.get_or_init(|| match std::env::current_exe() {
        Ok(p) => (Some(p.display().to_string()), build_of(&p)),
        Err(_) => (None, None),
    })
    .clone()
}

/// Where a recorded dispatch came from: what another process needs to resume or cancel it.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    /// The dispatch id.
    pub id: Uuid,
    /// The lattice's display name.
    pub lattice: String,
    /// The lattice's registered name (`module::path::function`), if it was recorded.
    pub lattice_path: Option<String>,
    /// The program that ran the dispatch.
    pub program: Option<PathBuf>,
    /// That program's build fingerprint when it ran ([`build_of`]).
    pub build: Option<String>,
    /// The lattice's inputs, by parameter name.
    pub inputs: Vec<(String, serde_json::Value)>,
    /// The dispatch's status now.
    pub status: Status,
    /// The dispatch that resumed this one, if one did.
    pub resumed_by: Option<Uuid>,
    /// The dispatching process and its host.
    pub pid: u32,
    /// The host it ran on.
    pub host: String,
    /// The working directory it ran in.
    pub cwd: Option<PathBuf>,
}

/// An attempt a dispatch's record says was running (or lost touch with its task) when its
/// dispatcher stopped watching it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct LeftRunning {
    pub node: usize,
    pub name: String,
    pub handle: JobHandle,
    pub executor: Option<String>,
    pub options: Option<serde_json::Value>,
}

/// Whether a node's last recorded state may have a task still out there: it was running, or it
/// failed because the dispatcher lost touch with its task (`lost_contact`: a link that dropped
/// for good).
fn may_be_out_there(status: Status, kind: Option<ErrorKind>) -> bool {
    match status {
        Status::Running | Status::Pending | Status::Interrupted => true,
        Status::Failed => kind == Some(ErrorKind::LostContact),
        _ => false,
    }
}

/// What a later run may take from an earlier one: outputs of completed nodes and the job
/// handles of attempts it may follow, both by node fingerprint.
#[derive(Default)]
pub(crate) struct Reusable {
    pub outputs: HashMap<[u8; 16], serde_json::Value>,
    pub running: HashMap<[u8; 16], JobHandle>,
}

impl Store {
    /// Where dispatch `id` came from.
    pub fn origin(&self, id: Uuid) -> Result<Origin, StoreError> {
        self.sweep_interrupted()?;
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            String,
            Option<String>,
            u32,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = self.with(|c| {
            c.query_row(
                "SELECT lattice, lattice_path, program, build, inputs, status, resumed_by, pid, host,
                        cwd, input_files, results_dir
                 FROM dispatches WHERE id = ?1",
                [id.to_string()],
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
                        r.get(11)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((
            lattice,
            lattice_path,
            program,
            build,
            inputs,
            status,
            resumed_by,
            pid,
            host,
            cwd,
            input_files,
            results_dir,
        )) = row
        else {
            return Err(StoreError::UnknownDispatch {
                id: id.to_string(),
                path: self.path.clone(),
            });
        };
        Ok(Origin {
            id,
            lattice,
            lattice_path,
            program: program.map(PathBuf::from),
            build,
            inputs: self.inputs_with_files(
                &inputs,
                input_files.as_deref(),
                results_dir.as_deref().map(Path::new),
            )?,
            status: status.parse().unwrap_or(Status::Running),
            resumed_by: resumed_by.and_then(|r| Uuid::parse_str(&r).ok()),
            pid,
            host,
            cwd: cwd.map(PathBuf::from),
        })
    }

    /// The stored graph of a dispatch (empty if it has none yet).
    fn graph_rec(&self, key: &str) -> Result<GraphRec, StoreError> {
        let graph: Option<String> = self
            .with(|c| {
                c.query_row(
                    "SELECT coalesce(d.graph, g.graph) FROM dispatches d LEFT JOIN graphs g ON g.dispatch_id = d.id
                     WHERE d.id = ?1",
                    [key],
                    |r| r.get(0),
                )
                .optional()
            })?
            .ok_or_else(|| StoreError::UnknownDispatch {
                id: key.to_string(),
                path: self.path.clone(),
            })?;
        Ok(graph
            .and_then(|g| serde_json::from_str(&g).ok())
            .unwrap_or_default())
    }

    /// The results dir recorded for dispatch `key`.
    fn results_dir_of(&self, key: &str) -> Result<Option<PathBuf>, StoreError> {
        Ok(self
            .with(|c| {
                c.query_row(
                    "SELECT results_dir FROM dispatches WHERE id = ?1",
                    [key],
                    |r| r.get::<_, Option<String>>(0),
                )
                .optional()
            })?
            .flatten()
            .map(PathBuf::from))
    }

    /// What a later run may take from dispatch `id`: the outputs of its completed top-level
    /// nodes and, unless it still runs in a live process, the job handles of attempts it left
    /// running.
    pub(crate) fn reusable(&self, id: Uuid) -> Result<Reusable, StoreError> {
        let key = id.to_string();
        let status = self.status(id)?;
        let graph = self.graph_rec(&key)?;
        let fps = graph.fingerprints();
        let mut out = Reusable::default();
        let results = self.results_dir_of(&key)?;
        for ((path, i), row) in self.node_rows(&key)? {
            if !path.is_empty() || i >= fps.len() {
                continue;
            }
            if matches!(row.s, Status::Completed | Status::Reused) {
                if let Some(v) = row.o {
                    out.outputs.insert(fps[i], v);
                } else if let Some(stored) = &row.of {
                    // A value file: read whole, as the node's output is (a value the file no
                    // longer reads back from is run again).
                    if let Some(v) = results.as_deref().and_then(|d| stored.file(d).read().ok()) {
                        out.outputs.insert(fps[i], v);
                    }
                }
            } else if status != Status::Running
                && may_be_out_there(row.s, row.k)
                && let Some(j) = row.j
            {
                out.running.insert(fps[i], JobHandle(j));
            }
        }
        Ok(out)
    }

    /// The attempts dispatch `id` left running (top-level nodes with a job handle whose last
    /// state says their task may still be out there).
    pub(crate) fn left_running(&self, id: Uuid) -> Result<Vec<LeftRunning>, StoreError> {
        let key = id.to_string();
        let graph = self.graph_rec(&key)?;
        let mut v: Vec<LeftRunning> = self
            .node_rows(&key)?
            .into_iter()
            .filter(|((path, i), row)| {
                path.is_empty() && *i < graph.nodes.len() && may_be_out_there(row.s, row.k)
            })
            .filter_map(|((_, i), row)| {
                Some(LeftRunning {
                    node: i,
                    name: graph.name(i).to_string(),
                    handle: JobHandle(row.j?),
                    executor: row.x,
                    options: row.xo,
                })
            })
            .collect();
        v.sort_by_key(|l| l.node);
        Ok(v)
    }

    /// Whether dispatch `id` left attempts that may still be running (see
    /// [`crate::cancel_left_running`]).
    pub fn has_left_running(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(!self.left_running(id)?.is_empty())
    }

    /// Takes dispatch `old`'s running attempts for dispatch `new`. `Err(other)` when another
    /// dispatch already took them.
    pub(crate) fn claim_resume(
        &self,
        old: Uuid,
        new: Uuid,
    ) -> Result<Result<(), Uuid>, StoreError> {
        let (o, n) = (old.to_string(), new.to_string());
        let taken: Option<String> = self.with(|c| {
            c.execute(
                "UPDATE dispatches SET resumed_by = ?2 WHERE id = ?1 AND resumed_by IS NULL",
                params![o, n],
            )?;
            c.query_row(
                "SELECT resumed_by FROM dispatches WHERE id = ?1",
                [&o],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
        })?;
        Ok(match taken.and_then(|t| Uuid::parse_str(&t).ok()) {
            Some(t) if t != new => Err(t),
            _ => Ok(()),
        })
    }

    /// Gives back a claim whose resume never started.
    pub(crate) fn release_claim(&self, old: Uuid, new: Uuid) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE dispatches SET resumed_by = NULL WHERE id = ?1 AND resumed_by = ?2",
                params![old.to_string(), new.to_string()],
            )
            .map(|_| ())
        })
    }

    /// Records a cancel made without the dispatcher: `cancelled` nodes (with their job handles)
    /// and every other node still marked running end CANCELLED with `message`, and so does the
    /// dispatch.
    pub(crate) fn mark_cancelled(
        &self,
        id: Uuid,
        cancelled: &[LeftRunning],
        message: &str,
    ) -> Result<(), StoreError> {
        let key = id.to_string();
        let graph = self.graph_rec(&key)?;
        let rows = self.node_rows(&key)?;
        let now = micros(SystemTime::now());
        let end = now - graph.t0;
        let mut entries = Vec::new();
        for ((path, i), row) in &rows {
            if !path.is_empty() || row.s.is_terminal() && !may_be_out_there(row.s, row.k) {
                continue;
            }
            let mut extras = serde_json::json!({ "e": message, "k": "cancelled" });
            if let Some(l) = cancelled.iter().find(|l| l.node == *i) {
                extras["j"] = l.handle.0.clone();
                if let Some(x) = &l.executor {
                    extras["x"] = x.clone().into();
                }
            }
            entries.push(serde_json::json!([
                i,
                Status::Cancelled as u8,
                row.a,
                row.b.unwrap_or(end),
                null,
                extras
            ]));
        }
        let mut conn = self.conn.lock().unwrap();
        // IMMEDIATE: it reads the log's next number, then writes (see `Store::purge`).
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        (|| {
            if !entries.is_empty() {
                let seq: i64 = tx.query_row(
                    "SELECT coalesce(max(seq), -1) + 1 FROM node_log WHERE dispatch_id = ?1 AND path = ''",
                    [&key],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "INSERT INTO node_log (dispatch_id, path, seq, entries) VALUES (?1, '', ?2, ?3)",
                    params![key, seq, serde_json::Value::Array(entries).to_string()],
                )?;
            }
            tx.execute(
                "UPDATE dispatches SET status = 'CANCELLED', ended_at = ?2, error = ?3
                 WHERE id = ?1 AND status NOT IN ('COMPLETED', 'RUNNING')",
                params![key, now, message],
            )?;
            Ok(())
        })()
        .map_err(|e: rusqlite::Error| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}

impl Store {
    /// A dispatch's recorded inputs with those kept in value files read back (a resume
    /// rebuilds the lattice from them).
    fn inputs_with_files(
        &self,
        inputs: &str,
        files: Option<&str>,
        results: Option<&Path>,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let mut inputs: Vec<(String, serde_json::Value)> =
            serde_json::from_str(inputs).unwrap_or_default();
        for (name, file) in super::read::input_files_of(files, results) {
            let value = file
                .read::<serde_json::Value>()
                .map_err(|reason| StoreError::Sqlite {
                    path: self.path.clone(),
                    reason: format!("input `{name}` of the dispatch cannot be read back: {reason}"),
                })?;
            if let Some(slot) = inputs.iter_mut().find(|(n, _)| *n == name) {
                slot.1 = value;
            }
        }
        Ok(inputs)
    }
}
