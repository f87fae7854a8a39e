//! Every form of `#[electron]`: sync, async, `Result` returns, every option, plain calls.

use std::sync::LazyLock;

use covalent::prelude::*;
use covalent::executor::{ExecutorRef, LocalExecutor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

/// Documented electrons keep their docs.
#[electron]
fn norm(p: Point) -> f64 {
    (p.x * p.x + p.y * p.y).sqrt()
}

#[electron]
async fn later(x: i64) -> i64 {
    x + 1
}

#[electron]
fn checked(x: i64) -> Result<i64, String> {
    if x >= 0 { Ok(x) } else { Err(format!("{x} is negative")) }
}

#[electron]
fn parsed(s: String) -> std::result::Result<u8, std::num::ParseIntError> {
    s.parse()
}

#[electron]
fn unit() {}

#[electron]
fn with_mut(mut v: Vec<i64>) -> Vec<i64> {
    v.push(0);
    v
}

fn prepare() {}

fn cleanup() -> Result<(), String> {
    Ok(())
}

static SHARED: LazyLock<ExecutorRef> = LazyLock::new(|| ExecutorRef::new(LocalExecutor::default()));

#[electron(executor = "local", name = "all options", retries = 3, time_limit = "1m 30s")]
fn all_options(x: i64) -> i64 {
    x
}

#[electron(executor = &SHARED, deps_bash = ["true"], call_before = [prepare], call_after = cleanup)]
fn hooked(x: i64) -> i64 {
    x
}

#[electron(executor = LocalExecutor::default(), deps_bash = "true")]
fn by_value(x: i64) -> i64 {
    x
}

#[electron(time_limit = "250ms")]
pub fn public(x: i64) -> i64 {
    x
}

#[lattice]
fn flow() -> (f64, i64, i64, u8, i64) {
    let n = norm(Point { x: 3.0, y: 4.0 });
    let l = later(1);
    let c = checked(5);
    let p = parsed("7".to_string());
    let _ = unit();
    let _ = with_mut(vec![1]);
    let a = all_options(hooked(by_value(public(9))));
    (n, l, c, p, a)
}

fn main() {
    assert_eq!(norm::call(Point { x: 3.0, y: 4.0 }), 5.0);
    assert_eq!(checked::call(-1), Err("-1 is negative".to_string()));
    let r = covalent::dispatch_sync(flow()).unwrap();
    assert_eq!(r.value(), Some(&(5.0, 2, 5, 7, 9)));
    assert!(r.nodes().any(|n| n.name() == "all options"));
}
