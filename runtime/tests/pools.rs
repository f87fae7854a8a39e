//! Concurrency pools: `#[electron(pool = "db")]` with `[pools] db = 2` lets at most two of the
//! pool's nodes run at once in the process (shown without timing: each task waits at a
//! barrier for a partner, so one at a time would never end, and a counter of those inside
//! never passes two), a pool the configuration does not size fails its nodes saying what to
//! add, and a pool of size 0 is refused when the file is read.

covalent_test_support::isolated_home!();

use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU32, Ordering};

use covalent::prelude::*;
use covalent::{Config, ErrorKind};

static INSIDE: AtomicU32 = AtomicU32::new(0);
static MOST: AtomicU32 = AtomicU32::new(0);
static PAIRS: Barrier = Barrier::new(2);

#[electron(pool = "db")]
fn query(i: u32) -> u32 {
    let now = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
    MOST.fetch_max(now, Ordering::SeqCst);
    PAIRS.wait();
    INSIDE.fetch_sub(1, Ordering::SeqCst);
    i * 10
}

#[lattice]
fn queries(n: u32) -> Vec<u32> {
    (0..n).map(query).collect::<Vec<_>>()
}

fn config(pools: &str) -> Config {
    Config::parse(
        &format!("[sdk]\nrecord = false\nprogress = false\n{pools}"),
        Path::new("pools.toml"),
    )
    .unwrap()
}

#[test]
fn a_pool_lets_its_size_of_nodes_run_at_once() {
    let r = covalent::dispatch_sync(queries(8).with_config(config("[pools]\ndb = 2\n"))).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    assert_eq!(r.value(), Some(&(0..8).map(|i| i * 10).collect::<Vec<_>>()));
    assert_eq!(MOST.load(Ordering::SeqCst), 2, "two at a time, never more");
}

#[electron(pool = "nowhere")]
fn unsized_pool() -> u32 {
    1
}

#[lattice]
fn unsized_flow() -> u32 {
    unsized_pool()
}

#[test]
fn a_pool_the_configuration_does_not_size_fails_its_nodes_saying_what_to_add() {
    let r = covalent::dispatch_sync(unsized_flow().with_config(config(""))).unwrap();
    assert_eq!(r.status(), Status::Failed, "{r}");
    let n = r.nodes().find(|n| n.name() == "unsized_pool").unwrap();
    assert_eq!(n.error_kind(), Some(ErrorKind::Config), "{r}");
    let e = n.error().unwrap();
    assert!(e.contains("`[pools]`") && e.contains("nowhere = N"), "{e}");
}

#[test]
fn a_pool_of_size_zero_is_refused_with_its_line() {
    let e = Config::parse("[pools]\ndb = 2\nnone = 0\n", Path::new("c.toml")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("c.toml:3") && msg.contains("`none` has size 0"),
        "{msg}"
    );
}
