//! In-process sync electrons under time-out and cancel: a thread cannot be killed, so the node
//! and the dispatch end on time anyway, the stuck thread stops counting as a pool worker, a
//! retry never runs beside the attempt it replaces, and an electron that polls
//! `covalent::cancelled()` stops at once.

covalent_test_support::isolated_home!();

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use covalent::prelude::*;
use covalent::{ErrorKind, Status};

fn config(extra: &str) -> covalent::Config {
    covalent::Config::parse(
        &format!("[sdk]\nrecord = false\nprogress = false\n{extra}"),
        Path::new("covalent.toml"),
    )
    .unwrap()
}

/// A configuration recording into the store under `home`.
fn recorded(home: &Path) -> covalent::Config {
    covalent::Config::parse(
        &format!(
            "[sdk]\nprogress = false\ndata_dir = {:?}\n",
            home.to_str().unwrap()
        ),
        Path::new("covalent.toml"),
    )
    .unwrap()
}

/// Spins (never polling `cancelled()`) until `release` is set or 20 s pass.
fn spin_until(release: &AtomicBool) {
    let t = Instant::now();
    while !release.load(Ordering::Acquire) && t.elapsed() < Duration::from_secs(20) {
        std::hint::spin_loop();
    }
}

static RELEASE_TIMED: AtomicBool = AtomicBool::new(false);
static TIMED_STARTS: AtomicU32 = AtomicU32::new(0);

#[electron(time_limit = "100ms", retries = 2)]
fn stuck_with_limit() -> u32 {
    TIMED_STARTS.fetch_add(1, Ordering::SeqCst);
    spin_until(&RELEASE_TIMED);
    1
}

#[lattice]
fn stuck_flow() -> u32 {
    stuck_with_limit()
}

#[test]
fn a_stuck_timed_out_electron_ends_on_time_and_is_not_retried_beside_itself() {
    let t = Instant::now();
    let r = covalent::dispatch_sync(stuck_flow().with_config(config(""))).unwrap();
    let took = t.elapsed();
    // The body still spins: the dispatch ended on time anyway (limit + the grace the body gets
    // to notice), long before the body's 20 s.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(r.status(), Status::Failed);
    let n = r.nodes().find(|n| n.name() == "stuck_with_limit").unwrap();
    assert_eq!(n.error_kind(), Some(ErrorKind::TimedOut));
    let msg = n.error().unwrap();
    assert!(msg.contains("could not be stopped"), "{msg}");
    assert!(msg.contains("covalent::cancelled()"), "{msg}");
    assert!(msg.contains("executor = \"process\""), "{msg}");
    // retries = 2, but no retry ran beside the attempt that still runs.
    assert_eq!(n.attempt_count(), 1, "{:?}", n.attempts());
    assert_eq!(TIMED_STARTS.load(Ordering::SeqCst), 1);
    RELEASE_TIMED.store(true, Ordering::Release);
}

/// How many attempts of `polite` run at once, at most.
static POLITE_RUNNING: AtomicU32 = AtomicU32::new(0);
static POLITE_MAX: AtomicU32 = AtomicU32::new(0);
static POLITE_STARTS: AtomicU32 = AtomicU32::new(0);
static POLITE_STOP_LATENCY: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

#[electron(time_limit = "80ms", retries = 1)]
fn polite() -> Result<u32, String> {
    let now = POLITE_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    POLITE_MAX.fetch_max(now, Ordering::SeqCst);
    let attempt = POLITE_STARTS.fetch_add(1, Ordering::SeqCst) + 1;
    let t = Instant::now();
    let out = if attempt == 1 {
        // Works past the limit, checking now and then.
        let mut seen = None;
        while t.elapsed() < Duration::from_secs(20) {
            if covalent::cancelled() {
                seen = Some(t.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let seen = seen.expect("cancelled() turned true after the time limit");
        POLITE_STOP_LATENCY
            .lock()
            .unwrap()
            .push(seen.saturating_sub(Duration::from_millis(80)));
        Err("stopped early".to_string())
    } else {
        Ok(7)
    };
    POLITE_RUNNING.fetch_sub(1, Ordering::SeqCst);
    out
}

#[lattice]
fn polite_flow() -> u32 {
    polite()
}

#[test]
fn a_polling_electron_stops_at_its_time_limit_and_the_retry_runs_after_it() {
    let r = covalent::dispatch_sync(polite_flow().with_config(config(""))).unwrap();
    assert_eq!(r.status(), Status::Completed, "{:?}", r.error());
    assert_eq!(r.value(), Some(&7));
    let n = r.nodes().find(|n| n.name() == "polite").unwrap();
    let attempts = n.attempts();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let first = attempts[0].error.as_ref().unwrap();
    assert_eq!(first.kind(), ErrorKind::TimedOut);
    // It returned by itself: no word of a thread that could not be stopped.
    assert!(!first.message().contains("could not be stopped"), "{first}");
    assert_eq!(POLITE_MAX.load(Ordering::SeqCst), 1, "attempts overlapped");
    // It saw the flag within its own polling period (1 ms) plus scheduling, far under 10 ms.
    let lat = POLITE_STOP_LATENCY.lock().unwrap()[0];
    assert!(lat < Duration::from_millis(10), "{lat:?}");
}

static RELEASE_POOL: AtomicBool = AtomicBool::new(false);
static POOL_SPIN_DONE: AtomicBool = AtomicBool::new(false);

/// A pool electron (no time limit) that ignores cancellation.
#[electron]
fn deaf() -> u32 {
    spin_until(&RELEASE_POOL);
    POOL_SPIN_DONE.store(true, Ordering::Release);
    2
}

#[electron]
fn after_deaf(x: u32) -> u32 {
    x + 1
}

#[lattice]
fn deaf_flow() -> u32 {
    after_deaf(deaf())
}

/// Two electrons that each wait (up to 5 s) until both run at once.
static MEET: LazyLock<(Mutex<u32>, Condvar)> = LazyLock::new(|| (Mutex::new(0), Condvar::new()));

#[electron]
fn meet_pair(i: u32) -> bool {
    let (m, c) = &*MEET;
    let mut n = m.lock().unwrap();
    *n += 1;
    c.notify_all();
    let (n, _) = c
        .wait_timeout_while(n, Duration::from_secs(5), |n| *n < 2)
        .unwrap();
    let _ = i;
    *n >= 2
}

#[lattice]
fn pair() -> Vec<bool> {
    vec![meet_pair(0), meet_pair(1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_gives_up_a_deaf_pool_electron_on_time_and_frees_its_worker_slot() {
    // Two pool threads at most (on top of stuck ones, which no longer count).
    let cfg = std::sync::Arc::new(config("[executors.local]\nmax_workers = 2\n"));
    let d = covalent::dispatch(deaf_flow().with_config(cfg.clone()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    d.cancel();
    let r1 = d.wait().await.unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_millis(500), "wait took {took:?}");
    let r = &r1;
    assert!(
        !POOL_SPIN_DONE.load(Ordering::Acquire),
        "the body still spins"
    );
    assert_eq!(r.status(), Status::Cancelled);
    let n = r.nodes().find(|n| n.name() == "deaf").unwrap();
    assert_eq!(n.status(), Status::Cancelled);
    assert_eq!(n.error_kind(), Some(ErrorKind::Cancelled));
    assert!(
        n.error().unwrap().contains("could not be stopped"),
        "{:?}",
        n.error()
    );
    let after = r.nodes().find(|n| n.name() == "after_deaf").unwrap();
    assert_eq!(after.status(), Status::Cancelled);

    // The stuck thread is not a worker any more: two electrons still meet with a cap of two.
    let r = covalent::dispatch(pair().with_config(cfg))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(r.value(), Some(&vec![true, true]));

    // When the body finally returns, its late value is dropped: the node stays CANCELLED.
    RELEASE_POOL.store(true, Ordering::Release);
    covalent_test_support::settle("the deaf body returns", || {
        POOL_SPIN_DONE
            .load(Ordering::Acquire)
            .then_some(())
            .ok_or_else(|| "still spinning".to_string())
    });
    let n = r1.nodes().find(|n| n.name() == "deaf").unwrap();
    assert_eq!(n.status(), Status::Cancelled);
    assert!(n.output().is_none());
}

static RECORDED_RELEASE: AtomicBool = AtomicBool::new(false);

#[electron]
fn deaf_recorded() -> u32 {
    spin_until(&RECORDED_RELEASE);
    3
}

#[lattice]
fn deaf_recorded_flow() -> u32 {
    deaf_recorded()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn covalent_cancel_from_the_store_ends_the_record_on_time() {
    let home = tempfile::tempdir().unwrap();
    let cfg = recorded(home.path());
    let store_path = cfg.store_path();
    let d = covalent::dispatch(deaf_recorded_flow().with_config(cfg))
        .await
        .unwrap();
    let id = d.id();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // What `covalent cancel ID` does: a request through the store, from anywhere.
    let store = covalent::store::Store::open(&store_path).unwrap();
    let t = Instant::now();
    store.request_cancel(id, &[]).unwrap();
    let mut status = Status::Running;
    while t.elapsed() < Duration::from_secs(5) {
        status = store.get(id).unwrap().status;
        if status != Status::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = t.elapsed();
    assert_eq!(status, Status::Cancelled);
    assert!(took < Duration::from_millis(250), "took {took:?}");
    let r = d.wait().await.unwrap();
    assert_eq!(r.status(), Status::Cancelled);
    RECORDED_RELEASE.store(true, Ordering::Release);
}

static PARTIAL_STARTED: AtomicBool = AtomicBool::new(false);

/// Works until cancelled, then returns what it has (a partial value).
#[electron]
fn partial_sum() -> u64 {
    PARTIAL_STARTED.store(true, Ordering::Release);
    let t = Instant::now();
    let mut n = 0u64;
    while !covalent::cancelled() && t.elapsed() < Duration::from_secs(20) {
        n += 1;
        std::thread::sleep(Duration::from_micros(100));
    }
    n
}

#[lattice]
fn partial_flow() -> u64 {
    partial_sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_returned_after_a_cancel_is_discarded_and_not_recorded() {
    let home = tempfile::tempdir().unwrap();
    let cfg = recorded(home.path());
    let store_path = cfg.store_path();
    let d = covalent::dispatch(partial_flow().with_config(cfg))
        .await
        .unwrap();
    let id = d.id();
    while !PARTIAL_STARTED.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    d.cancel();
    let r = d.wait().await.unwrap();
    assert_eq!(r.status(), Status::Cancelled);
    let n = r.nodes().find(|n| n.name() == "partial_sum").unwrap();
    assert_eq!(n.status(), Status::Cancelled);
    assert!(n.output().is_none());
    // It returned by itself (within the grace): no word of a stuck thread.
    let msg = n.error().unwrap();
    assert!(
        msg.contains("the value it returned afterwards was discarded"),
        "{msg}"
    );
    let rec = covalent::store::Store::open(&store_path)
        .unwrap()
        .get(id)
        .unwrap();
    let stored = rec.nodes.iter().find(|n| n.name == "partial_sum").unwrap();
    assert_eq!(stored.status, Status::Cancelled);
    assert!(stored.output.is_none(), "{:?}", stored.output);
    assert!(rec.output.is_none());
}
