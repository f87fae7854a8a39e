//! Running graphs: concurrency, failure semantics, panics, retries, time limits,
//! cancellation, fail-fast, async electrons.

covalent_test_support::isolated_home!();

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Barrier, LazyLock, mpsc};
use std::time::Duration;

use covalent::Status;
use covalent::prelude::*;

const N: usize = 8;
static BARRIER: LazyLock<Barrier> = LazyLock::new(|| Barrier::new(N));

/// Returns only when all N copies are running at the same time.
#[electron]
fn meet(i: usize) -> usize {
    BARRIER.wait();
    i
}

#[electron]
fn count(xs: Vec<usize>) -> usize {
    xs.len()
}

#[lattice]
fn rendezvous() -> usize {
    count((0..N).map(meet).collect::<Vec<_>>())
}

#[test]
fn all_ready_nodes_run_concurrently() {
    // With fewer than N concurrent slots the barrier would never open.
    let r = covalent::dispatch_sync(rendezvous()).unwrap();
    assert_eq!(r.value(), Some(&N));
}

static SIGNAL: LazyLock<(mpsc::SyncSender<()>, std::sync::Mutex<mpsc::Receiver<()>>)> =
    LazyLock::new(|| {
        let (tx, rx) = mpsc::sync_channel(1);
        (tx, std::sync::Mutex::new(rx))
    });

/// Blocks its thread until the async electron has run.
#[electron]
fn blocker() -> bool {
    SIGNAL
        .1
        .lock()
        .unwrap()
        .recv_timeout(Duration::from_secs(20))
        .is_ok()
}

#[electron]
async fn pinger() -> bool {
    tokio::time::sleep(Duration::from_millis(20)).await;
    SIGNAL.0.send(()).is_ok()
}

#[lattice]
fn block_and_ping() -> (bool, bool) {
    (blocker(), pinger())
}

#[tokio::test(flavor = "current_thread")]
async fn sync_electrons_never_block_the_async_runtime() {
    // One runtime thread: if the blocking electron ran on it, the async one could not.
    let r = covalent::dispatch(block_and_ping())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(r.value(), Some(&(true, true)));
}

#[electron]
fn fails(x: i64) -> Result<i64, String> {
    Err(format!("bad input {x}"))
}

#[electron]
fn boom(_x: i64) -> i64 {
    panic!("kaboom")
}

#[electron]
fn inc(x: i64) -> i64 {
    x + 1
}

#[lattice]
fn mixed() -> (i64, i64, i64) {
    let a = fails(1);
    let b = inc(a); // depends on the failure
    let c = inc(inc(10)); // independent
    let d = inc(boom(2));
    (b, c, d)
}

#[test]
fn failures_skip_dependants_and_keep_independent_branches() {
    let r = covalent::dispatch_sync(mixed()).unwrap();
    assert_eq!(r.status(), Status::Failed);
    assert_eq!(r.value(), None);
    let by_name = |name: &str| -> Vec<Status> {
        r.nodes()
            .filter(|n| n.name() == name)
            .map(|n| n.status())
            .collect()
    };
    assert_eq!(by_name("fails"), vec![Status::Failed]);
    assert_eq!(by_name("boom"), vec![Status::Failed]);
    let incs = by_name("inc");
    assert_eq!(incs.iter().filter(|s| **s == Status::NotRun).count(), 2);
    assert_eq!(incs.iter().filter(|s| **s == Status::Completed).count(), 2);
    let fail_node = r.nodes().find(|n| n.name() == "fails").unwrap();
    assert_eq!(fail_node.error().as_deref(), Some("bad input 1"));
    let boom_node = r.nodes().find(|n| n.name() == "boom").unwrap();
    let msg = boom_node.error().unwrap();
    assert!(msg.contains("panicked: kaboom"), "{msg}");
    assert!(
        msg.contains("semantics.rs"),
        "the panic location is kept: {msg}"
    );
    let err = r.error().unwrap();
    assert!(err.starts_with("The following tasks failed:"), "{err}");
    assert!(err.contains(&format!("{}: fails", fail_node.id())), "{err}");
    assert!(err.contains(&format!("{}: boom", boom_node.id())), "{err}");
    // The independent branch's value is kept.
    let c = r
        .nodes()
        .filter(|n| n.name() == "inc")
        .filter_map(|n| n.output_as::<i64>())
        .max();
    assert_eq!(c, Some(12));
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[electron(retries = 2)]
fn flaky() -> Result<u32, String> {
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 3 {
        Err(format!("attempt {n} failed"))
    } else {
        Ok(n)
    }
}

#[lattice]
fn retried() -> u32 {
    flaky()
}

#[test]
fn retries_are_enforced_and_every_attempt_is_recorded() {
    let r = covalent::dispatch_sync(retried()).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    assert_eq!(r.value(), Some(&3));
    let node = r.node(0).unwrap();
    let attempts = node.attempts();
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts[0].error.as_ref().map(|e| e.message()),
        Some("attempt 1 failed")
    );
    assert_eq!(
        attempts[0].error.as_ref().map(|e| e.kind()),
        Some(covalent::ErrorKind::User)
    );
    assert_eq!(
        attempts[1].error.as_ref().map(|e| e.message()),
        Some("attempt 2 failed")
    );
    assert_eq!(attempts[2].error, None);
}

static ALWAYS_CALLS: AtomicU32 = AtomicU32::new(0);

#[electron(retries = 1)]
async fn always_fails() -> Result<u32, String> {
    ALWAYS_CALLS.fetch_add(1, Ordering::SeqCst);
    Err("nope".to_string())
}

#[lattice]
fn exhausted() -> u32 {
    always_fails()
}

#[test]
fn exhausted_retries_fail_the_node() {
    let r = covalent::dispatch_sync(exhausted()).unwrap();
    assert_eq!(r.status(), Status::Failed);
    assert_eq!(ALWAYS_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(r.node(0).unwrap().attempt_count(), 2);
}

#[electron(time_limit = "100ms")]
fn sleepy() -> u32 {
    std::thread::sleep(Duration::from_secs(3));
    1
}

#[electron(time_limit = "100ms")]
async fn sleepy_async() -> u32 {
    tokio::time::sleep(Duration::from_secs(30)).await;
    1
}

#[lattice]
fn timed() -> (u32, u32, i64) {
    (sleepy(), sleepy_async(), inc(1))
}

#[test]
fn time_limits_fail_the_node_with_a_timeout() {
    let start = std::time::Instant::now();
    let r = covalent::dispatch_sync(timed()).unwrap();
    assert_eq!(r.status(), Status::Failed);
    for name in ["sleepy", "sleepy_async"] {
        let n = r.nodes().find(|n| n.name() == name).unwrap();
        assert_eq!(n.status(), Status::Failed);
        let e = n.error().unwrap();
        assert!(e.contains("timed out after 100ms"), "{name}: {e}");
    }
    assert_eq!(
        r.nodes().find(|n| n.name() == "inc").unwrap().status(),
        Status::Completed
    );
    // Not a timing assertion on performance: the dispatch must not wait for the 30 s sleep.
    assert!(start.elapsed() < Duration::from_secs(25));
}

#[electron]
async fn slow(x: i64) -> i64 {
    tokio::time::sleep(Duration::from_secs(30)).await;
    x
}

#[lattice]
fn fail_fast_flow() -> (i64, i64) {
    (inc(fails(1)), inc(slow(2)))
}

#[test]
fn fail_fast_cancels_the_rest() {
    let r = covalent::dispatch_sync(fail_fast_flow().fail_fast(true)).unwrap();
    assert_eq!(r.status(), Status::Failed);
    let slow = r.nodes().find(|n| n.name() == "slow").unwrap();
    assert_eq!(slow.status(), Status::Cancelled);
    let skipped: Vec<Status> = r
        .nodes()
        .filter(|n| n.name() == "inc")
        .map(|n| n.status())
        .collect();
    assert!(
        skipped
            .iter()
            .all(|s| matches!(s, Status::NotRun | Status::Cancelled)),
        "{skipped:?}"
    );
}

#[lattice]
fn cancellable() -> i64 {
    let a = slow(1);
    inc(a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_dispatch_reaches_running_nodes_and_dependants() {
    let d = covalent::dispatch(cancellable()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    d.cancel();
    let r = d.wait().await.unwrap();
    assert_eq!(r.status(), Status::Cancelled);
    assert_eq!(r.node(0).unwrap().status(), Status::Cancelled);
    assert_eq!(
        r.nodes().find(|n| n.name() == "inc").unwrap().status(),
        Status::Cancelled
    );
}

#[lattice]
fn two_branches() -> (i64, i64) {
    (inc(slow(1)), inc(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_node_leaves_the_others() {
    let d = covalent::dispatch(two_branches()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    d.cancel_nodes([0]);
    let r = d.wait().await.unwrap();
    assert_eq!(r.node(0).unwrap().status(), Status::Cancelled);
    let incs: Vec<Status> = r
        .nodes()
        .filter(|n| n.name() == "inc")
        .map(|n| n.status())
        .collect();
    assert!(
        incs.contains(&Status::Cancelled) && incs.contains(&Status::Completed),
        "{incs:?}"
    );
    assert_eq!(r.status(), Status::Cancelled);
}

#[electron]
async fn fetch(x: i64) -> i64 {
    tokio::task::yield_now().await;
    x * 10
}

#[lattice]
fn async_flow() -> i64 {
    let a = fetch(1);
    let b = fetch(2);
    add_async(a, b)
}

#[electron]
async fn add_async(a: i64, b: i64) -> i64 {
    a + b
}

#[covalent::test]
async fn async_electrons_run_on_the_runtime() {
    let r = covalent::dispatch(async_flow())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(r.value(), Some(&30));
}

#[electron]
fn needs_missing() -> i64 {
    1
}

#[test]
fn dispatch_sync_inside_a_multithreaded_runtime_works() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let v = rt.block_on(async {
        covalent::dispatch_sync(retried_free())
            .unwrap()
            .into_value()
    });
    assert_eq!(v, Some(1));
}

#[lattice]
fn retried_free() -> i64 {
    needs_missing()
}

#[test]
fn dispatch_sync_on_a_single_threaded_runtime_is_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt.block_on(async { covalent::dispatch_sync(retried_free()).unwrap_err() });
    assert!(e.to_string().contains("single-threaded"), "{e}");
}

/// The name of the thread the electron ran on.
#[electron]
fn thread_name(_step: u32) -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string()
}

#[electron]
fn both(a: String, b: String) -> (String, String) {
    (a, b)
}

#[lattice]
fn two_steps() -> (String, String) {
    both(thread_name(1), thread_name(2))
}

#[test]
fn dispatch_sync_runs_a_small_dispatch_on_the_calling_thread() {
    // No hand-off to the pool and back: the caller runs the ready electrons and their
    // continuations itself.
    let caller = std::thread::Builder::new()
        .name("the-caller".into())
        .spawn(|| covalent::dispatch_sync(two_steps()).unwrap())
        .unwrap()
        .join()
        .unwrap();
    let (a, b) = caller.value().unwrap().clone();
    assert!(
        a == "the-caller" || b == "the-caller",
        "neither step ran on the calling thread: {a}, {b}"
    );
    // The caller keeps one of the two ready steps; the other may be taken by a pool worker.
    for n in [&a, &b] {
        assert!(n == "the-caller" || n == "covalent-worker", "{n}");
    }
}

#[electron]
fn hold(i: usize, ms: u64) -> usize {
    std::thread::sleep(Duration::from_millis(ms));
    i
}

#[lattice]
fn wide(n: usize, ms: u64) -> usize {
    count((0..n).map(|i| hold(i, ms)).collect::<Vec<_>>())
}

#[test]
fn dispatch_sync_still_spreads_a_wide_dispatch_over_the_pool() {
    // 16 electrons of 50 ms: the caller runs some, the pool the others, at the same time.
    let r = covalent::dispatch_sync(wide(16, 50)).unwrap();
    assert_eq!(r.value(), Some(&16));
    let spans: Vec<_> = r
        .nodes()
        .filter(|n| n.name() == "hold")
        .map(|n| (n.start_time().unwrap(), n.end_time().unwrap()))
        .collect();
    assert_eq!(spans.len(), 16);
    // The most electrons running at one moment (at some electron's start).
    let overlap = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && s < b).count())
        .max()
        .unwrap();
    assert!(
        overlap >= 2,
        "the electrons ran one after another: {spans:?}"
    );
}
