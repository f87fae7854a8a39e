//! The progress bar shown while a program waits on a dispatch in a terminal (never when stderr
//! is piped, and not with `[sdk] progress = false` or `COVALENT_NO_PROGRESS` set). Owns only
//! the bar.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::dispatcher::Run;

/// A bar that follows a run until dropped.
pub(crate) struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(run: &Arc<Run>) -> Progress {
        let wanted = !run.is_done()
            && run.config().sdk.progress
            && std::env::var_os("COVALENT_NO_PROGRESS").is_none()
            && std::io::stderr().is_terminal();
        if !wanted {
            return Progress { task: None };
        }
        let run = run.clone();
        let task = run.handle().clone().spawn(async move {
            // Short dispatches finish before a bar would be worth drawing.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (done, total) = run.progress();
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {pos}/{len} nodes {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(run.graph().name.clone());
            bar.set_position(done as u64);
            while !run.is_done() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bar.set_position(run.progress().0 as u64);
            }
            bar.finish_and_clear();
        });
        Progress { task: Some(task) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
