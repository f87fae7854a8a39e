//! The store: what is recorded, reading it back, redispatch with reuse, cancel requests, and
//! files that are not ours.

covalent_test_support::isolated_home!();

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use covalent::Config;
use covalent::prelude::*;
use covalent::store::{Store, StoreError};

fn temp_config() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(
        &format!(
            "[sdk]\ndata_dir = {:?}\nprogress = false\n",
            dir.path().display().to_string()
        ),
        Path::new("test.toml"),
    )
    .unwrap();
    (dir, cfg)
}

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

#[test]
fn purge_removes_everything_a_dispatch_left_in_the_store() {
    let (_dir, cfg) = temp_config();
    let path = cfg.store_path();
    let r = covalent::dispatch_sync(workflow(3, 4).with_config(cfg)).unwrap();
    let rows = |table: &str| -> i64 {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.query_row(
            &format!("SELECT count(*) FROM {table} WHERE dispatch_id = ?1"),
            [r.dispatch_id().to_string()],
            |row| row.get(0),
        )
        .unwrap()
    };
    // A dispatch over before its first batch is one row, its graph and node log in it.
    let inline = |column: &str| -> i64 {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.query_row(
            &format!("SELECT count({column}) FROM dispatches WHERE id = ?1"),
            [r.dispatch_id().to_string()],
            |row| row.get(0),
        )
        .unwrap()
    };
    assert_eq!((inline("graph"), inline("nodes")), (1, 1));
    assert_eq!((rows("graphs"), rows("node_log")), (0, 0));
    // One that runs for longer is written as it goes, into the graph and log tables.
    let slow = covalent::dispatch_sync(unhurried().with_config(cfg_again(&path))).unwrap();
    let slow_rows = |table: &str| -> i64 {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.query_row(
            &format!("SELECT count(*) FROM {table} WHERE dispatch_id = ?1"),
            [slow.dispatch_id().to_string()],
            |row| row.get(0),
        )
        .unwrap()
    };
    assert_eq!(slow_rows("graphs"), 1);
    assert!(slow_rows("node_log") > 0);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store
            .get(slow.dispatch_id())
            .unwrap()
            .value::<i64>()
            .unwrap(),
        Some(2)
    );
    assert_eq!(store.purge(None, true).unwrap(), 2);
    assert!(store.get(r.dispatch_id()).is_err());
    assert!(store.get(slow.dispatch_id()).is_err());
    assert_eq!((slow_rows("graphs"), slow_rows("node_log")), (0, 0));
    let c = rusqlite::Connection::open(&path).unwrap();
    for table in ["dispatches", "graphs", "node_log"] {
        let n: i64 = c
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table} still has rows");
    }
}

#[electron]
fn pause(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(150));
    x
}

/// Runs for longer than the journal's first tick.
#[lattice]
fn unhurried() -> i64 {
    add(pause(1), 1)
}

/// A config on the store at `path` (the temp dir of [`temp_config`]).
fn cfg_again(path: &Path) -> Config {
    Config::parse(
        &format!(
            "[sdk]\ndata_dir = {:?}\nprogress = false\n",
            path.parent().unwrap().display().to_string()
        ),
        Path::new("test.toml"),
    )
    .unwrap()
}

#[test]
fn a_dispatch_is_recorded_and_reads_back_as_it_ran() {
    let (_dir, cfg) = temp_config();
    let path = cfg.store_path();
    let r = covalent::dispatch_sync(workflow(3, 4).with_config(cfg)).unwrap();
    let store = Store::open(&path).unwrap();
    let rec = store.get(r.dispatch_id()).unwrap();
    let live = r.to_record();
    assert_eq!(rec.status, Status::Completed);
    assert_eq!(rec.value::<i64>().unwrap(), Some(28));
    assert_eq!(rec.lattice, "workflow");
    assert_eq!(rec.inputs, live.inputs);
    assert_eq!(rec.nodes.len(), live.nodes.len());
    for (a, b) in rec.nodes.iter().zip(&live.nodes) {
        assert_eq!(
            (a.id, &a.name, a.status, &a.output),
            (b.id, &b.name, b.status, &b.output)
        );
        assert_eq!(a.inputs, b.inputs);
        assert_eq!(a.executor, b.executor, "node {}", a.id);
    }
    assert_eq!(rec.task_count(), 2);
    assert_eq!(rec.done_count(), 2);
    let text = rec.to_string();
    assert!(
        text.contains("result: 28") && text.contains("multiply(3): 28"),
        "{text}"
    );
    let listed = store.list(&Default::default()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].done, listed[0].total), (2, 2));
}

#[test]
fn recording_can_be_turned_off() {
    let (_dir, cfg) = temp_config();
    let path = cfg.store_path();
    let r = covalent::dispatch_sync(workflow(1, 2).with_config(cfg).record(false)).unwrap();
    assert_eq!(r.value(), Some(&6));
    let store = Store::open(&path).unwrap();
    assert!(matches!(
        store.get(r.dispatch_id()),
        Err(StoreError::UnknownDispatch { .. })
    ));
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[electron]
fn counted(x: i64) -> i64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * 10
}

#[electron]
fn checked(x: i64) -> Result<i64, String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if x < 0 {
        Err(format!("{x} is negative"))
    } else {
        Ok(x)
    }
}

#[electron]
fn total(xs: Vec<i64>) -> i64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    xs.iter().sum()
}

#[lattice]
fn reusable(a: i64, b: i64) -> i64 {
    let parts = vec![counted(1), counted(2), counted(a)];
    let s = total(parts);
    add(s, checked(b))
}

#[electron]
fn tenfold(x: i64) -> i64 {
    x * 100
}

/// Serializes the tests that count electron runs.
static COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn redispatch_reuses_unchanged_nodes_and_runs_only_what_changed() {
    let _guard = COUNTING.lock().unwrap();
    let (_dir, cfg) = temp_config();
    let cfg = std::sync::Arc::new(cfg);
    RUNS.store(0, Ordering::SeqCst);
    let first = covalent::dispatch_sync(reusable(3, 1).with_config(cfg.clone())).unwrap();
    assert_eq!(first.value(), Some(&61));
    assert_eq!(RUNS.load(Ordering::SeqCst), 5);

    // Same inputs: nothing runs again.
    RUNS.store(0, Ordering::SeqCst);
    let same = covalent::dispatch_sync(
        reusable(3, 1)
            .with_config(cfg.clone())
            .reuse(first.dispatch_id()),
    )
    .unwrap();
    assert_eq!(same.value(), Some(&61));
    assert_eq!(RUNS.load(Ordering::SeqCst), 0);
    let reused = same
        .nodes()
        .filter(|n| n.status() == Status::Reused)
        .count();
    assert!(reused >= 6, "{same}");

    // A new input: only the nodes downstream of it run.
    RUNS.store(0, Ordering::SeqCst);
    let changed = covalent::dispatch_sync(
        reusable(4, 1)
            .with_config(cfg.clone())
            .reuse(first.dispatch_id()),
    )
    .unwrap();
    assert_eq!(changed.value(), Some(&71));
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        2,
        "counted(4) and total; {changed}"
    );
    let stored = Store::open(&cfg.store_path())
        .unwrap()
        .get(changed.dispatch_id())
        .unwrap();
    assert_eq!(
        stored
            .nodes
            .iter()
            .filter(|n| n.status == Status::Reused)
            .count(),
        changed
            .nodes()
            .filter(|n| n.status() == Status::Reused)
            .count()
    );

    // A failed dispatch re-run with a fixed input runs only what failed.
    RUNS.store(0, Ordering::SeqCst);
    let failed = covalent::dispatch_sync(reusable(3, -1).with_config(cfg.clone())).unwrap();
    assert_eq!(failed.status(), Status::Failed);
    RUNS.store(0, Ordering::SeqCst);
    let fixed = covalent::dispatch_sync(
        reusable(3, 1)
            .with_config(cfg.clone())
            .reuse(failed.dispatch_id()),
    )
    .unwrap();
    assert_eq!(fixed.value(), Some(&61));
    assert_eq!(RUNS.load(Ordering::SeqCst), 1, "only checked(1); {fixed}");

    // Replacing an electron re-runs it and what depends on it.
    RUNS.store(0, Ordering::SeqCst);
    let replaced = covalent::dispatch_sync(
        reusable(3, 1)
            .with_config(cfg.clone())
            .reuse(first.dispatch_id())
            .replace_electron(counted::electron(), tenfold::electron())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(replaced.value(), Some(&601));
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        1,
        "total runs again, counted is gone"
    );
    let names: Vec<&str> = replaced
        .nodes()
        .filter(|n| !n.is_internal())
        .map(|n| n.name())
        .collect();
    assert!(
        names.contains(&"tenfold") && !names.contains(&"counted"),
        "{names:?}"
    );
}

#[test]
fn a_replacement_with_another_signature_is_refused() {
    let e = reusable(1, 1)
        .replace_electron(counted::electron(), total::electron())
        .unwrap_err();
    assert!(e.to_string().contains("types differ"), "{e}");
}

#[electron]
fn width(n: i64) -> i64 {
    n
}

#[electron]
#[lattice]
fn fan(n: i64) -> i64 {
    total((0..n).map(counted).collect::<Vec<_>>())
}

#[lattice]
fn with_sub(n: i64) -> i64 {
    fan(width(n))
}

#[test]
fn sublattice_nodes_are_recorded_under_their_parent() {
    let _guard = COUNTING.lock().unwrap();
    let (_dir, cfg) = temp_config();
    let path = cfg.store_path();
    let r = covalent::dispatch_sync(with_sub(3).with_config(cfg)).unwrap();
    assert_eq!(r.value(), Some(&30));
    let rec = Store::open(&path).unwrap().get(r.dispatch_id()).unwrap();
    let sub = rec
        .nodes
        .iter()
        .find_map(|n| n.sublattice.clone())
        .expect("child graph");
    assert_eq!(sub.lattice, "fan");
    assert_eq!(sub.status, Status::Completed);
    let counted: Vec<_> = sub.nodes.iter().filter(|n| n.name == "counted").collect();
    assert_eq!(counted.len(), 3);
    assert!(
        counted
            .iter()
            .all(|n| n.status == Status::Completed && n.output.is_some())
    );
}

#[electron]
async fn slow(x: i64) -> i64 {
    tokio::time::sleep(Duration::from_secs(30)).await;
    x
}

#[lattice]
fn slow_flow() -> i64 {
    add(slow(1), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_in_the_store_cancels_the_running_dispatch() {
    let (_dir, cfg) = temp_config();
    let path = cfg.store_path();
    let d = covalent::dispatch(slow_flow().with_config(cfg))
        .await
        .unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.status(d.id()).unwrap(), Status::Running);
    assert_eq!(store.request_cancel(d.id(), &[]).unwrap(), Status::Running);
    let r = d.wait().await.unwrap();
    assert_eq!(r.status(), Status::Cancelled);
    let rec = store.get(r.dispatch_id()).unwrap();
    assert_eq!(rec.status, Status::Cancelled);
    assert_eq!(rec.node(0).unwrap().status, Status::Cancelled);
    assert_eq!(
        rec.nodes.iter().find(|n| n.name == "add").unwrap().status,
        Status::Cancelled
    );
    // An ended dispatch: nothing to do.
    assert_eq!(
        store.request_cancel(r.dispatch_id(), &[]).unwrap(),
        Status::Cancelled
    );
}

#[test]
fn unknown_ids_and_prefixes_are_clear_errors() {
    let (_dir, cfg) = temp_config();
    let path = cfg.store_path();
    let r = covalent::dispatch_sync(workflow(3, 4).with_config(cfg)).unwrap();
    let store = Store::open(&path).unwrap();
    let id = r.dispatch_id().to_string();
    assert_eq!(store.resolve(&id[..13]).unwrap(), r.dispatch_id());
    let e = store.resolve("ffffffff").unwrap_err().to_string();
    assert!(e.contains("no dispatch `ffffffff`"), "{e}");
    let e = store.get(covalent::Uuid::nil()).unwrap_err().to_string();
    assert!(e.contains("00000000-0000-0000-0000-000000000000"), "{e}");
    let e = store.resolve("not an id").unwrap_err().to_string();
    assert!(e.contains("not an id"), "{e}");
}

fn open_err(path: &Path) -> String {
    Store::open(path).unwrap_err().to_string()
}

#[test]
fn files_that_are_not_our_store_are_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    let e = open_err(&garbage);
    assert!(
        e.contains("garbage.db") && e.contains("not a usable covalent store"),
        "{e}"
    );
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![0x42u8; 8192]);

    let foreign = dir.path().join("foreign.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);")
            .unwrap();
    }
    let before = std::fs::read(&foreign).unwrap();
    let e = open_err(&foreign);
    assert!(
        e.contains("foreign.db") && e.contains("another application"),
        "{e}"
    );
    assert_eq!(std::fs::read(&foreign).unwrap(), before);

    let newer = dir.path().join("newer.db");
    {
        let c = rusqlite::Connection::open(&newer).unwrap();
        c.execute_batch(
            "PRAGMA application_id = 1129272908; PRAGMA user_version = 99; CREATE TABLE dispatches (id TEXT);",
        )
        .unwrap();
    }
    let before = std::fs::read(&newer).unwrap();
    let e = open_err(&newer);
    assert!(
        e.contains("newer.db") && e.contains("newer covalent") && e.contains("99"),
        "{e}"
    );
    assert_eq!(std::fs::read(&newer).unwrap(), before);

    // A place where no store can be created.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let e = open_err(&blocker.join("covalent.db"));
    assert!(
        e.contains("a-file") && e.contains("cannot create the directory"),
        "{e}"
    );
}

#[test]
fn a_dispatch_into_a_bad_store_fails_clearly_before_running() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("covalent.db"),
        b"not sqlite at all, just text",
    )
    .unwrap();
    let cfg = Config::parse(
        &format!("[sdk]\ndata_dir = {:?}\n", dir.path().display().to_string()),
        Path::new("t.toml"),
    )
    .unwrap();
    let e = covalent::dispatch_sync(workflow(1, 1).with_config(cfg)).unwrap_err();
    assert!(e.to_string().contains("covalent.db"), "{e}");
}

#[electron(retries = 1)]
fn refuses(x: i64) -> Result<i64, String> {
    Err(format!("refused {x}"))
}

#[electron(time_limit = "50ms")]
async fn dawdles() -> i64 {
    tokio::time::sleep(Duration::from_secs(5)).await;
    1
}

#[electron]
fn expects_text(s: String) -> String {
    s
}

#[lattice]
fn kinds() -> (i64, i64, String) {
    (refuses(1), dawdles(), expects_text("fine".to_string()))
}

#[test]
fn failure_kinds_are_recorded_beside_their_messages() {
    let (_dir, cfg) = temp_config();
    let path = cfg.store_path();
    let r = covalent::dispatch_sync(kinds().with_config(cfg)).unwrap();
    assert_eq!(r.status(), Status::Failed, "{r}");
    let by_name = |name: &str| r.nodes().find(|n| n.name() == name).unwrap();
    let live = by_name("refuses");
    assert_eq!(live.error_kind(), Some(covalent::ErrorKind::User));
    assert_eq!(live.error().as_deref(), Some("refused 1"));
    // A user error is retried; both attempts keep their kind.
    let attempts = live.attempts();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts
            .iter()
            .all(|a| a.error.as_ref().map(|e| e.kind()) == Some(covalent::ErrorKind::User))
    );
    let timed = by_name("dawdles");
    assert_eq!(timed.error_kind(), Some(covalent::ErrorKind::TimedOut));

    let rec = Store::open(&path).unwrap().get(r.dispatch_id()).unwrap();
    let recorded = |name: &str| rec.nodes.iter().find(|n| n.name == name).unwrap();
    let n0 = recorded("refuses");
    assert_eq!(n0.error.as_deref(), Some("refused 1"));
    assert_eq!(n0.error_kind, Some(covalent::ErrorKind::User));
    assert_eq!(n0.attempts.len(), 2);
    assert_eq!(n0.attempts[1].error_kind, Some(covalent::ErrorKind::User));
    assert_eq!(
        recorded("dawdles").error_kind,
        Some(covalent::ErrorKind::TimedOut)
    );
    assert_eq!(recorded("expects_text").error_kind, None);
    let json = serde_json::to_value(n0).unwrap();
    assert_eq!(json["error_kind"], "user");
}

#[test]
fn listing_takes_search_text_literally_and_huge_offsets_as_past_the_end() {
    let (_dir, cfg) = temp_config();
    let path = cfg.store_path();
    covalent::dispatch_sync(workflow(1, 2).with_config(cfg)).unwrap();
    let store = Store::open(&path).unwrap();
    let list = |filter: covalent::store::ListFilter| store.list(&filter).unwrap().len();
    assert_eq!(list(Default::default()), 1);
    let search = |text: &str| covalent::store::ListFilter {
        search: Some(text.to_string()),
        ..Default::default()
    };
    assert_eq!(list(search("flow")), 1, "a part of the name matches");
    for wildcard in ["%", "_", "work_low", "w%w"] {
        assert_eq!(list(search(wildcard)), 0, "`{wildcard}` is not a wildcard");
    }
    let far = covalent::store::ListFilter {
        offset: usize::MAX,
        ..Default::default()
    };
    assert_eq!(list(far), 0, "an offset past the end lists nothing");
    let all = covalent::store::ListFilter {
        limit: Some(usize::MAX),
        ..Default::default()
    };
    assert_eq!(list(all), 1);
}

/// Dispatches recorded back to back, as a parameter sweep does: the write-ahead log is moved
/// into the database as they go and starts again from its first frame, so it stays a few
/// megabytes (left unchecked, it grew by about 40 KB per dispatch for as long as they ran).
#[test]
fn the_write_ahead_log_stays_small_while_dispatches_follow_each_other() {
    let (_dir, cfg) = temp_config();
    let wal = cfg.store_path().with_extension("db-wal");
    let cfg = std::sync::Arc::new(cfg);
    let mut largest = 0;
    for i in 0..3000 {
        let r = covalent::dispatch_sync(workflow(i, 2).with_config(cfg.clone())).unwrap();
        assert_eq!(r.value().copied(), Some(2 * (i + 2)));
        if i % 100 == 0 {
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
    }
    assert!(
        largest < 32 << 20,
        "the log reached {largest} bytes over 3000 small dispatches"
    );
    let store = Store::open(&cfg.store_path()).unwrap();
    assert_eq!(store.list(&Default::default()).unwrap().len(), 3000);
}

#[lattice]
fn many_subs(n: i64) -> i64 {
    let parts: Vec<Node<i64>> = (0..n).map(|i| fan(width(i % 3))).collect();
    total(parts)
}

/// A page of a dispatch's nodes is exactly that slice of its whole record (sublattices under
/// its nodes included), with the count to page through; internal nodes count only when asked.
#[test]
fn a_page_of_nodes_is_the_same_slice_of_the_whole_record() {
    let _guard = COUNTING.lock().unwrap();
    let (_dir, cfg) = temp_config();
    let path = cfg.store_path();
    // Written whole in one row; with sublattices; and batch by batch while it ran.
    for run in 0..3 {
        let cfg = cfg_again(&path);
        let r = match run {
            0 => covalent::dispatch_sync(workflow(3, 4).with_config(cfg)).unwrap(),
            1 => covalent::dispatch_sync(many_subs(7).with_config(cfg)).unwrap(),
            _ => covalent::dispatch_sync(unhurried_many(7).with_config(cfg)).unwrap(),
        };
        let slow = run;
        assert_eq!(r.status(), Status::Completed, "{:?}", r.error());
        let store = Store::open(&path).unwrap();
        let whole = store.get(r.dispatch_id()).unwrap();
        for internal in [false, true] {
            let listed: Vec<&covalent::store::NodeRecord> = whole
                .nodes
                .iter()
                .filter(|n| internal || !n.internal)
                .collect();
            for (offset, limit) in [(0, 3), (2, 4), (5, 100), (100, 5), (0, usize::MAX)] {
                let (page, matching) = store
                    .get_page(r.dispatch_id(), offset, limit, internal)
                    .unwrap();
                assert_eq!(matching, listed.len());
                let expected: Vec<&covalent::store::NodeRecord> =
                    listed.iter().skip(offset).take(limit).copied().collect();
                let got: Vec<&covalent::store::NodeRecord> = page.nodes.iter().collect();
                assert_eq!(got, expected, "offset {offset}, limit {limit}, run {slow}");
                assert_eq!((page.status, &page.output), (whole.status, &whole.output));
            }
        }
        assert_eq!(
            whole.nodes.iter().any(|n| n.sublattice.is_some()),
            run > 0,
            "sublattices are part of the check"
        );
    }
}

/// [`many_subs`], run long enough to be written while it runs.
#[lattice]
fn unhurried_many(n: i64) -> i64 {
    let parts: Vec<Node<i64>> = (0..n).map(|i| fan(width(i % 3))).collect();
    add(total(parts), pause(0))
}

static BIG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[electron]
fn big_total(v: Vec<u32>) -> u64 {
    BIG_RUNS.fetch_add(1, Ordering::SeqCst);
    v.iter().map(|&x| u64::from(x)).sum()
}

#[lattice]
fn big_input(v: Vec<u32>, small: i64) -> (u64, i64) {
    (big_total(v), add(small, small))
}

/// A lattice input too large for a row is written once to a value file of its dispatch: the
/// row keeps `null` and the reference, the graph's parameter node the reference; records name
/// the file, a resume reads the value back from it, and a redispatch with the same large
/// input reuses the nodes downstream of it (fingerprints agree whether a graph holds the
/// value or its file).
#[test]
fn large_inputs_live_in_files_beside_the_store() {
    let _guard = COUNTING.lock().unwrap();
    let (dir, cfg) = temp_config();
    let cfg = std::sync::Arc::new(cfg);
    let v: Vec<u32> = (0..100_000).collect();
    let text = serde_json::to_string(&v).unwrap();
    BIG_RUNS.store(0, Ordering::SeqCst);
    let r = covalent::dispatch_sync(big_input(v.clone(), 2).with_config(cfg.clone())).unwrap();
    assert_eq!(r.value(), Some(&(4_999_950_000, 4)));
    let id = r.dispatch_id();
    let values = cfg.results_dir().join(id.to_string()).join("values");
    let files: Vec<_> = std::fs::read_dir(&values)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // The row's input and the parameter node's value are the same JSON text: one file.
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), text);
    let row: (String, String) = rusqlite::Connection::open(cfg.store_path())
        .unwrap()
        .query_row(
            "SELECT inputs, input_files FROM dispatches WHERE id = ?1",
            [id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(row.0, r#"[["v",null],["small",2]]"#);
    assert!(row.1.contains(&format!("{}", text.len())), "{}", row.1);
    let db = std::fs::metadata(cfg.store_path()).unwrap().len()
        + std::fs::metadata(dir.path().join("covalent.db-wal")).map_or(0, |m| m.len());
    assert!(db < (text.len() as u64), "the store takes {db} bytes");

    let store = Store::open(&cfg.store_path()).unwrap();
    let rec = store.get(id).unwrap();
    assert_eq!(rec.inputs[0], ("v".to_string(), serde_json::Value::Null));
    assert_eq!(rec.input_files.len(), 1);
    assert_eq!(rec.input_files[0].0, "v");
    assert_eq!(rec.input_files[0].1.path, files[0]);
    assert_eq!(rec.input_files[0].1.read::<Vec<u32>>().unwrap(), v);
    assert!(rec.to_string().contains("v=<"), "{rec}");
    let param = rec
        .nodes
        .iter()
        .find(|n| n.output_file.is_some() && n.internal)
        .expect("the parameter node names the file");
    assert_eq!(param.output_file.as_ref().unwrap().path, files[0]);
    assert_eq!(param.value::<Vec<u32>>().unwrap().unwrap(), v);
    let origin = store.origin(id).unwrap();
    assert_eq!(origin.inputs[0].1, serde_json::to_value(&v).unwrap());
    assert_eq!(origin.inputs[1].1, serde_json::json!(2));

    // Redispatched with the same large input: nothing downstream of it runs again.
    BIG_RUNS.store(0, Ordering::SeqCst);
    let again =
        covalent::dispatch_sync(big_input(v, 3).with_config(cfg.clone()).reuse(id)).unwrap();
    assert_eq!(again.value(), Some(&(4_999_950_000, 6)));
    assert_eq!(BIG_RUNS.load(Ordering::SeqCst), 0, "{again}");
}
