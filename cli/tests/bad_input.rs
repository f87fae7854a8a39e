//! Bad input to the `covalent` binary: configuration files, command-line arguments and store
//! files. Each case runs the real command on a home holding two recorded dispatches and checks
//! that it fails with a message saying what is wrong and what to do, and that nothing was lost
//! or changed: the same dispatches with the same statuses and values, the configuration and the
//! damaged or foreign files byte for byte as they were.

covalent_test_support::isolated_home!();

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use covalent::Config;
use covalent::store::{ListFilter, Store};

mod common;
use common::*;

/// Where a case's configuration comes from.
#[derive(Clone, Copy)]
enum Conf {
    /// No file.
    None,
    /// A file with these bytes.
    Text(&'static [u8]),
    /// `COVALENT_CONFIG` names a directory.
    Directory,
    /// `COVALENT_CONFIG` names a file that does not exist.
    Missing,
}

/// What is done to the store before the command runs.
#[derive(Clone, Copy)]
enum Damage {
    None,
    /// The database truncated to 100 bytes.
    Truncated,
    /// The database replaced by text.
    Garbage,
    /// The database replaced by another application's SQLite file.
    Foreign,
    /// `COVALENT_HOME` names a regular file.
    HomeIsAFile,
}

struct Case {
    what: &'static str,
    conf: Conf,
    damage: Damage,
    args: &'static [&'static str],
    /// Every one of these is in stderr.
    says: &'static [&'static str],
}

const fn case(
    what: &'static str,
    conf: Conf,
    damage: Damage,
    args: &'static [&'static str],
    says: &'static [&'static str],
) -> Case {
    Case {
        what,
        conf,
        damage,
        args,
        says,
    }
}

fn cases() -> Vec<Case> {
    use Conf::{Directory, Missing, Text};
    use Damage::{Foreign, Garbage, HomeIsAFile, Truncated};
    let no = Conf::None;
    let ok = Damage::None;
    vec![
        // ---- configuration files
        case(
            "unclosed table",
            Text(b"[sdk\nrecord = true\n"),
            ok,
            &["list"],
            &["covalent.toml:1: `[sdk`", "unclosed table"],
        ),
        case(
            "a wrong type in [sdk]",
            Text(b"[sdk]\n\nrecord = \"yes\"\n"),
            ok,
            &["list"],
            &["covalent.toml:3: `record = \"yes\"`", "expected a boolean"],
        ),
        case(
            "a misspelt [sdk] key",
            Text(b"[sdk]\nrecrod = false\n"),
            ok,
            &["list"],
            &["covalent.toml:2:", "unknown field `recrod`", "`record`"],
        ),
        case(
            "an unknown section",
            Text(b"[sdks]\nrecord = false\n"),
            ok,
            &["list"],
            &["covalent.toml:1:", "unknown field `sdks`", "`sdk`"],
        ),
        case(
            "a wrong type inside [executors.local] points at the key",
            Text(b"[executors.local]\n# pool size\ncache_dir = \"/tmp\"\nmax_workers = \"x\"\n"),
            ok,
            &["list"],
            &[
                "covalent.toml:4: `max_workers = \"x\"` in [executors.local]",
                "expected usize",
            ],
        ),
        case(
            "a misspelt key inside [executors.local]",
            Text(b"[executors.local]\n\nmax_workerz = 4\n"),
            ok,
            &["list"],
            &[
                "covalent.toml:3: `max_workerz = 4`",
                "unknown key `max_workerz`",
                "max_workers",
            ],
        ),
        case(
            "a data_dir that is a number",
            Text(b"[sdk]\ndata_dir = 3\n"),
            ok,
            &["list"],
            &["covalent.toml:2: `data_dir = 3`", "invalid type"],
        ),
        case(
            "a config that is not UTF-8",
            Text(b"[sdk]\nrecord = \xff\xfe\n"),
            ok,
            &["list"],
            &[
                "cannot read the configuration file",
                "covalent.toml",
                "UTF-8",
            ],
        ),
        case(
            "a config path that is a directory",
            Directory,
            ok,
            &["list"],
            &["cannot read the configuration file", "Is a directory"],
        ),
        case(
            "a config path that does not exist",
            Missing,
            ok,
            &["list"],
            &[
                "cannot read the configuration file",
                "missing.toml",
                "No such file",
            ],
        ),
        // ---- command-line arguments
        case(
            "a negative limit",
            no,
            ok,
            &["list", "--limit", "-1"],
            &["-1 is negative; give a whole number from 0"],
        ),
        case(
            "a limit that is not a number",
            no,
            ok,
            &["list", "--limit", "ten"],
            &["`ten` is not a whole number"],
        ),
        case(
            "an offset past 64 bits",
            no,
            ok,
            &["list", "--offset", "18446744073709551616"],
            &["give a smaller number"],
        ),
        case(
            "a node-only status",
            no,
            ok,
            &["list", "--status", "not_run"],
            &[
                "NOT_RUN is a node status",
                "running, completed, failed, cancelled, interrupted",
            ],
        ),
        case(
            "an unknown status",
            no,
            ok,
            &["list", "--status", "done"],
            &["unknown status `done`", "running, completed"],
        ),
        case(
            "purge without a selection",
            no,
            ok,
            &["purge"],
            &["--older-than", "--all"],
        ),
        case(
            "purge with a bad duration",
            no,
            ok,
            &["purge", "--older-than", "3 parsecs"],
            &["expected a duration such as 30s"],
        ),
        case(
            "show of an id that is not one",
            no,
            ok,
            &["show", "not-an-id"],
            &["no dispatch `not-an-id`"],
        ),
        case(
            "result of an unknown id",
            no,
            ok,
            &["result", "ffffffff-ffff-7fff-bfff-ffffffffffff"],
            &["no dispatch `ffffffff-ffff-7fff-bfff-ffffffffffff`"],
        ),
        case(
            "cancel of an unknown prefix",
            no,
            ok,
            &["cancel", "fffff"],
            &["no dispatch `fffff`"],
        ),
        case(
            "logs of an unknown prefix",
            no,
            ok,
            &["logs", "fffff"],
            &["no dispatch `fffff`"],
        ),
        case(
            "an unknown command",
            no,
            ok,
            &["lsit"],
            &["unrecognized subcommand 'lsit'", "list"],
        ),
        // ---- store files
        case(
            "a truncated store",
            no,
            Truncated,
            &["list"],
            &[
                "is not a usable covalent store",
                "covalent.db",
                "left unchanged",
                "Move it aside",
            ],
        ),
        case(
            "a store that is text",
            no,
            Garbage,
            &["show", "0"],
            &["is not a usable covalent store", "Move it aside"],
        ),
        case(
            "another application's database",
            no,
            Foreign,
            &["purge", "--all", "--yes"],
            &[
                "belongs to another application",
                "left unchanged",
                "COVALENT_HOME",
            ],
        ),
        case(
            "a home that is a file",
            no,
            HomeIsAFile,
            &["list"],
            &["is a file, not a directory", "point it at a directory"],
        ),
    ]
}

/// The recorded dispatches of a home: id → (status, value).
fn dispatches(home: &Path) -> BTreeMap<String, (String, String)> {
    let store = Store::open(&home.join("covalent.db")).unwrap();
    store
        .list(&ListFilter::default())
        .unwrap()
        .into_iter()
        .map(|d| {
            let rec = store.get(d.id).unwrap();
            (
                d.id.to_string(),
                (rec.status.as_str().to_string(), format!("{:?}", rec.output)),
            )
        })
        .collect()
}

fn record_two(home: &Path) {
    let cfg = std::sync::Arc::new(
        Config::parse(
            &format!(
                "[sdk]\ndata_dir = {:?}\nprogress = false\n",
                home.display().to_string()
            ),
            Path::new("test.toml"),
        )
        .unwrap(),
    );
    covalent::dispatch_sync(workflow(3, 4).with_config(cfg.clone())).unwrap();
    covalent::dispatch_sync(broken(1).with_config(cfg)).unwrap();
}

fn files_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_file() && !p.to_string_lossy().ends_with("-shm") {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

#[test]
fn bad_input_is_refused_with_what_to_fix_and_nothing_changes() {
    let cases = cases();
    assert!(cases.len() >= 25);
    for c in cases {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        record_two(&home);
        let before = dispatches(&home);
        assert_eq!(before.len(), 2);

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_covalent"));
        cmd.args(c.args)
            .current_dir(dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("no-user-config"))
            .env("XDG_DATA_HOME", dir.path().join("no-user-data"))
            .env("COVALENT_NO_PROGRESS", "1");
        match &c.conf {
            Conf::None => {
                cmd.env_remove("COVALENT_CONFIG");
            }
            Conf::Text(bytes) => {
                let p = dir.path().join("covalent.toml");
                std::fs::write(&p, bytes).unwrap();
                cmd.env("COVALENT_CONFIG", &p);
            }
            Conf::Directory => {
                cmd.env("COVALENT_CONFIG", dir.path());
            }
            Conf::Missing => {
                cmd.env("COVALENT_CONFIG", dir.path().join("missing.toml"));
            }
        }
        let db = home.join("covalent.db");
        match c.damage {
            Damage::None => {}
            Damage::Truncated => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&db)
                    .unwrap()
                    .set_len(100)
                    .unwrap();
            }
            Damage::Garbage => std::fs::write(&db, "these are my notes\n".repeat(500)).unwrap(),
            Damage::Foreign => {
                for ext in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
                }
                std::fs::remove_file(&db).unwrap();
                let c = rusqlite::Connection::open(&db).unwrap();
                c.execute_batch("CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('x');")
                    .unwrap();
            }
            Damage::HomeIsAFile => {}
        }
        let home_arg = match c.damage {
            Damage::HomeIsAFile => home.join("covalent.db"),
            _ => home.clone(),
        };
        cmd.env("COVALENT_HOME", &home_arg);
        let files = files_of(&home);
        let conf_before = std::fs::read(dir.path().join("covalent.toml")).ok();

        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && out.status.code().is_some(),
            "{}: exit {:?}\n{stderr}",
            c.what,
            out.status
        );
        assert!(!stderr.contains("panicked"), "{}: {stderr}", c.what);
        assert!(stderr.starts_with("error"), "{}: {stderr}", c.what);
        for s in c.says {
            assert!(stderr.contains(s), "{}: no {s:?} in\n{stderr}", c.what);
        }
        // Nothing changed: the files as they were, the configuration as it was, and (when the
        // store was left intact) the same dispatches.
        assert_eq!(
            files_of(&home),
            files,
            "{}: the store's files changed",
            c.what
        );
        assert_eq!(
            std::fs::read(dir.path().join("covalent.toml")).ok(),
            conf_before,
            "{}",
            c.what
        );
        if matches!(c.damage, Damage::None) {
            assert_eq!(dispatches(&home), before, "{}", c.what);
        }
    }
}

/// Runs `covalent ARGS` on `home` as a user who may not write there: the unprivileged `nobody`
/// when this test runs as root (root writes anywhere), else this user after `chmod`.
fn covalent_read_only(dir: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_covalent");
    let root = covalent_test_support::is_root();
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .current_dir(dir)
        .env("COVALENT_HOME", home)
        .env_remove("COVALENT_CONFIG")
        .env("XDG_CONFIG_HOME", dir.join("no-user-config"))
        .output()
        .unwrap()
}

#[test]
fn a_read_only_store_is_read_and_refuses_writes_with_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    if covalent_test_support::is_root()
        && Command::new("setpriv").arg("--version").output().is_err()
    {
        covalent_test_support::skip("read-only store", "no setpriv to drop root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    record_two(&home);
    let before = dispatches(&home);
    for e in std::fs::read_dir(&home).unwrap().flatten() {
        let mode = if e.path().is_dir() { 0o555 } else { 0o444 };
        std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o555)).unwrap();
    let files = files_of(&home);

    let out = covalent_read_only(dir.path(), &home, &["list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "list of a read-only store: {stderr}");
    assert!(stdout.contains("2 of 2 dispatches shown"), "{stdout}");

    let out = covalent_read_only(dir.path(), &home, &["purge", "--all", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("read-only"), "{stderr}");
    assert!(stderr.contains("COVALENT_HOME"), "{stderr}");
    assert!(!stderr.contains("not a usable covalent store"), "{stderr}");

    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(files_of(&home), files, "the read-only store changed");
    assert_eq!(dispatches(&home), before);
}
