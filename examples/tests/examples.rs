//! Every example runs to the end and prints what its how-to promises.

covalent_test_support::isolated_home!();

use std::process::Command;

use covalent_test_support::run_example;

#[test]
fn quickstart_prints_the_seed_report() {
    let out = run_example("quickstart", &[]);
    for needle in [
        "Lattice Result",
        "status: COMPLETED",
        "result: 28",
        "inputs: x=3, y=4",
        "dispatch_id: ",
        "start_time: ",
        "end_time: ",
        "Node Outputs",
        "add(0): 7",
        "multiply(3): 28",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn timing_executor_logs_one_line_per_electron() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: the executor creates it.
    let logs = dir.path().join("not/yet/there");
    let out = run_example(
        "timing_executor",
        &[("TIMING_LOG_DIR", logs.to_str().unwrap())],
    );
    assert!(out.contains("result: 28"), "{out}");
    let log = std::fs::read_to_string(logs.join("timing.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // add/multiply, then the 10 terms and the sum of e_ser(10).
    assert_eq!(lines.len(), 2 + 11, "{log}");
    for l in &lines {
        assert!(
            l.starts_with("Node ") && l.contains(" in dispatch ") && l.ends_with("s of CPU time."),
            "{l}"
        );
    }
    assert!(
        out.contains("e_ser(10) = Some(2.7182815255731922)"),
        "{out}"
    );
}

#[test]
fn same_executor_runs_both_tasks_on_one_instance() {
    let out = run_example("same_executor", &[]);
    assert!(
        out.contains("both nodes ran on the same executor instance"),
        "{out}"
    );
    assert!(out.contains("task_1 ran on executor instance"), "{out}");
    assert!(out.contains("task_2 ran on executor instance"), "{out}");
}

#[test]
fn async_executor_runs_every_task() {
    let out = run_example("async_executor", &[]);
    assert!(out.contains("result: 20"), "{out}");
    assert!(
        out.contains("tasks run by the counting executor: 5"),
        "{out}"
    );
    assert!(
        out.contains("job handle: Some(JobHandle(String(\"counting-"),
        "{out}"
    );
}

#[test]
fn dynamic_fanout_sizes_its_sublattice_at_run_time() {
    let out = run_example("dynamic_fanout", &[]);
    // count_inputs(10) = 5: five measures and a total.
    assert!(
        out.contains("the sublattice `measure_all` ran 6 tasks"),
        "{out}"
    );
    assert!(
        out.contains("    measure("),
        "child nodes are listed under the parent:\n{out}"
    );
}

#[test]
fn a_malformed_config_stops_the_dispatch_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("covalent.toml");
    std::fs::write(
        &cfg,
        "[sdk]\ndefault_executor = \"local\"\nfail_fast = \"yes\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO"))
        .current_dir(covalent_test_support::workspace_root())
        .args(["run", "--quiet", "--example", "quickstart"])
        .env("COVALENT_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: `fail_fast = \"yes\"`", cfg.display())),
        "{err}"
    );
}

#[test]
fn process_executor_captures_streams_and_survives_a_crash() {
    let out = run_example("process_executor", &[]);
    assert!(out.contains("squaring 3 in process"), "{out}");
    assert!(
        out.contains("the crash node failed with:") && out.contains("SIGABRT"),
        "{out}"
    );
}

#[test]
fn files_ships_a_csv_and_brings_the_result_file_back() {
    let out = run_example("files", &[]);
    assert!(
        out.contains("300 rows in, 3 stations out, back at file://"),
        "{out}"
    );
    assert!(out.contains("north,12.97"), "{out}");
    assert!(out.contains("/files/0-1/means.csv"), "{out}");
    if covalent_test_support::sshd_env().is_ok() {
        let out = run_example("files", &[("FILES_EXECUTOR", "ssh")]);
        assert!(out.contains("north,12.97"), "{out}");
        assert!(
            out.contains("station_means: in  rsync") && out.contains("via the dispatcher"),
            "{out}"
        );
    }
}

#[test]
fn stopping_electrons_shows_polling_giving_up_and_killing() {
    let out = run_example("stopping_electrons", &[]);
    assert!(out.contains("ended FAILED after"), "{out}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no line for {name} in\n{out}"))
            .to_string()
    };
    let anneal = line("anneal");
    assert!(
        anneal.contains("FAILED (timed out after 300ms")
            && !anneal.contains("could not be stopped"),
        "{anneal}"
    );
    let stubborn = line("stubborn");
    assert!(
        stubborn.contains("timed out after 100ms") && stubborn.contains("could not be stopped"),
        "{stubborn}"
    );
    assert!(
        line("stubborn_elsewhere").contains("timed out after 200ms"),
        "{out}"
    );
    assert!(out.contains("and returned: true"), "{out}");
}

#[test]
fn detached_returns_at_once_and_its_dispatch_completes_after_it_exited() {
    let out = run_example("detached", &[("DETACHED_SECONDS", "3")]);
    let id: covalent::Uuid = out.lines().next().unwrap().trim().parse().unwrap();
    let store = covalent::store::Store::open_default().unwrap();
    // The example has exited; its dispatch still runs, in a process of its own (a dispatcher
    // that had died with it would read INTERRUPTED here).
    let origin = store.origin(id).unwrap();
    assert_eq!(origin.status, covalent::Status::Running);
    let record = store
        .wait(id, Some(std::time::Duration::from_secs(120)))
        .unwrap();
    assert_eq!(record.status, covalent::Status::Completed, "{record}");
    assert_eq!(record.value::<u64>().unwrap(), Some(1 + 4 + 9));
    assert_eq!(origin.lattice_path.as_deref(), Some("detached::overnight"));
}
