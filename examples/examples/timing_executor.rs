//! The custom executor how-to: a `TimingExecutor` plugin, written here, that runs each electron
//! in this process and appends `Node N in dispatch D took Xs of CPU time.` to a log file.
//!
//! It is registered through inventory under the name `"timing"` and used both by name and by
//! value. Run with `cargo run --example timing_executor`; the log goes to
//! `<cache_dir>/timing.log` (the `TIMING_LOG_DIR` environment variable overrides the dir).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use covalent::executor::{BaseOptions, BlockingExecutor, ExecutorError, Output, Task, TaskContext};
use covalent::prelude::*;
use serde::{Deserialize, Serialize};

/// Measures the CPU time each task takes and logs it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TimingExecutor {
    /// The base options (`cache_dir` is where the log goes).
    #[serde(flatten)]
    pub base: BaseOptions,
    /// Log file name inside the cache dir.
    pub log_name: Option<String>,
}

impl TimingExecutor {
    /// A timing executor that logs into `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        TimingExecutor {
            base: BaseOptions {
                cache_dir: Some(dir.into()),
                ..Default::default()
            },
            log_name: None,
        }
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        let dir = std::env::var_os("TIMING_LOG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.base.cache_dir());
        dir.join(self.log_name.as_deref().unwrap_or("timing.log"))
    }
}

/// CPU time used by the calling thread so far (Linux; zero elsewhere).
fn cpu_time() -> Duration {
    // Fields 14 and 15 of the thread's stat: user and system time in clock ticks.
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_secs_f64(ticks as f64 / 100.0)
}

impl BlockingExecutor for TimingExecutor {
    fn short_name(&self) -> &str {
        "timing"
    }

    fn base(&self) -> &BaseOptions {
        &self.base
    }

    fn setup(&self, _ctx: &TaskContext) -> Result<(), ExecutorError> {
        // The original how-to failed with FileNotFoundError when the cache dir was missing.
        let path = self.log_path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                ExecutorError::Failed(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        Ok(())
    }

    fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let start = cpu_time();
        let out = task.call_blocking()?;
        let took = cpu_time().saturating_sub(start);
        let c = ctx.get_dispatch_context();
        // One write per line: tasks run concurrently and append to the same file.
        let line = format!(
            "Node {} in dispatch {} took {}s of CPU time.\n",
            c.node_id,
            c.dispatch_id,
            took.as_secs_f64()
        );
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| ExecutorError::Failed(format!("cannot write the timing log: {e}")))?;
        Ok(out)
    }
}

covalent::register_executor!("timing", TimingExecutor);

/// Adds two numbers (executor chosen by name).
#[electron(executor = "timing")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Multiplies two numbers (executor given as a value).
#[electron(executor = TimingExecutor::default())]
fn multiply(x: i64, y: i64) -> i64 {
    x * y
}

#[lattice]
fn workflow(x: i64, y: i64) -> i64 {
    let r1 = add(x, y);
    multiply(y, r1)
}

/// One term of the series for e: 1/n!.
#[electron(executor = "timing")]
fn term(n: u64) -> f64 {
    1.0 / (1..=n).map(|k| k as f64).product::<f64>()
}

/// Sums the terms.
#[electron(executor = "timing")]
fn sum(terms: Vec<f64>) -> f64 {
    terms.iter().sum()
}

/// e as the sum of 1/n! for n in 0..n_terms.
#[lattice]
fn e_ser(n_terms: u64) -> f64 {
    let terms: Vec<Node<f64>> = (0..n_terms).map(term).collect();
    sum(terms)
}

#[covalent::main]
async fn main() -> anyhow::Result<()> {
    let log = TimingExecutor::default().log_path();
    let before = std::fs::read_to_string(&log)
        .map(|s| s.lines().count())
        .unwrap_or(0);

    let result = covalent::dispatch(workflow(3, 4)).await?.wait().await?;
    println!("{result}");
    anyhow::ensure!(
        result.value() == Some(&28),
        "workflow gave {:?}",
        result.value()
    );

    let lines = std::fs::read_to_string(&log)?;
    let new: Vec<&str> = lines.lines().skip(before).collect();
    println!("{} ({} new lines):", log.display(), new.len());
    for l in &new {
        println!("  {l}");
    }
    anyhow::ensure!(new.len() == 2, "expected one log line per electron");

    let e = covalent::dispatch(e_ser(10)).await?.wait().await?;
    println!("e_ser(10) = {:?}", e.value());
    anyhow::ensure!(
        e.value() == Some(&2.7182815255731922),
        "e_ser(10) gave {:?}",
        e.value()
    );
    Ok(())
}
