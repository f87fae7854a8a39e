//! The executors a run resolved for its nodes: one per executor selection of the graph, then
//! the run's default; with what scheduling needs of each (inline or not, its default time
//! limit and retries).
//!
//! This module owns resolution; it does not run anything.

use std::time::Duration;

use crate::config::Config;
use crate::executor::{ExecutorError, ExecutorRef, ExecutorSel};

/// An executor resolved for one run.
pub(crate) struct Resolved {
    pub(crate) exec: Result<ExecutorRef, ExecutorError>,
    pub(super) inline: bool,
    pub(super) time_limit: Option<Duration>,
    pub(super) retries: Option<u32>,
}

impl Resolved {
    pub(super) fn new(sel: &ExecutorSel, config: &Config) -> Self {
        let exec = match sel {
            ExecutorSel::Instance(r) => Ok(r.clone()),
            ExecutorSel::Named(name) => config.executor(name),
        };
        let (inline, time_limit, retries) = match &exec {
            Ok(e) => (
                e.exec.runs_inline(),
                e.exec.base().time_limit,
                e.exec.base().retries,
            ),
            Err(_) => (false, None, None),
        };
        Resolved {
            exec,
            inline,
            time_limit,
            retries,
        }
    }
}
