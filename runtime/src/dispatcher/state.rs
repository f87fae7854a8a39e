//! The statuses as a node's state stores them (one byte) and the record of one attempt.
//!
//! This module owns these two small things; the node state itself is `run.rs`'s.

use std::time::Duration;

use crate::error::NodeError;
use crate::status::Status;

pub(super) const NEW: u8 = Status::New as u8;
pub(super) const PENDING: u8 = Status::Pending as u8;
pub(super) const RUNNING: u8 = Status::Running as u8;
pub(super) const COMPLETED: u8 = Status::Completed as u8;
pub(super) const FAILED: u8 = Status::Failed as u8;
pub(super) const CANCELLED: u8 = Status::Cancelled as u8;
pub(super) const NOT_RUN: u8 = Status::NotRun as u8;
/// A running node whose outcome is being recorded (read as RUNNING): taking a node from RUNNING
/// to here decides, once, between its own outcome and a cancel that gave it up.
pub(super) const ENDING: u8 = 0x40 | RUNNING;

/// One attempt at running a node.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    /// Attempt number, from 1.
    pub number: u32,
    /// Offset from the dispatch start.
    pub(crate) start: Duration,
    pub(crate) end: Duration,
    /// Why it failed, if it did.
    pub error: Option<NodeError>,
}

impl Attempt {
    /// When the attempt started, as an offset from the dispatch start.
    pub fn start_offset(&self) -> Duration {
        self.start
    }
    /// How long the attempt took.
    pub fn duration(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}
