//! End-to-end tests of the `covalent` binary: dispatches recorded by this test process into a
//! temporary store, then inspected and managed by running the real command on it.

covalent_test_support::isolated_home!();

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use covalent::{Config, Status};

mod common;
use common::*;

/// A fresh data dir for one test.
fn home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A configuration recording into `home`.
fn config(home: &Path) -> Config {
    let text = format!(
        "[sdk]\ndata_dir = {:?}\nprogress = false\n",
        home.display().to_string()
    );
    Config::parse(&text, Path::new("test.toml")).unwrap()
}

/// What a run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `covalent ARGS` on the store in `home`, with no configuration file but `extra_env`'s.
fn covalent_env(home: &Path, args: &[&str], extra_env: &[(&str, &Path)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_covalent"));
    cmd.args(args)
        .current_dir(home)
        .env("COVALENT_HOME", home)
        .env_remove("COVALENT_CONFIG")
        .env("XDG_CONFIG_HOME", home.join("no-user-config"))
        .env("XDG_DATA_HOME", home.join("no-user-data"));
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the covalent binary runs");
    let run = Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    run
}

fn covalent(home: &Path, args: &[&str]) -> Run {
    covalent_env(home, args, &[])
}

/// Asserts exit 0 and returns stdout.
fn ok(run: Run) -> String {
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout
}

/// Asserts exit 1 with `error: ` and returns stderr.
fn fails_with(run: Run) -> String {
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("error: "), "{run:?}");
    run.stderr
}

/// The table line that starts with `first`.
fn line_starting<'a>(text: &'a str, first: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(first))
        .unwrap_or_else(|| panic!("no line starting with {first:?} in\n{text}"))
}

fn columns(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn list_shows_dispatches_with_task_counts_and_statuses() {
    let home = home();
    let cfg = || config(home.path());
    let good = covalent::dispatch_sync(workflow(3, 4).with_config(cfg())).unwrap();
    let bad = covalent::dispatch_sync(broken(5).with_config(cfg())).unwrap();
    assert_eq!(bad.status(), Status::Failed);

    let out = ok(covalent(home.path(), &["list"]));
    let header = columns(out.lines().next().unwrap());
    assert_eq!(
        header,
        ["ID", "LATTICE", "STATUS", "TASKS", "STARTED", "RUNTIME"]
    );
    // Both were made within a second: the ids are cut where they differ, 8 characters or more.
    let first = columns(out.lines().nth(1).unwrap());
    let short = first[0];
    assert!(short.len() >= 8 && bad.dispatch_id().to_string().starts_with(short));
    assert_eq!(&first[1..4], ["broken", "FAILED", "1/2"], "{out}");
    let second = columns(out.lines().nth(2).unwrap());
    assert!(good.dispatch_id().to_string().starts_with(second[0]));
    assert_eq!(&second[1..4], ["workflow", "COMPLETED", "2/2"], "{out}");
    assert_eq!(second[4].len(), "2026-01-01 00:00:00".len(), "{out}");
    assert!(
        out.contains("2 of 2 dispatches shown: 1 COMPLETED, 1 FAILED"),
        "{out}"
    );
    // A short id from the table names one dispatch; a failed node shows its error's kind.
    let shown = ok(covalent(home.path(), &["show", short]));
    assert!(shown.contains("[user] "), "{shown}");

    let failed = ok(covalent(
        home.path(),
        &["list", "--status", "failed", "--full-ids"],
    ));
    assert!(failed.contains(&bad.dispatch_id().to_string()), "{failed}");
    assert!(!failed.contains("workflow"), "{failed}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(covalent(home.path(), &["list", "--json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[1]["id"], good.dispatch_id().to_string());
    assert_eq!(json[1]["status"], "COMPLETED");
    assert_eq!(json[1]["done"], 2);

    // --home wins over COVALENT_HOME.
    let elsewhere = self::home();
    let out = ok(covalent(
        elsewhere.path(),
        &["--home", home.path().to_str().unwrap(), "list"],
    ));
    assert!(out.contains("workflow"), "{out}");
}

#[covalent::electron]
fn byte_count(data: covalent::File) -> Result<usize, String> {
    data.read_to_string()
        .map(|s| s.len())
        .map_err(|e| e.to_string())
}

#[covalent::lattice]
fn download(data: covalent::File) -> usize {
    byte_count(data)
}

#[test]
fn show_and_the_record_list_file_transfers() {
    let home = home();
    let base = covalent_test_support::http_server(vec![("d.txt".into(), b"0123456789".to_vec())]);
    let url = format!("{base}/f/d.txt");
    let file = covalent::File::new(&url).unwrap();
    let r = covalent::dispatch_sync(download(file).with_config(config(home.path()))).unwrap();
    assert_eq!(r.value(), Some(&10), "{r}");
    let id = r.dispatch_id().to_string();
    let out = ok(covalent(home.path(), &["show", &id]));
    let section = &out[out.find("\nFile transfers\n").expect("a transfers section")..];
    let line = section
        .lines()
        .find(|l| l.contains(&url))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("#1 in") && line.contains("http") && line.contains("10 B"),
        "{line}"
    );
    let json = ok(covalent(home.path(), &["result", &id, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let node = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "byte_count")
        .unwrap();
    assert_eq!(node["transfers"][0]["source"], url.as_str());
    assert_eq!(node["transfers"][0]["bytes"], 10);
    assert_eq!(
        node["transfers"][0]["blake3"],
        blake3::hash(b"0123456789").to_hex().as_str()
    );
}

#[test]
fn show_prints_the_report_and_the_node_table() {
    let home = home();
    let r = covalent::dispatch_sync(fanned(3).with_config(config(home.path()))).unwrap();
    assert_eq!(r.value(), Some(&5));
    let id = r.dispatch_id().to_string();

    let out = ok(covalent(home.path(), &["show", &id]));
    assert!(out.starts_with("Lattice Result\n"), "{out}");
    assert!(out.contains("status: COMPLETED"), "{out}");
    assert!(out.contains(&format!("dispatch_id: {id}")), "{out}");
    let table = &out[out.find("\nNodes\n").expect("a node table")..];
    assert_eq!(
        columns(table.lines().nth(3).unwrap()),
        [
            "ID", "NAME", "STATUS", "EXECUTOR", "ATTEMPTS", "STARTED", "RUNTIME", "JOB", "ERROR"
        ]
    );
    let id_of = |name: &str| r.nodes().find(|n| n.name() == name).unwrap().id();
    let add_row = columns(line_starting(table, &format!("{} ", id_of("add"))));
    assert_eq!(&add_row[1..5], ["add", "COMPLETED", "local", "1"], "{out}");
    let fan = id_of("fan");
    let fan_row = columns(line_starting(table, &format!("{fan} ")));
    assert_eq!(&fan_row[1..3], ["fan", "COMPLETED"], "{out}");
    // The sublattice's tasks, indented under their node; internal nodes hidden.
    let children: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with(&format!("  {fan}/")))
        .map(columns)
        .collect();
    let names: Vec<&str> = children.iter().map(|c| c[1]).collect();
    assert_eq!(names, ["square", "square", "square", "total"], "{out}");
    assert!(children.iter().all(|c| c[2] == "COMPLETED"), "{out}");
    assert!(!table.contains(":parameter:"), "{out}");

    let all = ok(covalent(home.path(), &["show", &id, "--all"]));
    assert!(all.contains(":parameter:"), "{all}");
}

#[test]
fn result_prints_the_value_or_the_record() {
    let home = home();
    let r = covalent::dispatch_sync(workflow(3, 4).with_config(config(home.path()))).unwrap();
    let id = r.dispatch_id().to_string();

    assert_eq!(ok(covalent(home.path(), &["result", &id])), "28\n");
    assert_eq!(
        ok(covalent(home.path(), &["result", &id[..13], "--wait"])),
        "28\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(covalent(home.path(), &["result", &id, "--json"]))).unwrap();
    assert_eq!(json["id"], id);
    assert_eq!(json["status"], "COMPLETED");
    assert_eq!(json["output"], 28);
}

#[test]
fn result_of_a_failed_dispatch_exits_1_with_its_error() {
    let home = home();
    let r = covalent::dispatch_sync(broken(5).with_config(config(home.path()))).unwrap();
    let id = r.dispatch_id().to_string();

    let run = covalent(home.path(), &["result", &id]);
    assert_eq!(run.stdout, "");
    let err = fails_with(run);
    assert!(
        err.contains(&format!("dispatch {id} ended FAILED")),
        "{err}"
    );
    assert!(err.contains("bad input 5"), "{err}");
    // --json still prints the record, for scripts, and still exits 1.
    let run = covalent(home.path(), &["result", &id, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["status"], "FAILED");
    fails_with(run);
}

#[test]
fn unknown_and_ambiguous_ids_are_errors_naming_them() {
    let home = home();
    let err = fails_with(covalent(home.path(), &["show", "0123abcd"]));
    assert!(err.contains("no dispatch `0123abcd`"), "{err}");

    covalent::dispatch_sync(workflow(1, 2).with_config(config(home.path()))).unwrap();
    covalent::dispatch_sync(workflow(2, 3).with_config(config(home.path()))).unwrap();
    for cmd in ["show", "result", "logs", "cancel"] {
        let err = fails_with(covalent(home.path(), &[cmd, "0123abcd"]));
        assert!(err.contains("no dispatch `0123abcd`"), "{cmd}: {err}");
    }
    let unknown = "01234567-89ab-7def-8123-456789abcdef";
    let err = fails_with(covalent(home.path(), &["result", unknown]));
    assert!(err.contains(unknown), "{err}");
    let err = fails_with(covalent(home.path(), &["show", "0"]));
    assert!(err.contains("matches several dispatches"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_from_the_cli_cancels_a_running_dispatch() {
    let home = home();
    let d = covalent::dispatch(sleepy(30).with_config(config(home.path())))
        .await
        .unwrap();
    let id = d.id().to_string();
    let path = home.path().to_path_buf();
    let run = blocking(&path, &["cancel", &id]).await;
    let out = ok(run);
    assert!(
        out.contains(&format!(
            "cancellation requested for dispatch {id} (it was RUNNING)"
        )),
        "{out}"
    );
    let r = tokio::time::timeout(Duration::from_secs(10), d.wait())
        .await
        .expect("cancelled within 10 s")
        .unwrap();
    assert_eq!(r.status(), Status::Cancelled);

    let err = fails_with(blocking(&path, &["cancel", &id]).await);
    assert!(
        err.contains(&format!(
            "dispatch {id} already ended (CANCELLED); nothing to cancel"
        )),
        "{err}"
    );
}

/// Runs the binary off the async runtime's threads.
async fn blocking(home: &Path, args: &[&str]) -> Run {
    let home: PathBuf = home.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        covalent(&home, &args)
    })
    .await
    .unwrap()
}

#[test]
fn logs_print_a_header_per_stream_of_every_task() {
    let home = home();
    let r = covalent::dispatch_sync(workflow(3, 4).with_config(config(home.path()))).unwrap();
    let id = r.dispatch_id().to_string();

    let tasks: Vec<(usize, &str)> = r
        .nodes()
        .filter(|n| !n.is_internal())
        .map(|n| (n.id(), n.name()))
        .collect();
    assert_eq!(tasks.len(), 2);
    let expected: Vec<String> = tasks
        .iter()
        .flat_map(|(id, name)| {
            ["stdout", "stderr"].map(|s| format!("== node {id} ({name}) {s} =="))
        })
        .collect();

    let out = ok(covalent(home.path(), &["logs", &id]));
    let headers: Vec<&str> = out.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(headers, expected, "{out}");
    assert_eq!(out.matches("(nothing recorded)").count(), 4, "{out}");
    assert!(
        out.contains("share the process's stdout and stderr"),
        "{out}"
    );

    let multiply = tasks[1].0.to_string();
    let one = ok(covalent(home.path(), &["logs", &id, "--node", &multiply]));
    assert!(one.starts_with(&format!("{}\n", expected[2])), "{one}");
    let err = fails_with(covalent(home.path(), &["logs", &id, "--node", "99"]));
    assert!(err.contains("has no node 99"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_ended_dispatches_but_never_a_running_one() {
    let home = home();
    let path = home.path().to_path_buf();
    let done = covalent::dispatch(workflow(3, 4).with_config(config(&path)))
        .await
        .unwrap();
    let done_id = done.id().to_string();
    done.wait().await.unwrap();
    let running = covalent::dispatch(sleepy(30).with_config(config(&path)))
        .await
        .unwrap();
    let running_id = running.id().to_string();

    let err = fails_with(blocking(&path, &["purge"]).await);
    assert!(
        err.contains("--older-than") && err.contains("--all"),
        "{err}"
    );
    let out = ok(blocking(&path, &["purge", "--older-than", "1h", "--yes"]).await);
    assert!(
        out.starts_with("deleted 0 ended dispatches older than 1h;"),
        "{out}"
    );

    let out = ok(blocking(&path, &["purge", "--all", "--yes"]).await);
    assert!(
        out == "deleted 1 ended dispatch; kept 1 running dispatch\n",
        "{out}"
    );
    let list = ok(blocking(&path, &["list", "--full-ids"]).await);
    assert!(list.contains(&running_id), "{list}");
    assert!(!list.contains(&done_id), "{list}");
    fails_with(blocking(&path, &["show", &done_id]).await);

    running.cancel();
    let r = running.wait().await.unwrap();
    assert_eq!(r.status(), Status::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_vacuum_gives_the_space_back() {
    let home = home();
    let path = home.path().to_path_buf();
    let cfg = std::sync::Arc::new(config(&path));
    for _ in 0..40 {
        let d = covalent::dispatch(workflow(3, 4).with_config(cfg.clone()))
            .await
            .unwrap();
        d.wait().await.unwrap();
    }
    let on_disk = |p: &Path| {
        ["covalent.db", "covalent.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(p.join(f)).ok())
            .map(|m| m.len())
            .sum::<u64>()
    };
    let before = on_disk(&path);
    let out = ok(blocking(&path, &["purge", "--all", "--yes", "--vacuum"]).await);
    assert!(out.starts_with("deleted 40 ended dispatches\n"), "{out}");
    assert!(out.contains("store on disk: "), "{out}");
    let after = on_disk(&path);
    assert!(
        after < before,
        "{before} bytes before, {after} after:\n{out}"
    );
    assert_eq!(
        std::fs::metadata(path.join("covalent.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0),
        0,
        "the write-ahead log is truncated"
    );
    // The store still works.
    let d = covalent::dispatch(workflow(3, 4).with_config(cfg.clone()))
        .await
        .unwrap();
    assert_eq!(d.wait().await.unwrap().value(), Some(&28));
}

#[test]
fn config_shows_values_and_where_they_come_from() {
    let home = home();
    let file = home.path().join("my-covalent.toml");
    std::fs::write(
        &file,
        "[sdk]\nfail_fast = true\n\n[executors.local]\nretries = 1\n",
    )
    .unwrap();
    let shown = file.display().to_string();

    let out = ok(covalent_env(
        home.path(),
        &["config"],
        &[("COVALENT_CONFIG", &file)],
    ));
    assert!(
        out.contains(&format!(
            "configuration file: {shown} (named by COVALENT_CONFIG)"
        )),
        "{out}"
    );
    assert_eq!(
        columns(line_starting(&out, "fail_fast")),
        ["fail_fast", "true", &shown]
    );
    assert_eq!(
        columns(line_starting(&out, "record")),
        ["record", "true", "default"]
    );
    let home_str = home.path().display().to_string();
    assert_eq!(
        columns(line_starting(&out, "data_dir")),
        ["data_dir", &home_str, "env COVALENT_HOME"]
    );
    let retries = out
        .lines()
        .find(|l| l.contains(" retries "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        columns(retries),
        ["retries", "1", &format!("{shown} [executors.local]")]
    );
    let limit = out.lines().find(|l| l.contains(" time_limit ")).unwrap();
    assert!(limit.ends_with("plugin default"), "{out}");

    let none = ok(covalent(home.path(), &["config"]));
    assert!(none.contains("configuration file: none"), "{none}");

    std::fs::write(&file, "[sdk]\nfail_fast = true\nfail_fats = false\n").unwrap();
    for cmd in ["config", "list"] {
        let err = fails_with(covalent_env(
            home.path(),
            &[cmd],
            &[("COVALENT_CONFIG", &file)],
        ));
        assert!(err.contains(&format!("{shown}:3:")), "{err}");
        assert!(err.contains("fail_fats"), "{err}");
    }
}

#[test]
fn executors_lists_the_built_in_local_executor() {
    let home = home();
    let out = ok(covalent(home.path(), &["executors"]));
    assert_eq!(
        columns(out.lines().next().unwrap()),
        ["EXECUTOR", "OPTION", "DEFAULT"]
    );
    assert!(out.lines().any(|l| l.starts_with("local ")), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(covalent(home.path(), &["executors", "--json"]))).unwrap();
    let local = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "local")
        .expect("local is listed");
    assert!(
        local["defaults"]
            .as_object()
            .unwrap()
            .contains_key("max_workers")
    );
}

#[test]
fn a_corrupt_store_is_an_error_and_stays_unchanged() {
    let home = home();
    let db = home.path().join("covalent.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    for args in [
        &["list"][..],
        &["show", "0123"],
        &["purge", "--all", "--yes"],
    ] {
        let err = fails_with(covalent(home.path(), args));
        assert!(err.contains("is not a usable covalent store"), "{err}");
        assert!(err.contains(&db.display().to_string()), "{err}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), garbage);
}

#[test]
fn a_home_that_is_a_file_is_an_error_not_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"some notes").unwrap();
    for cmd in [&["list"][..], &["show", "0123abcd"], &["purge", "--all"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_covalent"))
            .args(cmd)
            .current_dir(dir.path())
            .env("COVALENT_HOME", &file)
            .env_remove("COVALENT_CONFIG")
            .env("XDG_CONFIG_HOME", dir.path().join("no-user-config"))
            .env("XDG_DATA_HOME", dir.path().join("no-user-data"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("is a file, not a directory"), "{cmd:?}: {err}");
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"some notes",
        "left unchanged"
    );
}

/// 4 MB of bytes: 14 MB of JSON, far past what a row keeps.
#[covalent::electron]
fn big_blob(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[covalent::electron]
fn blob_len(b: Vec<u8>) -> usize {
    b.len()
}

#[covalent::lattice]
fn blob_flow(n: usize) -> Vec<u8> {
    let b = big_blob(n);
    let _ = blob_len(b);
    b
}

/// A large value is written once, to a file named by its digest under the dispatch's results
/// dir, and the store's row holds a reference: the record reads back without opening it,
/// `value()` and `covalent result` read it, `show` and the UI say where it is, and `purge`
/// deletes it with the dispatch.
#[test]
fn large_values_live_in_files_beside_the_store() {
    let home = home();
    let n = 4 << 20;
    let r = covalent::dispatch_sync(blob_flow(n).with_config(config(home.path()))).unwrap();
    assert_eq!(r.status(), Status::Completed, "{:?}", r.error());
    let id = r.dispatch_id().to_string();
    let values = home.path().join("results").join(&id).join("values");
    let files: Vec<PathBuf> = std::fs::read_dir(&values)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // The node's output and the dispatch's result are the same value: one file.
    assert_eq!(files.len(), 1, "{files:?}");
    let expected: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let text = serde_json::to_string(&expected).unwrap();
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), text);
    assert_eq!(
        files[0].file_stem().unwrap().to_str().unwrap(),
        blake3::hash(text.as_bytes()).to_hex().as_str()
    );
    // The database holds references, not the value.
    let db = std::fs::metadata(home.path().join("covalent.db"))
        .unwrap()
        .len()
        + std::fs::metadata(home.path().join("covalent.db-wal")).map_or(0, |m| m.len());
    assert!(db < 2 << 20, "the store takes {db} bytes");

    let store = covalent::store::Store::open(&home.path().join("covalent.db")).unwrap();
    let rec = store.get(r.dispatch_id()).unwrap();
    assert_eq!(rec.output, None);
    assert_eq!(rec.output_file.as_ref().unwrap().path, files[0]);
    assert_eq!(rec.output_file.as_ref().unwrap().bytes, text.len() as u64);
    assert_eq!(rec.value::<Vec<u8>>().unwrap().unwrap(), expected);
    let node = rec.nodes.iter().find(|n| n.name == "big_blob").unwrap();
    assert_eq!(node.value::<Vec<u8>>().unwrap().unwrap(), expected);
    let small = rec.nodes.iter().find(|n| n.name == "blob_len").unwrap();
    assert_eq!(small.output, Some(serde_json::json!(n)));
    assert_eq!(small.output_file, None);

    // `covalent result` streams the file as it is.
    let out = ok(covalent(home.path(), &["result", &id]));
    assert_eq!(out.trim_end(), text);
    // `show` and the JSON record name the file.
    let shown = ok(covalent(home.path(), &["show", &id]));
    assert!(shown.contains("MB value in"), "{shown}");
    assert!(shown.len() < 10_000, "show printed {} bytes", shown.len());
    let json = ok(covalent(home.path(), &["result", &id, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["output_file"]["bytes"], text.len());

    ok(covalent(home.path(), &["purge", "--all", "--yes"]));
    assert!(!home.path().join("results").join(&id).exists());
}

#[covalent::electron]
fn one_more(i: u64) -> u64 {
    i + 1
}

#[covalent::electron]
fn add_up(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[covalent::lattice]
fn many_tasks(n: u64) -> u64 {
    add_up((0..n).map(one_more).collect::<Vec<_>>())
}

/// `covalent show` lists a page of tasks (200 by default) and says how to get the rest.
#[test]
fn show_pages_through_the_nodes_of_a_large_dispatch() {
    let home = home();
    let r = covalent::dispatch_sync(many_tasks(450).with_config(config(home.path()))).unwrap();
    assert_eq!(r.value(), Some(&(450 * 451 / 2)));
    let id = r.dispatch_id().to_string();
    let rows = |out: &str| out.lines().filter(|l| l.contains(" one_more ")).count();
    let first = ok(covalent(home.path(), &["show", &id]));
    assert_eq!(rows(&first), 200, "{first}");
    assert!(first.contains("tasks: 451 of 451 completed"), "{first}");
    assert!(
        first.contains(
            "(tasks 1–200 of 451 shown; `--offset 200` for the next page, `--limit 0` for all)"
        ),
        "{first}"
    );
    let last = ok(covalent(home.path(), &["show", &id, "--offset", "400"]));
    assert_eq!(rows(&last), 50, "{last}");
    assert!(last.contains(" add_up "), "{last}");
    assert!(
        last.contains("(tasks 401–451 of 451 shown: the last page)"),
        "{last}"
    );
    let every = ok(covalent(home.path(), &["show", &id, "--limit", "0"]));
    assert_eq!(rows(&every), 450);
    assert!(!every.contains("shown"), "{every}");
    // With --all, internal nodes (the collected list) are paged too.
    let all = ok(covalent(
        home.path(),
        &["show", &id, "--all", "--limit", "10"],
    ));
    assert!(all.contains("(nodes 1–10 of"), "{all}");
}
