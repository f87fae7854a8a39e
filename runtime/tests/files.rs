//! Files that travel with tasks, beside the dispatcher: the `local` executor's transfers in a
//! directory of the attempt's own, HTTP downloads from a server on loopback (checked, and
//! nothing kept of one cut short), transfers in the store's record, and `.reuse()` telling a
//! changed input file from an unchanged one. (Every out-of-process executor runs the file
//! scenarios of the conformance suite.)

covalent_test_support::isolated_home!();

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use covalent::files::hash_file;
use covalent::prelude::*;
use covalent::{ErrorKind, File};

/// The dispatcher's directory, where relative transfer paths resolve: this binary's own.
fn cwd() -> &'static Path {
    static CWD: LazyLock<PathBuf> = LazyLock::new(|| {
        let d = covalent_test_support::isolated_dir()
            .unwrap()
            .join("dispatcher-cwd");
        std::fs::create_dir_all(d.join("inputs")).unwrap();
        std::fs::write(d.join("inputs/a.csv"), "a\n1\n2\n").unwrap();
        std::env::set_current_dir(&d).unwrap();
        d
    });
    &CWD
}

static HTTP: LazyLock<String> = LazyLock::new(|| {
    covalent_test_support::http_server(vec![("data.csv".into(), b"x,y\n1,2\n3,4\n".repeat(1000))])
});

#[electron(files = [stage_in("inputs/a.csv", "a.csv"), stage_out("out.csv", "outputs/out.csv")])]
fn in_process() -> Result<(String, File), String> {
    let dir = covalent::task_dir();
    let a = std::fs::read_to_string(dir.join("a.csv")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("out.csv"), a.to_uppercase()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("extra.txt"), "extra").map_err(|e| e.to_string())?;
    Ok((
        dir.display().to_string(),
        File::output("extra.txt").map_err(|e| e.to_string())?,
    ))
}

#[lattice]
fn local_flow() -> (String, File) {
    in_process()
}

#[test]
fn the_local_executor_stages_files_in_a_directory_of_the_attempts_own() {
    let cwd = cwd();
    let r = covalent::dispatch_sync(local_flow()).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let (dir, extra) = r.value().cloned().unwrap();
    // Not the process's directory (other tasks share it): the attempt's, among the results.
    let results = r.results_dir().to_path_buf();
    assert_eq!(PathBuf::from(&dir), results.join("files").join("0-1"));
    assert_eq!(
        std::fs::read_to_string(cwd.join("outputs/out.csv")).unwrap(),
        "A\n1\n2\n"
    );
    assert_eq!(extra.path().unwrap(), PathBuf::from(&dir).join("extra.txt"));

    // The record in the store has every transfer, with what arrived.
    let rec = covalent::get_result(r.dispatch_id()).unwrap();
    let node = rec.nodes.iter().find(|n| n.name == "in_process").unwrap();
    let (inn, out): (Vec<_>, Vec<_>) = node.transfers.iter().partition(|t| t.direction == "in");
    assert_eq!(inn.len(), 1, "{:#?}", node.transfers);
    assert_eq!(out.len(), 1, "{:#?}", node.transfers);
    assert_eq!(
        inn[0].blake3.as_deref(),
        Some(hash_file(&cwd.join("inputs/a.csv")).unwrap().1.as_str())
    );
    assert_eq!(
        inn[0].source,
        format!("file://{}", cwd.join("inputs/a.csv").display())
    );
    assert_eq!((inn[0].via.as_str(), inn[0].bytes), ("task", 6));
    assert!(
        out[0].destination.ends_with("outputs/out.csv"),
        "{:#?}",
        out[0]
    );
}

#[electron]
fn count_local(data: File) -> Result<usize, String> {
    data.read_to_string()
        .map(|s| s.lines().count())
        .map_err(|e| e.to_string())
}

#[electron(executor = "process", retries = 1)]
fn count_process(data: File) -> Result<usize, String> {
    data.read_to_string()
        .map(|s| s.lines().count())
        .map_err(|e| e.to_string())
}

#[lattice]
fn http_flow(data: File) -> (usize, usize) {
    (count_local(data.clone()), count_process(data))
}

#[test]
fn http_downloads_arrive_checked_and_a_cut_one_leaves_nothing() {
    cwd();
    let url = format!("{}/f/data.csv", *HTTP);
    let r = covalent::dispatch_sync(http_flow(File::new(&url).unwrap())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    assert_eq!(r.value(), Some(&(3000, 3000)));
    for name in ["count_local", "count_process"] {
        let n = r.nodes().find(|n| n.name() == name).unwrap();
        let t = n.transfers();
        assert_eq!(t.len(), 1, "{name}: {t:#?}");
        assert_eq!(
            (t[0].strategy.as_str(), t[0].via.as_str(), t[0].bytes),
            ("http", "task", 12_000),
            "{name}"
        );
        assert_eq!(t[0].source, url);
    }

    // Cut short: failed as a transfer (retried), and no partial file where it was going.
    let cut = format!("{}/cut/data.csv", *HTTP);
    let r = covalent::dispatch_sync(http_flow(File::new(&cut).unwrap())).unwrap();
    assert_eq!(r.status(), Status::Failed, "{r}");
    for name in ["count_local", "count_process"] {
        let n = r.nodes().find(|n| n.name() == name).unwrap();
        assert_eq!(n.error_kind(), Some(ErrorKind::Transfer), "{name}: {r}");
        let e = n.error().unwrap();
        assert!(
            e.contains("cut short") || e.contains("part-way"),
            "{name}: {e}"
        );
    }
    let process = r.nodes().find(|n| n.name() == "count_process").unwrap();
    assert_eq!(process.attempts().len(), 2, "retried: {r}");
    let files = r.results_dir().join("files");
    let left: Vec<PathBuf> = walk(&files).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "nothing kept of a cut download: {left:?}");

    let missing = format!("{}/f/nope.csv", *HTTP);
    let r = covalent::dispatch_sync(http_flow(File::new(&missing).unwrap())).unwrap();
    let n = r.nodes().find(|n| n.name() == "count_local").unwrap();
    assert_eq!(n.error_kind(), Some(ErrorKind::Transfer), "{r}");
    assert!(n.error().unwrap().contains("404"), "{r}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[electron(executor = "process")]
fn line_count(data: File) -> Result<usize, String> {
    data.read_to_string()
        .map(|s| s.lines().count())
        .map_err(|e| e.to_string())
}

#[lattice]
fn reuse_flow(data: File) -> usize {
    line_count(data)
}

#[test]
fn reuse_tells_a_changed_input_file_by_its_content() {
    let cwd = cwd();
    let path = cwd.join("inputs/reuse.txt");
    std::fs::write(&path, "1\n2\n").unwrap();
    let p = path.to_str().unwrap();
    let first = covalent::dispatch_sync(reuse_flow(File::new(p).unwrap())).unwrap();
    assert_eq!(first.value(), Some(&2));
    let status_of = |r: &covalent::LatticeResult<usize>| {
        r.nodes()
            .find(|n| n.name() == "line_count")
            .unwrap()
            .status()
    };
    let same =
        covalent::dispatch_sync(reuse_flow(File::new(p).unwrap()).reuse(first.dispatch_id()))
            .unwrap();
    assert_eq!(status_of(&same), Status::Reused, "{same}");
    // Same path, same size, other content: not the same input.
    std::fs::write(&path, "3\n4\n").unwrap();
    let changed =
        covalent::dispatch_sync(reuse_flow(File::new(p).unwrap()).reuse(first.dispatch_id()))
            .unwrap();
    assert_eq!(status_of(&changed), Status::Completed, "{changed}");
    assert_eq!(changed.value(), Some(&2));
}
