//! The transport against a real OpenSSH server on 127.0.0.1 (`scripts/sshd-up.sh`, started
//! here when possible): remote scripts with input and time limits, the shared connection,
//! the classified failures, and binary staging. Without a server each test says why it is
//! skipped; under `COVALENT_REQUIRE_ENGINES=1` that is a failure.

covalent_test_support::isolated_home!();

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use covalent_remote::{Input, RemoteError, Retry, Session, SshOptions, staged_path};

static SERVER: LazyLock<Result<HashMap<String, String>, String>> =
    LazyLock::new(covalent_test_support::sshd_env);

/// The test server's options, or `None` after saying why the test is skipped.
fn target(test: &str) -> Option<SshOptions> {
    let s = match &*SERVER {
        Ok(s) => s,
        Err(e) => {
            covalent_test_support::skip(test, &format!("no SSH server: {e}"));
            return None;
        }
    };
    Some(SshOptions {
        port: s["COVALENT_SSH_PORT"].parse().ok(),
        username: Some(s["COVALENT_SSH_USER"].clone()),
        ssh_key_file: Some(s["COVALENT_SSH_KEY"].clone().into()),
        known_hosts: Some(s["COVALENT_SSH_KNOWN_HOSTS"].clone().into()),
        ..SshOptions::new(&s["COVALENT_SSH_HOST"])
    })
}

fn remote_home() -> PathBuf {
    PathBuf::from(&SERVER.as_ref().unwrap()["COVALENT_SSH_HOME"])
}

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn scripts_run_there_with_their_input_on_one_shared_connection() {
    let Some(o) = target("scripts_run_there") else {
        return;
    };
    let s = Session::new(&o).unwrap();
    let r = s
        .run(
            "id -un; cat; echo oops >&2; exit 3",
            Input::Bytes(b"in\n".to_vec()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code(), Some(3), "the script's own status is a reply");
    assert_eq!(
        r.stdout_text(),
        format!("{}\nin\n", o.username.as_deref().unwrap())
    );
    assert_eq!(r.stderr, "oops");
    // Quoting survives a login shell and `sh -c`.
    let r = s
        .run("printf '%s|' \"$0\" 'it'\\''s' \"a b\"", Input::None, T)
        .await
        .unwrap();
    assert_eq!(r.stdout_text(), "sh|it's|a b|");
    assert!(
        std::os::unix::fs::FileTypeExt::is_socket(
            &std::fs::symlink_metadata(s.control_path())
                .unwrap()
                .file_type()
        ),
        "the master's socket is at {}",
        s.control_path().display()
    );
    // Its login shell is sh: later scripts go to it as they are, not through another `sh -c`.
    let cmd = s.command("true");
    let last = cmd.as_std().get_args().last().unwrap();
    assert_eq!(last.to_str(), Some("true"), "{cmd:?}");
    // A later session of the same target rides on that connection (no handshake).
    let again = Session::new(&o).unwrap();
    assert_eq!(again.control_path(), s.control_path());
    let start = Instant::now();
    assert!(again.run("true", Input::None, T).await.unwrap().ok());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_step_past_its_limit_is_killed_and_named() {
    let Some(o) = target("a_step_past_its_limit") else {
        return;
    };
    let s = Session::new(&o).unwrap();
    s.run("true", Input::None, T).await.unwrap();
    let start = Instant::now();
    let e = s
        .run("sleep 20\n# more", Input::None, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, RemoteError::Timeout { .. }), "{e}");
    assert!(e.to_string().starts_with("`sleep 20` on "), "{e}");
}

#[tokio::test]
async fn failures_are_classified_with_what_to_fix() {
    let Some(o) = target("failures_are_classified") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("known_hosts");
    std::fs::write(&empty, "").unwrap();
    let unknown = SshOptions {
        known_hosts: Some(empty.clone()),
        ..o.clone()
    };
    let e = Session::new(&unknown)
        .unwrap()
        .described_as("the login node", "ssh.")
        .run("true", Input::None, T)
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::HostKey { .. }), "{e}");
    assert!(e.to_string().contains("ssh-keyscan -p"), "{e}");

    let closed = SshOptions {
        port: Some(1),
        ..o.clone()
    };
    let start = Instant::now();
    let retry = Retry {
        attempts: 2,
        wait: Duration::from_millis(100),
    };
    let e = Session::new(&closed)
        .unwrap()
        .run_retrying("true", Input::None, T, retry)
        .await
        .unwrap_err();
    assert!(e.is_retryable() && e.to_string().contains("refused"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(20));

    let stranger = dir.path().join("stranger");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(made.success());
    let refused = SshOptions {
        ssh_key_file: Some(stranger),
        ..o
    };
    let e = Session::new(&refused)
        .unwrap()
        .run("true", Input::None, T)
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::Auth { .. }), "{e}");
}

#[tokio::test]
async fn the_binary_is_staged_once_by_content_hash() {
    let Some(o) = target("the_binary_is_staged_once") else {
        return;
    };
    let s = Session::new(&o).unwrap();
    let dir = format!(".cache/covalent-remote-test-{}", std::process::id());
    let path = s.stage_binary(&dir, T, Retry::NONE).await.unwrap();
    let hash = covalent::executor::worker::binary_hash().unwrap();
    assert_eq!(path, staged_path(&dir, &hash));
    let here = remote_home().join(&path);
    let len = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert_eq!(
        len(&here),
        len(&covalent::executor::worker::current_binary().unwrap())
    );
    let entries = std::fs::read_dir(remote_home().join(&dir)).unwrap().count();
    assert_eq!(entries, 1, "no temporary file is left");
    // Remembered for this process and target: a second call does not look again.
    std::fs::remove_file(&here).unwrap();
    assert_eq!(s.stage_binary(&dir, T, Retry::NONE).await.unwrap(), path);
    assert!(!here.exists());
    let _ = std::fs::remove_dir_all(remote_home().join(&dir));
}
