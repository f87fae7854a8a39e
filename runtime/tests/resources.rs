//! Resource admission on the executors of this machine: electrons declare what they need
//! (`cpus`, `memory`, `gpus`, named `resources`), the executor instance admits a node only
//! while its needs fit what is free, and hands the task its share (`covalent::assigned()`,
//! `CUDA_VISIBLE_DEVICES` for a `process` task). Shown without timing: tasks wait at a
//! barrier for a partner (one at a time would never end) and count those inside.

covalent_test_support::isolated_home!();

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Barrier, Mutex};

use covalent::prelude::*;
use covalent::{Config, ErrorKind};

fn config() -> Config {
    Config::parse(
        "[sdk]\nrecord = false\nprogress = false\n\
         [executors.local]\ncpus = 2\ngpus = 2\nmemory = \"8G\"\nresources = { lic = 1 }\n\
         [executors.process]\ngpus = 2\n",
        Path::new("resources.toml"),
    )
    .unwrap()
}

static INSIDE: AtomicU32 = AtomicU32::new(0);
static MOST: AtomicU32 = AtomicU32::new(0);
static PAIRS: Barrier = Barrier::new(2);
static GPU_PAIRS: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());

#[electron(cpus = 1, gpus = 1, memory = "1G")]
fn on_a_gpu(i: u32) -> Vec<u32> {
    let now = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
    MOST.fetch_max(now, Ordering::SeqCst);
    let mine = covalent::assigned().expect("an assignment").gpus;
    GPU_PAIRS.lock().unwrap().push(mine.clone());
    PAIRS.wait();
    INSIDE.fetch_sub(1, Ordering::SeqCst);
    let _ = i;
    mine
}

#[lattice]
fn gpu_work(n: u32) -> Vec<Vec<u32>> {
    (0..n).map(on_a_gpu).collect::<Vec<_>>()
}

#[test]
fn nodes_are_admitted_while_their_needs_fit_and_get_distinct_gpus() {
    let r = covalent::dispatch_sync(gpu_work(6).with_config(config())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    assert_eq!(MOST.load(Ordering::SeqCst), 2, "two GPUs: two at a time");
    let got = r.value().unwrap();
    for ids in got {
        assert_eq!(ids.len(), 1, "{got:?}");
        assert!(ids[0] < 2, "{got:?}");
    }
    // Whoever met at the barrier held the two GPUs, one each.
    let pairs = GPU_PAIRS.lock().unwrap();
    for pair in pairs.chunks(2) {
        let mut both: Vec<u32> = pair.iter().flatten().copied().collect();
        both.sort();
        assert_eq!(both, [0, 1], "{pairs:?}");
    }
}

#[electron(executor = "process", gpus = 1)]
fn sees_its_gpu() -> (String, Vec<u32>) {
    (
        std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default(),
        covalent::assigned().map(|a| a.gpus).unwrap_or_default(),
    )
}

#[lattice]
fn process_gpu() -> (String, Vec<u32>) {
    sees_its_gpu()
}

#[test]
fn a_process_task_sees_only_the_gpus_it_was_given() {
    let r = covalent::dispatch_sync(process_gpu().with_config(config())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let (env, ids) = r.value().cloned().unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(env, ids[0].to_string());
}

#[electron(cpus = 64)]
fn too_big() -> u32 {
    1
}

#[electron(resources = [("lic", 2)])]
fn two_licences() -> u32 {
    1
}

#[lattice]
fn impossible() -> (u32, u32) {
    (too_big(), two_licences())
}

#[test]
fn a_need_larger_than_the_whole_executor_fails_at_once_saying_so() {
    let r = covalent::dispatch_sync(impossible().with_config(config())).unwrap();
    assert_eq!(r.status(), Status::Failed, "{r}");
    let n = r.nodes().find(|n| n.name() == "too_big").unwrap();
    assert_eq!(n.error_kind(), Some(ErrorKind::Config), "{r}");
    assert!(n.error().unwrap().contains("64 cpus (it has 2)"), "{r}");
    let n = r.nodes().find(|n| n.name() == "two_licences").unwrap();
    assert!(n.error().unwrap().contains("2 of `lic` (it has 1)"), "{r}");
}
