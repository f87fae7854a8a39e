//! Per-task cost of the `container` executor, against a bare `podman run` of the same work.
//!
//! One trivial electron per dispatch, N times in a row, interleaved with the same container
//! run by hand: the same engine flags, image, mounts and worker command (this binary, in worker
//! mode, on a task envelope written beforehand).
//!
//! Run where `scripts/podman-image.sh` has set podman up:
//!
//! ```sh
//! cargo run --release -p covalent-container --example container_overhead -- 20
//! ```
//!
//! Prints the median and mean wall time per task of each, and the ratio.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use covalent::executor::worker::{PROTOCOL, RESULT_ENV, TASK_ENV, TaskEnvelope};
use covalent::prelude::*;
use covalent_test_support::median_mean_ms;

const IMAGE: &str = "localhost/covalent-worker:latest";

#[electron(executor = "container")]
fn trivial(x: i64) -> i64 {
    x + 1
}

#[lattice]
fn one(x: i64) -> i64 {
    trivial(x)
}

fn config() -> covalent::Config {
    let text = format!(
        "[sdk]\nrecord = false\nprogress = false\n\n[executors.container]\nengine = \"podman\"\nimage = \"{IMAGE}\"\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nnetwork = \"none\"\n"
    );
    covalent::Config::parse(&text, Path::new("overhead.toml")).expect("config")
}

fn executor_run(i: i64) -> Duration {
    let t0 = Instant::now();
    let r = covalent::dispatch_sync(one(i).with_config(config())).expect("dispatch");
    let took = t0.elapsed();
    assert_eq!(r.value(), Some(&(i + 1)), "{r}");
    took
}

/// `podman run` of the same task, with the executor's flags.
fn bare_run(dir: &Path, i: usize) -> Duration {
    let _ = std::fs::remove_file(dir.join("result.json"));
    let bin = std::env::current_exe().expect("binary");
    let t0 = Instant::now();
    let status = Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs", "run"])
        .args([
            "--name",
            &format!("covalent-bare-{}-{i}", std::process::id()),
        ])
        .args([
            "--pull",
            "never",
            "--workdir",
            "/covalent/task",
            "--rm",
            "--init",
        ])
        .args(["--network", "none"])
        .arg("--volume")
        .arg(format!("{}:/covalent/bin/worker:ro", bin.display()))
        .arg("--volume")
        .arg(format!("{}:/covalent/task", dir.display()))
        .args(["--env", &format!("{TASK_ENV}=/covalent/task/task.json")])
        .args(["--env", &format!("{RESULT_ENV}=/covalent/task/result.json")])
        .args([IMAGE, "/covalent/bin/worker"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("podman");
    let took = t0.elapsed();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        dir.join("result.json").exists(),
        "the bare run wrote no result"
    );
    took
}

fn main() {
    covalent_container::link(); // nothing else here names the crate: this registers `container`
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let def = trivial::electron();
    TaskEnvelope {
        protocol: PROTOCOL,
        covalent: "bench".into(),
        electron: def.path.into(),
        digest: def.digest.into(),
        inputs: vec![serde_json::json!(1)],
        dispatch_id: "bench".into(),
        node_id: 0,
        attempt: 1,
        deps_bash: vec![],
        hooks: vec![],
        build: None,
        files: Default::default(),
        assigned: None,
    }
    .write(&dir.path().join("task.json"))
    .expect("envelope");
    executor_run(0);
    bare_run(dir.path(), 0);
    let (mut ex, mut bare) = (Vec::new(), Vec::new());
    for i in 0..n {
        ex.push(executor_run(i as i64));
        bare.push(bare_run(dir.path(), i + 1));
    }
    let (ex_med, ex_mean) = median_mean_ms(&mut ex);
    let (b_med, b_mean) = median_mean_ms(&mut bare);
    println!("container executor overhead, {n} trivial tasks one after another (ms per task)");
    println!("  covalent container executor (podman):  median {ex_med:6.1}  mean {ex_mean:6.1}");
    println!("  bare podman run, same flags:           median {b_med:6.1}  mean {b_mean:6.1}");
    println!(
        "  ratio: {:.2}x (median), {:.2}x (mean)",
        ex_med / b_med,
        ex_mean / b_mean
    );
}
