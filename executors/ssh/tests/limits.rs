//! The ssh executor against an OpenSSH server with the stock limits (`scripts/sshd-up.sh`
//! keeps OpenSSH's defaults: MaxSessions 10, MaxStartups 10:30:100): a burst of tasks far
//! above them all succeeds, on one login, and leaves nothing in the remote work directory. A
//! binary of its own: it counts the server's logins in its log.

covalent_test_support::isolated_home!();

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use covalent::Config;
use covalent::executor::ExecutorRef;
use covalent::prelude::*;
use covalent_ssh::SshExecutor;

static SERVER: LazyLock<Result<HashMap<String, String>, String>> =
    LazyLock::new(covalent_test_support::sshd_env);

static SSH: LazyLock<ExecutorRef> = LazyLock::new(|| {
    let s = SERVER.as_ref().expect("checked before use");
    ExecutorRef::new(
        SshExecutor::new(&s["COVALENT_SSH_HOST"])
            .with_port(s["COVALENT_SSH_PORT"].parse().unwrap())
            .with_username(&s["COVALENT_SSH_USER"])
            .with_key_file(&s["COVALENT_SSH_KEY"])
            .with_known_hosts(&s["COVALENT_SSH_KNOWN_HOSTS"])
            // A connection of this test's own (another known-hosts path than the other
            // tests'), so its login is counted here.
            .with_ssh_option("HashKnownHosts=no"),
    )
});

#[electron(executor = &SSH)]
fn short_nap(i: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(300));
    println!("task {i}");
    i
}

#[lattice]
fn burst(n: u32) -> u32 {
    let all: Vec<Node<u32>> = (0..n).map(short_nap).collect();
    total(all)
}

#[electron]
fn total(xs: Vec<u32>) -> u32 {
    xs.iter().sum()
}

/// Logins the server accepted so far (its log is on this machine).
fn logins(s: &HashMap<String, String>) -> usize {
    let dir = Path::new(&s["COVALENT_SSH_KEY"]).parent().unwrap();
    std::fs::read_to_string(dir.join("sshd.log"))
        .unwrap_or_default()
        .matches("Accepted publickey")
        .count()
}

#[test]
fn sixty_tasks_at_once_against_stock_limits_make_one_login_and_leave_nothing() {
    let s = match &*SERVER {
        Ok(s) => s,
        Err(e) => {
            covalent_test_support::skip("ssh limits", &format!("no SSH server: {e}"));
            return;
        }
    };
    let before = logins(s);
    let r = covalent::dispatch_sync(
        burst(60).with_config(
            Config::parse(
                "[sdk]\nrecord = false\nprogress = false\n",
                Path::new("t.toml"),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    assert_eq!(r.value(), Some(&(0..60).sum::<u32>()));
    let failed: Vec<String> = r.nodes().filter_map(|n| n.error()).collect();
    assert_eq!(failed, Vec::<String>::new());
    for n in r.nodes().filter(|n| n.name() == "short_nap") {
        let i = n.output_as::<u32>().unwrap();
        assert_eq!(n.stdout(), format!("task {i}\n"));
    }
    // One connection for the sixty (a second only if the first master's start was raced).
    let made = logins(s) - before;
    assert!(made <= 1, "{made} logins for 60 tasks");
    // `do_cleanup`: the dispatch's work directory is gone with its tasks'.
    let dir = Path::new(&s["COVALENT_SSH_HOME"])
        .join("covalent-workdir")
        .join(r.dispatch_id().to_string());
    assert!(!dir.exists(), "{} is left", dir.display());
}
