//! The built-in `local` executor: runs electrons in this process.
//!
//! Sync electrons run on the runtime's worker pool (never on the async runtime's threads),
//! async electrons on the async runtime. This module owns only the executor value; the pool is
//! `crate::pool`, scheduling is the dispatcher's.

use serde::{Deserialize, Serialize};

use crate::executor::{BaseOptions, Executor, ExecutorError, Task, TaskContext};
use crate::value::Output;

/// Runs electrons in this process (the default executor).
///
/// Options (`[executors.local]` in `covalent.toml`): the [`BaseOptions`], plus `max_workers`,
/// the most threads the pool may grow to while electrons block (default 512).
///
/// In-process electrons share the process's stdout and stderr, so their output is not captured
/// per node; use the `process` executor for that.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LocalExecutor {
    /// Base options.
    #[serde(flatten)]
    pub base: BaseOptions,
    /// Cap on pool threads.
    pub max_workers: Option<usize>,
}

impl LocalExecutor {
    /// A local executor with default options.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl Executor for LocalExecutor {
    fn short_name(&self) -> &str {
        "local"
    }
    fn base(&self) -> &BaseOptions {
        &self.base
    }
    async fn run(&self, task: Task, _ctx: &TaskContext) -> Result<Output, ExecutorError> {
        if let Some(n) = self.max_workers {
            crate::pool::set_max_threads(n);
        }
        Ok(task.call().await?)
    }
    fn runs_inline(&self) -> bool {
        if let Some(n) = self.max_workers {
            crate::pool::set_max_threads(n);
        }
        true
    }
}

crate::register_executor!("local", LocalExecutor);
