//! The built-in `local` executor: runs electrons in this process.
//!
//! Sync electrons run on the runtime's worker pool (never on the async runtime's threads),
//! async electrons on the async runtime. This module owns only the executor value; the pool is
//! `crate::pool`, scheduling is the dispatcher's.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::cancel::StopToken;
use crate::electron::TaskError;
use crate::executor::context::BodyThread;
use crate::executor::{BaseOptions, Executor, ExecutorError, Task, TaskContext};
use crate::value::Output;

/// Runs electrons in this process (the default executor).
///
/// Options (`[executors.local]` in `covalent.toml`): the [`BaseOptions`], plus `max_workers`,
/// the most threads the pool may grow to while electrons block (default 512), and what its
/// nodes share by their declared needs: `cpus`, `memory`, `gpus`, `resources` (default: the
/// machine's; see [`crate::resources`]).
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
    /// What its nodes share, admitted by their declared needs (`cpus`, `memory`, `gpus`,
    /// `resources`; default: this machine's).
    #[serde(flatten)]
    pub capacity: crate::resources::CapacityOptions,
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
    async fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        if let Some(n) = self.max_workers {
            crate::pool::set_max_threads(n);
        }
        let assignment = ctx.assignment().cloned();
        if task.is_async() && !task.def.has_hooks() {
            return Ok(crate::resources::WithAssignment {
                fut: Box::pin(task.call()),
                assignment,
            }
            .await?);
        }
        // A body on a thread of its own: if this attempt is given up (time limit, cancel), the
        // future is dropped but the thread cannot be; the dispatcher is told it still runs, and
        // the body is told through `covalent::cancelled()`.
        let thread = BodyThread::started();
        *ctx.inner.body_thread.lock().unwrap() = Some(thread.clone());
        let token = StopToken {
            cancel: ctx.inner.cancel.clone(),
            node: ctx.inner.node_id,
            given_up: Some(thread.given_up.clone()),
        };
        struct GiveUp(Arc<BodyThread>);
        impl Drop for GiveUp {
            fn drop(&mut self) {
                self.0.given_up.store(true, Ordering::Release);
            }
        }
        struct Ended(Arc<BodyThread>);
        impl Drop for Ended {
            fn drop(&mut self) {
                self.0.ended();
            }
        }
        let _give_up = GiveUp(thread.clone());
        let ended = Ended(thread);
        let r = tokio::task::spawn_blocking(move || {
            let _ended = ended;
            crate::resources::with_assignment(assignment, || {
                crate::cancel::with_token(token, || task.call_blocking())
            })
        })
        .await
        .map_err(|e| TaskError::Panicked(crate::invoke::join_error_message(e)))?;
        Ok(r?)
    }
    fn resource_ledger(&self) -> Option<Arc<crate::resources::Ledger>> {
        Some(self.capacity.ledger())
    }
    fn runs_inline(&self) -> bool {
        if let Some(n) = self.max_workers {
            crate::pool::set_max_threads(n);
        }
        true
    }
}

crate::register_executor!("local", LocalExecutor);
