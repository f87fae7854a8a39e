//! A custom executor implementing the async interface (Covalent's `AsyncBaseExecutor`): it
//! runs each task on the async runtime, records a job handle and counts the tasks it ran.
//!
//! Run with `cargo run --example async_executor`.

use std::sync::atomic::{AtomicUsize, Ordering};

use covalent::executor::{
    AsyncBaseExecutor, BaseOptions, ExecutorError, ExecutorRef, Output, Task, TaskContext,
};
use covalent::prelude::*;
use serde::{Deserialize, Serialize};

/// Runs tasks on the async runtime and counts them.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CountingExecutor {
    /// Base options.
    #[serde(flatten)]
    pub base: BaseOptions,
    /// Tasks run so far (not part of the configuration).
    #[serde(skip)]
    pub ran: AtomicUsize,
}

#[covalent::executor::async_trait]
impl AsyncBaseExecutor for CountingExecutor {
    fn short_name(&self) -> &str {
        "counting"
    }

    fn base(&self) -> &BaseOptions {
        &self.base
    }

    async fn setup(&self, ctx: &TaskContext) -> Result<(), ExecutorError> {
        ctx.set_job_handle(format!("counting-{}-{}", ctx.dispatch_id(), ctx.node_id()));
        Ok(())
    }

    /// The runtime enforces time limits and cancellation around this call, so the executor
    /// only has to run the task: `call()` awaits an async body here and sends a sync body to
    /// a blocking thread.
    async fn run(&self, task: Task, _ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let out = task.call().await?;
        self.ran.fetch_add(1, Ordering::SeqCst);
        Ok(out)
    }
}

static COUNTING: std::sync::LazyLock<ExecutorRef> =
    std::sync::LazyLock::new(|| ExecutorRef::new(CountingExecutor::default()));

/// An async electron: waits a little, then doubles.
#[electron(executor = &COUNTING)]
async fn double(x: i64) -> i64 {
    std::future::ready(()).await;
    x * 2
}

/// A sync electron on the same executor.
#[electron(executor = &COUNTING)]
fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[lattice]
fn workflow(n: i64) -> i64 {
    let doubled: Vec<Node<i64>> = (1..=n).map(double).collect();
    total(doubled)
}

#[covalent::main]
async fn main() -> anyhow::Result<()> {
    let result = covalent::dispatch(workflow(4)).await?.wait().await?;
    println!("{result}");
    anyhow::ensure!(result.value() == Some(&20), "got {:?}", result.value());
    for n in result.nodes().filter(|n| !n.is_internal()) {
        println!("{}({}) job handle: {:?}", n.name(), n.id(), n.job_handle());
    }
    let ran = COUNTING
        .downcast_ref::<CountingExecutor>()
        .map(|c| c.ran.load(Ordering::SeqCst))
        .unwrap_or(0);
    println!("tasks run by the counting executor: {ran}");
    anyhow::ensure!(
        ran == 5,
        "expected 5 tasks on the counting executor, got {ran}"
    );
    Ok(())
}
