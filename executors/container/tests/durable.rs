//! Durable dispatches on real podman (see `container.rs` for the engine): a detached dispatcher
//! is killed with SIGKILL while its container runs; a fresh call resumes it and follows the same
//! container to its end (no second container), or cancels it (`podman rm --force` through the
//! recorded name). Nothing may be left in `podman ps -a`.

covalent_test_support::isolated_home!();
covalent_test_support::durable_helpers!();

mod engine;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use covalent::Uuid;
use covalent::prelude::*;
use covalent::store::DispatchRecord;
use covalent_container::ContainerExecutor;

macro_rules! need_podman {
    ($test:literal) => {
        if let Err(why) = engine::podman() {
            engine::skip($test, &why);
            return;
        }
    };
}

/// A host directory the containers see at `/shared`: under the test binary's isolated
/// directory, which its detached dispatchers share.
fn shared() -> PathBuf {
    let d = covalent_test_support::isolated_dir()
        .unwrap()
        .join("shared");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn podman() -> ContainerExecutor {
    ContainerExecutor {
        mounts: vec![format!("{}:/shared", shared().display())],
        ..engine::test_executor()
    }
}

/// Appends `tag` to `/shared/<tag>.runs`, sleeps, returns its length.
#[electron(executor = podman())]
fn boxed(tag: String, ms: u64) -> usize {
    covalent_test_support::append_line(format!("/shared/{tag}.runs"), &tag);
    std::thread::sleep(Duration::from_millis(ms));
    tag.len()
}

#[lattice]
fn in_a_box(tag: String, ms: u64) -> usize {
    boxed(tag, ms)
}

fn container(r: &DispatchRecord) -> Option<String> {
    let n = r.nodes.iter().find(|n| n.name == "boxed")?;
    n.job_handle.as_ref()?["container"]
        .as_str()
        .map(str::to_string)
}

/// The container's state, `""` when there is none.
fn state(name: &str) -> String {
    let out = Command::new("podman")
        .args([
            "container",
            "inspect",
            "--format",
            "{{.State.Status}}",
            name,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn runs(tag: &str) -> usize {
    std::fs::read_to_string(shared().join(format!("{tag}.runs")))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_resume_follows_the_container_a_killed_dispatcher_left_running() {
    need_podman!("a_resume_follows_the_container_a_killed_dispatcher_left_running");
    let tag = format!("resume{}", Uuid::now_v7().simple());
    let id = covalent::dispatch_detached(in_a_box(tag.clone(), 4_000)).unwrap();
    let before = wait_for(id, "the container running", |r| {
        container(r).is_some_and(|c| state(&c) == "running")
    });
    let name = container(&before).unwrap();
    kill_dispatcher(id);
    assert_eq!(
        state(&name),
        "running",
        "a container outlives its dispatcher"
    );
    let resumed = covalent::resume(id).unwrap();
    let r = store()
        .wait(resumed, Some(Duration::from_secs(120)))
        .unwrap();
    assert_eq!(r.status, Status::Completed, "{r}");
    assert_eq!(r.value::<usize>().unwrap(), Some(tag.len()));
    assert_eq!(
        container(&r).as_deref(),
        Some(name.as_str()),
        "the same container"
    );
    assert_eq!(runs(&tag), 1, "no second container ran the task");
    assert_eq!(state(&name), "", "the container is removed");
}

#[test]
fn cancel_removes_the_container_of_a_dead_dispatcher() {
    need_podman!("cancel_removes_the_container_of_a_dead_dispatcher");
    let tag = format!("cancel{}", Uuid::now_v7().simple());
    let id = covalent::dispatch_detached(in_a_box(tag.clone(), 60_000)).unwrap();
    let before = wait_for(id, "the container running", |r| {
        container(r).is_some_and(|c| state(&c) == "running")
    });
    let name = container(&before).unwrap();
    kill_dispatcher(id);
    let report = covalent::cancel_left_running(&store(), id).unwrap();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0].outcome, "cancelled", "{report:?}");
    assert_eq!(state(&name), "", "the container is gone");
    let r = store().get(id).unwrap();
    assert_eq!(r.status, Status::Cancelled, "{r}");
}
