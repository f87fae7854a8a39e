//! What one file transfer did, as a node records it: [`TransferRecord`].
//!
//! This module owns the record's shape (in the store's node log, the record JSON, `covalent
//! show` and the UI); transfers are made by `strategy.rs` and the executors.

use serde::{Deserialize, Serialize};

/// One file transfer of a task: before it (`in`) or after it (`out`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// The attempt it belonged to (from 1).
    #[serde(default)]
    pub attempt: u32,
    /// `"in"` (before the task, into its directory) or `"out"` (after it, from there).
    pub direction: String,
    /// Where the file came from (a URI).
    pub source: String,
    /// Where it went (a URI).
    pub destination: String,
    /// How: `copy`, `hardlink`, `in_place` (read where it is), `rsync`, `scp`, `http`.
    pub strategy: String,
    /// Which side moved it: `task` (where the task runs) or `dispatcher` (this program, on
    /// the task's behalf: a file of this machine for a task elsewhere).
    pub via: String,
    /// Bytes moved (the file's size).
    pub bytes: u64,
    /// How long it took, in seconds (for files moved together in one batch: the batch's).
    pub seconds: f64,
    /// BLAKE3 of the content that arrived, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TransferRecord {
    /// One line for reports: `in  rsync 1.2 MB in 0.05 s  file:///a -> ssh://h/wd/a`.
    pub fn line(&self) -> String {
        let what = match &self.error {
            Some(e) => format!("FAILED: {e}"),
            None => format!("{} in {:.3} s", human_bytes(self.bytes), self.seconds),
        };
        format!(
            "{:<3} {:<8} {} -> {}  ({what}{})",
            self.direction,
            self.strategy,
            self.source,
            self.destination,
            if self.via == "dispatcher" {
                ", via the dispatcher"
            } else {
                ""
            }
        )
    }
}

/// `1.2 MB`, `512 B`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
