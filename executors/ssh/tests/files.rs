//! Files and the ssh executor, against the stock OpenSSH server of `scripts/sshd-up.sh`,
//! beyond the conformance suite's file scenarios: with rsync missing on the host, transfers
//! through the dispatcher fall back to scp (and say so); a file named by an `ssh://` URI of
//! the host the task runs on is read where it is; a task on the host downloads over HTTP
//! itself; and what the task makes there is named by that host.

covalent_test_support::isolated_home!();

use std::collections::HashMap;
use std::sync::LazyLock;

use covalent::File;
use covalent::executor::ExecutorRef;
use covalent::prelude::*;
use covalent_ssh::SshExecutor;

static SERVER: LazyLock<Result<HashMap<String, String>, String>> =
    LazyLock::new(covalent_test_support::sshd_env);

fn server() -> Option<&'static HashMap<String, String>> {
    match SERVER.as_ref() {
        Ok(s) => Some(s),
        Err(e) => {
            covalent_test_support::skip("ssh files", &format!("no SSH server: {e}"));
            None
        }
    }
}

fn executor(s: &HashMap<String, String>) -> SshExecutor {
    SshExecutor::new(&s["COVALENT_SSH_HOST"])
        .with_port(s["COVALENT_SSH_PORT"].parse().unwrap())
        .with_username(&s["COVALENT_SSH_USER"])
        .with_key_file(&s["COVALENT_SSH_KEY"])
        .with_known_hosts(&s["COVALENT_SSH_KNOWN_HOSTS"])
}

/// rsync is not there on the host (as on a minimal image): scp carries the files.
static NO_RSYNC: LazyLock<ExecutorRef> = LazyLock::new(|| {
    let mut e = executor(SERVER.as_ref().expect("checked before use"));
    e.ssh.rsync_path = Some("/nonexistent/rsync".into());
    ExecutorRef::new(e)
});

static PLAIN: LazyLock<ExecutorRef> =
    LazyLock::new(|| ExecutorRef::new(executor(SERVER.as_ref().expect("checked before use"))));

#[electron(executor = &*NO_RSYNC)]
fn shout_file(data: File) -> Result<File, String> {
    let text = data.read_to_string().map_err(|e| e.to_string())?;
    std::fs::write("loud.txt", text.to_uppercase()).map_err(|e| e.to_string())?;
    File::output("loud.txt").map_err(|e| e.to_string())
}

#[lattice]
fn shout_flow(data: File) -> File {
    shout_file(data)
}

#[test]
fn without_rsync_on_the_host_files_go_by_scp() {
    let Some(_) = server() else { return };
    let dir = covalent_test_support::isolated_dir().unwrap().join("scp");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("quiet.txt");
    std::fs::write(&input, "quiet please\n").unwrap();
    let r =
        covalent::dispatch_sync(shout_flow(File::new(input.to_str().unwrap()).unwrap())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let loud = r.value().unwrap();
    assert_eq!(loud.read_to_string().unwrap(), "QUIET PLEASE\n");
    assert!(
        loud.uri()
            .starts_with(&format!("file://{}", r.results_dir().display())),
        "it came back among the dispatch's results: {loud}"
    );
    let n = r.nodes().find(|n| n.name() == "shout_file").unwrap();
    let t = n.transfers();
    assert_eq!(t.len(), 2, "{t:#?}");
    for x in &t {
        assert_eq!(
            (x.strategy.as_str(), x.via.as_str(), x.error.as_deref()),
            ("scp", "dispatcher", None),
            "{x:#?}"
        );
    }
    assert_eq!(t[0].bytes, 13);
}

#[electron(executor = &*PLAIN)]
fn where_it_is(there: File, web: File) -> Result<(String, usize, File), String> {
    let p = there.path().map_err(|e| e.to_string())?;
    let n = web.read_to_string().map_err(|e| e.to_string())?.len();
    std::fs::write("made-here.txt", "kept on the host").map_err(|e| e.to_string())?;
    let made = File::new("made-here.txt").map_err(|e| e.to_string())?;
    Ok((p.display().to_string(), n, made))
}

#[lattice]
fn where_flow(there: File, web: File) -> (String, usize, File) {
    where_it_is(there, web)
}

#[test]
fn a_file_of_the_host_is_read_in_place_and_the_host_downloads_itself() {
    let Some(s) = server() else { return };
    let home = &s["COVALENT_SSH_HOME"];
    let on_host = format!("{home}/covalent-files-test.txt");
    std::fs::write(&on_host, "on the host\n").unwrap();
    let authority = format!(
        "{}@{}:{}",
        s["COVALENT_SSH_USER"], s["COVALENT_SSH_HOST"], s["COVALENT_SSH_PORT"]
    );
    let there = File::new(&format!("ssh://{authority}{on_host}")).unwrap();
    let base = covalent_test_support::http_server(vec![("w.txt".into(), b"from the web".to_vec())]);
    let web = File::new(&format!("{base}/f/w.txt")).unwrap();
    let r = covalent::dispatch_sync(where_flow(there, web)).unwrap();
    let _ = std::fs::remove_file(&on_host);
    assert_eq!(r.status(), Status::Completed, "{r}");
    let (path, n, made) = r.value().cloned().unwrap();
    assert_eq!(path, on_host, "read where it is, not copied");
    assert_eq!(n, 12);
    assert!(
        made.uri().starts_with(&format!("ssh://{authority}/"))
            && made.uri().ends_with("/made-here.txt"),
        "a file the task names on the host is named by the host: {made}"
    );
    let t = r
        .nodes()
        .find(|n| n.name() == "where_it_is")
        .unwrap()
        .transfers();
    assert_eq!(t.len(), 1, "only the download moved anything: {t:#?}");
    assert_eq!(
        (t[0].strategy.as_str(), t[0].via.as_str()),
        ("http", "task")
    );
}
