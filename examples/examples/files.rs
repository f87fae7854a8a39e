//! Files that travel with tasks: a CSV made here is shipped to the executor, a task there
//! computes per-station means from it and writes them to a CSV of its own, which comes back
//! here (checked against the BLAKE3 taken where it was made), and a task here reads it.
//!
//! ```sh
//! cargo run --example files                      # the `process` executor (any machine)
//! FILES_EXECUTOR=ssh cargo run --example files   # the test server of scripts/sshd-up.sh
//! FILES_EXECUTOR=slurm cargo run --example files # the cluster of scripts/slurm-up.sh
//! ```
//!
//! Every transfer is recorded on its node: `covalent show <id>` lists them under
//! "File transfers".

use std::collections::BTreeMap;
use std::sync::LazyLock;

use covalent::File;
use covalent::executor::{ExecutorRef, ProcessExecutor};
use covalent::prelude::*;

/// Where `station_means` runs: `FILES_EXECUTOR` (`process`, the default; `ssh`; `slurm`).
static EXEC: LazyLock<ExecutorRef> =
    LazyLock::new(|| match std::env::var("FILES_EXECUTOR").as_deref() {
        Ok("ssh") => ExecutorRef::new(covalent_examples::test_server_ssh()),
        Ok("slurm") => ExecutorRef::new(covalent_slurm::SlurmExecutor::new()),
        _ => ExecutorRef::new(ProcessExecutor::default()),
    });

/// Runs on the executor: reads the shipped CSV, writes `means.csv` in its directory and
/// returns it (the executor brings it back).
#[electron(executor = &EXEC)]
fn station_means(measurements: File) -> Result<(usize, File), String> {
    let text = measurements.read_to_string().map_err(|e| e.to_string())?;
    let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    let mut rows = 0;
    for line in text.lines().skip(1) {
        let (station, value) = line.split_once(',').ok_or(format!("bad row `{line}`"))?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|e| format!("`{value}`: {e}"))?;
        let e = sums.entry(station.to_string()).or_default();
        e.0 += v;
        e.1 += 1;
        rows += 1;
    }
    let mut out = String::from("station,mean\n");
    for (station, (sum, n)) in &sums {
        out += &format!("{station},{:.2}\n", sum / f64::from(*n));
    }
    std::fs::write(covalent::task_dir().join("means.csv"), out).map_err(|e| e.to_string())?;
    Ok((rows, File::output("means.csv").map_err(|e| e.to_string())?))
}

/// Runs here, on the file that came back.
#[electron]
fn summary(means: (usize, File)) -> Result<String, String> {
    let (rows, file) = means;
    let text = file.read_to_string().map_err(|e| e.to_string())?;
    Ok(format!(
        "{rows} rows in, {} stations out, back at {}:\n{text}",
        text.lines().count() - 1,
        file.uri()
    ))
}

#[lattice]
fn workflow(measurements: File) -> String {
    summary(station_means(measurements))
}

fn main() -> anyhow::Result<()> {
    covalent_ssh::link();
    covalent_slurm::link();
    let dir = std::env::temp_dir().join(format!("covalent-files-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let csv = dir.join("measurements.csv");
    let mut text = String::from("station,temperature\n");
    for i in 0..300 {
        let station = ["north", "south", "east"][i % 3];
        text += &format!("{station},{}\n", 10.0 + (i % 7) as f64);
    }
    std::fs::write(&csv, text)?;
    let input = File::new(csv.to_str().expect("a UTF-8 temp dir"))?;
    let result = covalent::dispatch_sync(workflow(input))?;
    let _ = std::fs::remove_dir_all(&dir);
    println!("{result}");
    for n in result.nodes() {
        for t in n.transfers() {
            println!("{}: {}", n.name(), t.line());
        }
    }
    match result.value() {
        Some(s) => {
            println!("{s}");
            Ok(())
        }
        None => anyhow::bail!("the workflow failed: {result}"),
    }
}
