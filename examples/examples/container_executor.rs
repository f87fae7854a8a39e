//! Electrons in containers: a word count split over containers, joined in this process.
//!
//! Needs podman or docker and an image with this binary's shared libraries. To try it on one
//! machine (as root, Debian; no registry needed):
//!
//! ```sh
//! bash scripts/podman-image.sh             # podman + runc, image localhost/covalent-worker
//! cargo run --example container_executor   # prints the report and each container's name
//! ```
//!
//! Options come from `[executors.container]` in `covalent.toml` (`engine`, `image`, `runtime`,
//! `cgroup_manager`, `network`, `env`, `mounts`, `run_options`, ...). Without a file this
//! example uses the settings the script's podman needs: runc with the cgroupfs manager, and
//! no network.

use std::path::Path;

use covalent::prelude::*;
// The plugin registers itself when the crate is linked: naming it once is enough.
use covalent_container as _;

const LOCAL_PODMAN: &str = r#"
[executors.container]
image = "localhost/covalent-worker:latest"
runtime = "runc"
cgroup_manager = "cgroupfs"
network = "none"
"#;

/// Runs in its own container.
#[electron(executor = "container")]
fn count_words(line: String) -> usize {
    eprintln!(
        "counting in container {}",
        std::fs::read_to_string("/etc/hostname")
            .unwrap_or_default()
            .trim()
    );
    line.split_whitespace().count()
}

/// Runs in this process.
#[electron]
fn total(counts: Vec<usize>) -> usize {
    counts.iter().sum()
}

#[lattice]
fn word_count(lines: Vec<String>) -> usize {
    let counts: Vec<Node<usize>> = lines.into_iter().map(count_words).collect();
    total(counts)
}

#[covalent::main]
async fn main() -> anyhow::Result<()> {
    let config = match covalent::Config::find() {
        Some(file) => covalent::Config::from_file(&file)?,
        None => covalent::Config::parse(LOCAL_PODMAN, Path::new("(built-in podman settings)"))?,
    };
    let lines = vec![
        "the quick brown fox".to_string(),
        "jumps over".to_string(),
        "the lazy dog".to_string(),
    ];
    let result = covalent::dispatch(word_count(lines).with_config(config))
        .await?
        .wait()
        .await?;
    println!("{result}");
    for node in result.nodes().filter(|n| n.name() == "count_words") {
        let container = node
            .job_handle()
            .and_then(|h| {
                h.0.get("container")
                    .and_then(|c| c.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        println!(
            "{}: container {container}: {}",
            node.name(),
            node.stderr().trim()
        );
    }
    anyhow::ensure!(
        result.value() == Some(&9),
        "the workflow failed: {}",
        result.error().unwrap_or("no value")
    );
    println!("9 words, counted in 3 containers");
    Ok(())
}
