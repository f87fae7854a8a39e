//! The dispatches the browser test looks at (`cargo run -p covalent-cli --example ui_fixture --
//! --home DIR`): records into DIR's store a small completed workflow, a training pipeline, a
//! failed dispatch, one with a sublattice and one of 10,000 tasks, then starts a slow dispatch
//! to cancel, and prints one `NAME ID` line for each, then `ready`.
//!
//! It then reads commands on stdin, one a line: `live STEPS MS` starts a chain of STEPS tasks
//! of MS milliseconds each and prints `live ID`; `fanout N` records a fan-out of N tasks into
//! one (too big for the UI to draw node by node above 20,000) and prints `fanout ID`; `quit`
//! (or the end of stdin) stops, which interrupts whatever still runs.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use covalent::prelude::*;
use covalent::{Config, Lattice};

#[electron]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[electron]
fn multiply(x: i64, y: i64) -> i64 {
    x * y
}

#[lattice]
fn workflow(x: i64, y: i64) -> i64 {
    let r1 = add(x, y);
    multiply(y, r1)
}

/// Its input file is staged into its directory first (a transfer the drawer lists).
#[electron(files = [stage_in("inputs/sensors.csv", "sensors.csv")])]
fn load(source: String, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i * 37 + source.len()) % 101) as f64)
        .collect()
}

#[electron]
fn clean(rows: Vec<f64>, threshold: f64) -> Vec<f64> {
    rows.into_iter().filter(|r| *r < threshold).collect()
}

#[electron]
fn features(rows: Vec<f64>) -> Vec<f64> {
    rows.iter().map(|r| r / 100.0).collect()
}

#[electron]
fn split(rows: Vec<f64>) -> (Vec<f64>, Vec<f64>) {
    let cut = rows.len() * 4 / 5;
    (rows[..cut].to_vec(), rows[cut..].to_vec())
}

#[electron]
fn train(train_set: Vec<f64>, epochs: u32) -> f64 {
    train_set.iter().sum::<f64>() / train_set.len().max(1) as f64 * f64::from(epochs) / 10.0
}

#[electron]
fn evaluate(model: f64, test_set: Vec<f64>) -> f64 {
    let mean = test_set.iter().sum::<f64>() / test_set.len().max(1) as f64;
    1.0 - (model - mean).abs()
}

#[electron]
fn report(score: f64, model: f64) -> String {
    println!("score {score:.3}");
    format!("model {model:.3} scored {score:.3}")
}

/// A small pipeline with named edges: load, clean, featurize, split, train, evaluate, report.
#[lattice]
fn training(source: String, epochs: u32) -> String {
    let raw = load(source, 200);
    let cleaned = clean(raw, 90.0);
    let feats = features(cleaned);
    let (train_set, test_set) = split(feats).split();
    let model = train(train_set, epochs);
    let score = evaluate(model, test_set);
    report(score, model)
}

#[electron]
fn fails(x: i64) -> Result<i64, String> {
    Err(format!("bad input {x}: the sensor returned no data"))
}

/// One task completes, one fails, and the one after it never runs.
#[lattice]
fn broken(x: i64) -> (i64, i64) {
    let ok = add(x, 1);
    let bad = fails(x);
    (ok, multiply(bad, 2))
}

#[electron]
fn square(x: i64) -> i64 {
    x * x
}

#[electron]
fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[electron]
#[lattice]
fn fan(n: i64) -> i64 {
    let squares: Vec<Node<i64>> = (0..n).map(square).collect();
    total(squares)
}

/// A sublattice whose width comes from an upstream task.
#[lattice]
fn fanned(n: i64) -> i64 {
    let width = add(n, 1);
    multiply(fan(width), 2)
}

#[electron]
fn seed(i: u64) -> u64 {
    i
}

#[electron]
fn mix(a: u64, b: u64) -> u64 {
    (a.wrapping_mul(31).wrapping_add(b)) % 1_000_003
}

#[electron]
fn checksum(xs: Vec<u64>) -> u64 {
    xs.iter().fold(0, |acc, x| (acc * 7 + x) % 1_000_003)
}

/// `rows` x `cols` tasks; each takes two tasks of the row before it.
#[lattice]
fn grid(rows: u64, cols: u64) -> u64 {
    let n = cols as usize;
    let mut prev: Vec<Node<u64>> = (0..cols).map(seed).collect();
    for r in 1..rows as usize {
        prev = (0..n)
            .map(|c| mix(prev[c], prev[(c * 7 + r) % n]))
            .collect();
    }
    checksum(prev)
}

#[electron]
async fn nap(secs: u64) -> u64 {
    tokio::time::sleep(Duration::from_secs(secs)).await;
    secs
}

/// A task that sleeps for `secs`, with a quick one before it.
#[lattice]
fn sleepy(secs: u64) -> u64 {
    let warm = nap(0);
    let long = nap(secs);
    long.wait_for([warm])
}

#[electron]
fn step(x: u64, sleep_ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(sleep_ms));
    x + 1
}

/// A chain of `steps` tasks of `sleep_ms` each.
#[lattice]
fn chain(steps: u64, sleep_ms: u64) -> u64 {
    let mut x = step(0, sleep_ms);
    for _ in 1..steps {
        x = step(x, sleep_ms);
    }
    x
}

#[electron]
fn tick(i: u64) -> u64 {
    i + 1
}

#[electron]
fn sum_all(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// `n` tasks fanned into one.
#[lattice]
fn wide(n: u64) -> u64 {
    let xs: Vec<Node<u64>> = (0..n).map(tick).collect();
    sum_all(xs)
}

fn config(home: &Path) -> Config {
    let text = format!(
        "[sdk]\ndata_dir = {:?}\nprogress = false\n",
        home.display().to_string()
    );
    Config::parse(&text, Path::new("ui_fixture.toml")).expect("a valid configuration")
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn record<T: covalent::Value>(name: &str, lattice: Lattice<T>, home: &Path) {
    let r = covalent::dispatch_sync(lattice.with_config(config(home))).expect("dispatched");
    say(&format!("{name} {}", r.dispatch_id()));
}

#[covalent::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let home: PathBuf = args
        .iter()
        .position(|a| a == "--home")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("usage: ui_fixture --home DIR"))?;
    // Relative transfer paths resolve here: an input file for `load` to stage.
    std::fs::create_dir_all(home.join("inputs"))?;
    std::fs::write(home.join("inputs/sensors.csv"), "t,v\n0,1.5\n1,2.5\n")?;
    std::env::set_current_dir(&home)?;
    let h = home.clone();
    tokio::task::spawn_blocking(move || {
        record("completed", workflow(3, 4), &h);
        record("training", training("sensors.csv".into(), 20), &h);
        record("failed", broken(5), &h);
        record("sublattice", fanned(3), &h);
        record("big", grid(100, 100), &h);
    })
    .await?;
    let slow = covalent::dispatch(sleepy(3600).with_config(config(&home))).await?;
    say(&format!("running {}", slow.id()));
    say("ready");

    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut live = Vec::new();
    while let Some(line) = rx.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["live", steps, ms] => {
                let d = covalent::dispatch(
                    chain(steps.parse()?, ms.parse()?).with_config(config(&home)),
                )
                .await?;
                say(&format!("live {}", d.id()));
                live.push(d);
            }
            ["fanout", n] => {
                let n: u64 = n.parse()?;
                let h = home.clone();
                let r = tokio::task::spawn_blocking(move || {
                    covalent::dispatch_sync(wide(n).with_config(config(&h)))
                })
                .await??;
                say(&format!("fanout {}", r.dispatch_id()));
            }
            ["quit"] => break,
            _ => say(&format!("unknown command: {line}")),
        }
    }
    Ok(())
}
