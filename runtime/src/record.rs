//! Records: a dispatch as plain data ([`DispatchRecord`], [`NodeRecord`]), the same whether it
//! comes from a running dispatch in this process or from the store, written by another one.
//! Its `Display` is the Covalent-style report; it serializes to JSON for `covalent result
//! --json`.
//!
//! This module owns the record shape and the report: plain data, it knows nothing of runs
//! (`result.rs` builds records of runs in this process) or of SQL (`store/` reads them back).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ErrorKind;
use crate::status::Status;
use crate::value::Value;

/// A value kept in a file beside the store, because its JSON is longer than the store keeps in
/// a row (64 KiB): `<results dir>/<dispatch id>/values/<digest>.json`. Records that only show
/// a dispatch never open it; [`ValueFile::read`] streams it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueFile {
    /// The file (its JSON text is the value).
    pub path: PathBuf,
    /// Its length in bytes.
    pub bytes: u64,
    /// BLAKE3 of its content, hex (also its name).
    pub digest: String,
}

impl ValueFile {
    /// The value as `T`, read from the file without holding its text in memory.
    pub fn read<T: Value>(&self) -> Result<T, String> {
        let f = std::fs::File::open(&self.path)
            .map_err(|e| format!("cannot open the value file {}: {e}", self.path.display()))?;
        serde_json::from_reader(std::io::BufReader::with_capacity(1 << 20, f)).map_err(|e| {
            format!(
                "the value file {} does not read back as a `{}`: {e}",
                self.path.display(),
                std::any::type_name::<T>()
            )
        })
    }
}

impl fmt::Display for ValueFile {
    /// `<1.2 MB value in FILE>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{} value in {}>",
            human_bytes(self.bytes),
            self.path.display()
        )
    }
}

/// `1.2 MB`, `640 KB`, `12 B`.
pub(crate) fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.0} KB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

/// One attempt at running a node, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Attempt number, from 1.
    pub number: u32,
    /// When it started.
    pub start_time: DateTime<Utc>,
    /// When it ended.
    pub end_time: DateTime<Utc>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// What kind of failure that was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
}

/// One node of a dispatch, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node id (call order).
    pub id: usize,
    /// Electron name, or `:parameter:` etc. for internal nodes.
    pub name: String,
    /// Parameter, collection or indexing node (hidden from task counts).
    pub internal: bool,
    /// Status.
    pub status: Status,
    /// Executor name (electrons only).
    pub executor: Option<String>,
    /// Inputs: `(source node id, edge name)`.
    pub inputs: Vec<(usize, String)>,
    /// Output as JSON (`None` when it is in [`NodeRecord::output_file`]).
    pub output: Option<serde_json::Value>,
    /// The file holding the output, when it was too large to keep in the store's row (see
    /// [`NodeRecord::value`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<ValueFile>,
    /// Error message.
    pub error: Option<String>,
    /// What kind of failure ended the node (with `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// Every attempt.
    pub attempts: Vec<AttemptRecord>,
    /// File transfers before and after the task, every attempt's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfers: Vec<crate::files::TransferRecord>,
    /// Start time.
    pub start_time: Option<DateTime<Utc>>,
    /// End time.
    pub end_time: Option<DateTime<Utc>>,
    /// Job handle recorded by the executor.
    pub job_handle: Option<serde_json::Value>,
    /// The options of the executor that ran the attempt with that job handle (what a process
    /// that resumes or cancels the dispatch rebuilds the executor from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_options: Option<serde_json::Value>,
    /// For a sublattice node: the child graph.
    pub sublattice: Option<SublatticeRecord>,
}

/// The child graph of a sublattice node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SublatticeRecord {
    /// The child lattice's name.
    pub lattice: String,
    /// Its status.
    pub status: Status,
    /// Its nodes.
    pub nodes: Vec<NodeRecord>,
}

/// A dispatch, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DispatchRecord {
    /// The dispatch id.
    pub id: Uuid,
    /// The lattice's name.
    pub lattice: String,
    /// Status.
    pub status: Status,
    /// Inputs by parameter name (`null` for one in [`DispatchRecord::input_files`]).
    pub inputs: Vec<(String, serde_json::Value)>,
    /// The inputs whose JSON was too large to keep in the store's row, by parameter name: the
    /// files holding them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_files: Vec<(String, ValueFile)>,
    /// The lattice's result as JSON, when COMPLETED (`None` when it is in
    /// [`DispatchRecord::output_file`]).
    pub output: Option<serde_json::Value>,
    /// The file holding the result, when it was too large to keep in the store's row (see
    /// [`DispatchRecord::value`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<ValueFile>,
    /// Why it did not complete.
    pub error: Option<String>,
    /// Start time.
    pub start_time: Option<DateTime<Utc>>,
    /// End time.
    pub end_time: Option<DateTime<Utc>>,
    /// Directory for the dispatch's files.
    pub results_dir: Option<PathBuf>,
    /// Nodes of the top-level graph, internal ones included.
    pub nodes: Vec<NodeRecord>,
}

impl DispatchRecord {
    /// The result as `T` (`None` unless COMPLETED).
    pub fn value<T: Value>(&self) -> Result<Option<T>, String> {
        match &self.output {
            None if self.status == Status::Completed => {
                self.output_file.as_ref().map(ValueFile::read).transpose()
            }
            Some(v) if self.status == Status::Completed => {
                serde_json::from_value(v.clone()).map(Some).map_err(|e| {
                    format!(
                        "the result of dispatch {} is not a `{}`: {e}",
                        self.id,
                        std::any::type_name::<T>()
                    )
                })
            }
            _ => Ok(None),
        }
    }

    /// Number of tasks (internal nodes excluded), sublattice tasks not counted.
    pub fn task_count(&self) -> usize {
        self.nodes.iter().filter(|n| !n.internal).count()
    }

    /// Number of tasks that completed (or were reused).
    pub fn done_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !n.internal && matches!(n.status, Status::Completed | Status::Reused))
            .count()
    }

    /// Wall time from start to end.
    pub fn runtime(&self) -> Option<Duration> {
        match (self.start_time, self.end_time) {
            (Some(s), Some(e)) => (e - s).to_std().ok(),
            _ => None,
        }
    }

    /// One node by id.
    pub fn node(&self, id: usize) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

impl NodeRecord {
    /// The node's output as `T` (`None` unless it has one: COMPLETED or REUSED), read from its
    /// value file when it has one.
    pub fn value<T: Value>(&self) -> Result<Option<T>, String> {
        if let Some(v) = &self.output {
            return serde_json::from_value(v.clone()).map(Some).map_err(|e| {
                format!(
                    "the output of node {} ({}) is not a `{}`: {e}",
                    self.id,
                    self.name,
                    std::any::type_name::<T>()
                )
            });
        }
        self.output_file.as_ref().map(ValueFile::read).transpose()
    }

    /// The output for a report: its JSON, or where its file is.
    pub fn output_text(&self) -> Option<String> {
        match (&self.output, &self.output_file) {
            (Some(v), _) => Some(v.to_string()),
            (None, Some(f)) => Some(f.to_string()),
            (None, None) => None,
        }
    }
}

fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string())
        .unwrap_or_else(|| "None".into())
}

fn write_nodes(f: &mut fmt::Formatter<'_>, nodes: &[NodeRecord], indent: &str) -> fmt::Result {
    for n in nodes.iter().filter(|n| !n.internal) {
        let out = match (n.output_text(), n.status) {
            (Some(o), Status::Completed | Status::Reused) => o,
            _ => match &n.error {
                Some(e) => format!("{} ({})", n.status, e.lines().next().unwrap_or("")),
                None => n.status.to_string(),
            },
        };
        writeln!(f, "{indent}{}({}): {out}", n.name, n.id)?;
        if let Some(sub) = &n.sublattice {
            write_nodes(f, &sub.nodes, &format!("{indent}    "))?;
        }
    }
    Ok(())
}

/// [`DispatchRecord::report_with_counts`].
pub struct Report<'a> {
    record: &'a DispatchRecord,
    done: usize,
    total: usize,
}

impl DispatchRecord {
    /// The report ([`Display`](fmt::Display)) of a record that holds part of its nodes (a
    /// page, [`Store::get_page`](crate::store::Store::get_page)), with the dispatch's task
    /// counts given (see [`Store::summary`](crate::store::Store::summary)) rather than counted.
    pub fn report_with_counts(&self, done: usize, total: usize) -> Report<'_> {
        Report {
            record: self,
            done,
            total,
        }
    }
}

impl fmt::Display for DispatchRecord {
    /// The Covalent-style report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.report_with_counts(self.done_count(), self.task_count())
            .fmt(f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (done, total) = (self.done, self.total);
        let r = self.record;
        writeln!(f, "Lattice Result")?;
        writeln!(f, "==============")?;
        writeln!(f, "lattice: {}", r.lattice)?;
        writeln!(f, "status: {}", r.status)?;
        let result = match (&r.output, &r.output_file) {
            (Some(v), _) if r.status == Status::Completed => v.to_string(),
            (None, Some(file)) if r.status == Status::Completed => file.to_string(),
            _ => "None".into(),
        };
        writeln!(f, "result: {result}")?;
        let inputs: Vec<String> = r
            .inputs
            .iter()
            .map(|(k, v)| match r.input_files.iter().find(|(n, _)| n == k) {
                Some((_, file)) => format!("{k}={file}"),
                None => format!("{k}={v}"),
            })
            .collect();
        writeln!(f, "inputs: {}", inputs.join(", "))?;
        writeln!(f, "error: {}", r.error.as_deref().unwrap_or("None"))?;
        writeln!(f)?;
        writeln!(f, "start_time: {}", fmt_time(r.start_time))?;
        writeln!(f, "end_time: {}", fmt_time(r.end_time))?;
        if let Some(rt) = r.runtime() {
            writeln!(f, "runtime: {rt:?}")?;
        }
        writeln!(f, "tasks: {} of {} completed", done, total)?;
        writeln!(f)?;
        if let Some(dir) = &r.results_dir {
            writeln!(f, "results_dir: {}", dir.display())?;
        }
        writeln!(f, "dispatch_id: {}", r.id)?;
        writeln!(f)?;
        writeln!(f, "Node Outputs")?;
        writeln!(f, "------------")?;
        write_nodes(f, &r.nodes, "")
    }
}
