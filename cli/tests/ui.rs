//! Tests of `covalent ui`: the real binary serving a temporary store on an ephemeral loopback
//! port, spoken to over plain HTTP/1.1 from this process (which also records the dispatches).
//! They cover the JSON API, the pages and assets, live events, cancellation and the security
//! rules (loopback hosts, tokens, cross-site POSTs, unknown ids, missing and corrupt stores).

covalent_test_support::isolated_home!();

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use covalent::{Config, Status};
use serde_json::Value;

mod common;
use common::*;

#[test]
fn a_store_deleted_or_replaced_while_the_server_runs_is_followed() {
    let home = tempfile::tempdir().unwrap();
    let first = covalent::dispatch_sync(workflow(3, 4).with_config(config(home.path()))).unwrap();
    let server = serve(home.path(), &[]);
    let addr = &server.addr;
    let ids = |addr: &str| -> Vec<String> {
        get(addr, "/api/dispatches").json()["dispatches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(addr), [first.dispatch_id().to_string()]);
    let files = ["covalent.db", "covalent.db-wal", "covalent.db-shm"];

    // Deleted: the server says nothing is recorded (it does not keep serving the old file).
    for f in files {
        let _ = std::fs::remove_file(home.path().join(f));
    }
    let api = get(addr, "/api/dispatches").json();
    assert_eq!(api["store"]["exists"], false, "{api}");
    assert!(api["dispatches"].as_array().unwrap().is_empty());

    // Re-created with another dispatch: that one is shown.
    let second = covalent::dispatch_sync(workflow(1, 2).with_config(config(home.path()))).unwrap();
    assert_eq!(ids(addr), [second.dispatch_id().to_string()]);

    // Replaced by another store file (moved over it): its dispatches are shown.
    let other = tempfile::tempdir().unwrap();
    let third = covalent::dispatch_sync(workflow(5, 6).with_config(config(other.path()))).unwrap();
    covalent::store::Store::open(&other.path().join("covalent.db"))
        .unwrap()
        .vacuum()
        .unwrap();
    std::fs::rename(
        other.path().join("covalent.db"),
        home.path().join("covalent.db"),
    )
    .unwrap();
    for f in ["covalent.db-wal", "covalent.db-shm"] {
        let _ = std::fs::remove_file(home.path().join(f));
    }
    assert_eq!(ids(addr), [third.dispatch_id().to_string()]);
}

/// One runtime for every test of this file, as a program has one. With a runtime per test, a
/// cancel request was once missed while another test's runtime shut down (not diagnosed; see
/// the report of the UI issue).
static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> =
    std::sync::LazyLock::new(|| tokio::runtime::Runtime::new().unwrap());

fn config(home: &Path) -> Config {
    let text = format!(
        "[sdk]\ndata_dir = {:?}\nprogress = false\n",
        home.display().to_string()
    );
    Config::parse(&text, Path::new("test.toml")).unwrap()
}

/// A running `covalent ui`; killed (by its handle) when dropped.
struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
    /// The rest of its stdout, kept open.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ui_command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_covalent"));
    cmd.arg("ui")
        .args(args)
        .current_dir(home)
        .env("COVALENT_HOME", home)
        .env_remove("COVALENT_CONFIG")
        .env_remove("COVALENT_UI_TOKEN")
        .env("XDG_CONFIG_HOME", home.join("no-user-config"))
        .env("XDG_DATA_HOME", home.join("no-user-data"));
    cmd
}

/// Starts `covalent ui --port 0 ARGS` on the store in `home` and waits for its address.
fn serve(home: &Path, args: &[&str]) -> Server {
    let mut child = ui_command(home, &[&["--port", "0"], args].concat())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("covalent ui starts");
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    let url = first
        .strip_prefix("covalent ui: http://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let addr = url.split('/').next().unwrap().to_string();
    Server {
        child,
        addr,
        _stdout: stdout,
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// One HTTP/1.1 request (`Connection: close`); `headers` may override `Host`.
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn get(addr: &str, path: &str) -> Answer {
    http(addr, "GET", path, &[], "")
}

/// The CSRF token of the server.
fn csrf(addr: &str) -> String {
    get(addr, "/api").json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Reads a server-sent-event stream until `want` appears (or panics after `timeout`).
struct Events {
    stream: TcpStream,
    seen: String,
}

impl Events {
    fn open(addr: &str, path: &str) -> Events {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        Events {
            stream,
            seen: String::new(),
        }
    }

    fn wait_for(&mut self, want: &str, timeout: Duration) -> String {
        let start = Instant::now();
        let mut buf = [0u8; 65536];
        loop {
            if let Some(at) = self.seen.find(want) {
                let rest = self.seen[at..].to_string();
                self.seen = self.seen[at + want.len()..].to_string();
                return rest;
            }
            assert!(
                start.elapsed() < timeout,
                "no {want:?} within {timeout:?}; got {:?}",
                self.seen
            );
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("the stream closed before {want:?}; got {:?}", self.seen),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => {}
            }
        }
    }
}

#[test]
fn the_api_lists_dispatches_with_counts_search_sort_and_pages() {
    let home = tempfile::tempdir().unwrap();
    let cfg = || config(home.path());
    let a = covalent::dispatch_sync(workflow(3, 4).with_config(cfg())).unwrap();
    let bad = covalent::dispatch_sync(broken(5).with_config(cfg())).unwrap();
    let b = covalent::dispatch_sync(workflow(1, 2).with_config(cfg())).unwrap();
    let server = serve(home.path(), &[]);
    let addr = &server.addr;

    let page = get(addr, "/api/dispatches").json();
    assert_eq!(page["matched"], 3);
    assert_eq!(page["total"], 3);
    assert_eq!(page["counts"]["COMPLETED"], 2);
    assert_eq!(page["counts"]["FAILED"], 1);
    let rows = page["dispatches"].as_array().unwrap();
    assert_eq!(rows[0]["id"], b.dispatch_id().to_string(), "newest first");
    assert_eq!(rows[1]["lattice"], "broken");
    assert_eq!(
        (rows[1]["done"].as_u64(), rows[1]["total"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(rows[2]["runtime_ms"].as_f64().unwrap() >= 0.0);
    assert!(rows[2]["start_time"].as_str().unwrap().ends_with('Z'));

    let failed = get(addr, "/api/dispatches?status=failed").json();
    assert_eq!(failed["matched"], 1);
    assert_eq!(failed["dispatches"][0]["id"], bad.dispatch_id().to_string());
    let search = get(addr, "/api/dispatches?search=work").json();
    assert_eq!(search["matched"], 2);
    let prefix = &a.dispatch_id().to_string()[..30];
    let by_id = get(addr, &format!("/api/dispatches?search={prefix}")).json();
    assert_eq!(by_id["matched"], 1);
    assert_eq!(by_id["dispatches"][0]["id"], a.dispatch_id().to_string());

    let sorted = get(addr, "/api/dispatches?sort=lattice").json();
    let names: Vec<&str> = sorted["dispatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["lattice"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken", "workflow", "workflow"]);
    assert_eq!(sorted["order"], "asc");
    let second = get(addr, "/api/dispatches?limit=1&offset=1").json();
    assert_eq!(second["dispatches"].as_array().unwrap().len(), 1);
    assert_eq!(second["dispatches"][0]["lattice"], "broken");
    assert_eq!(second["matched"], 3);
    let tasks = get(addr, "/api/dispatches?sort=tasks&order=asc&limit=1").json();
    assert_eq!(tasks["dispatches"][0]["lattice"], "broken");

    let bad_sort = get(addr, "/api/dispatches?sort=size");
    assert_eq!(bad_sort.status, 400);
    assert!(
        bad_sort.json()["error"]
            .as_str()
            .unwrap()
            .contains("unknown sort `size`")
    );
    assert_eq!(get(addr, "/api/dispatches?status=bogus").status, 400);

    let index = get(addr, "/api").json();
    assert_eq!(index["store"]["exists"], true);
    assert!(index["endpoints"].as_array().unwrap().len() >= 9);
    assert_eq!(index["csrf_token"].as_str().unwrap().len(), 32);
}

#[test]
fn the_api_gives_a_dispatch_its_graph_nodes_and_sublattices() {
    let home = tempfile::tempdir().unwrap();
    let r = covalent::dispatch_sync(fanned(3).with_config(config(home.path()))).unwrap();
    let id = r.dispatch_id().to_string();
    let server = serve(home.path(), &[]);
    let addr = &server.addr;

    let d = get(addr, &format!("/api/dispatches/{id}")).json();
    assert_eq!(d["status"], "COMPLETED");
    assert_eq!(d["lattice"], "fanned");
    assert_eq!(d["output"], 5);
    assert_eq!(d["inputs"][0]["name"], "n");
    assert_eq!(d["inputs"][0]["value"], 3);
    assert_eq!(
        (d["done"].as_u64(), d["total"].as_u64()),
        (Some(2), Some(2))
    );
    let nodes = d["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), r.nodes().count());
    let fan = nodes.iter().find(|n| n["name"] == "fan").unwrap();
    let add = nodes.iter().find(|n| n["name"] == "add").unwrap();
    assert_eq!(fan["status"], "COMPLETED");
    assert_eq!(fan["executor"], "local");
    assert_eq!(fan["sub"]["lattice"], "fan");
    assert_eq!(fan["sub"]["tasks"], 4);
    // Edges: (source id, parameter name).
    assert_eq!(fan["inputs"][0][0], add["id"]);
    assert_eq!(fan["inputs"][0][1], "n");
    assert!(nodes.iter().any(|n| n["internal"] == true));

    let fan_id = fan["id"].as_u64().unwrap();
    let sub = get(addr, &format!("/api/dispatches/{id}/sublattices/{fan_id}")).json();
    assert_eq!(sub["lattice"], "fan");
    assert_eq!(sub["crumbs"][0]["name"], "fan");
    let children = sub["nodes"].as_array().unwrap();
    let squares = children.iter().filter(|n| n["name"] == "square").count();
    assert_eq!(squares, 3);
    let child = children.iter().find(|n| n["name"] == "total").unwrap();
    let child_id = child["id"].as_u64().unwrap();

    let node = get(addr, &format!("/api/dispatches/{id}/nodes/{}", add["id"])).json();
    assert_eq!(node["name"], "add");
    assert_eq!(node["status"], "COMPLETED");
    assert_eq!(node["output"], 3);
    assert_eq!(node["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(node["inputs"][0]["value"], 3);
    assert_eq!(node["dependants"][0]["name"], "fan");
    assert_eq!(node["cancellable"], false);
    assert!(node["executor_options"].is_object());
    assert!(node["runtime_ms"].as_f64().is_some());
    let nested = get(
        addr,
        &format!("/api/dispatches/{id}/nodes/{fan_id}/{child_id}"),
    )
    .json();
    assert_eq!(nested["name"], "total");
    assert_eq!(nested["output"], 5);
    assert_eq!(nested["path"], format!("{fan_id}/{child_id}"));
    let record = get(addr, &format!("/api/dispatches/{id}/record")).json();
    assert_eq!(record["id"], id);

    // Prefixes work; unknown things are 404s with a message.
    let short = get(addr, &format!("/api/dispatches/{}", &id[..30])).json();
    assert_eq!(short["id"], id);
    let unknown = get(addr, "/api/dispatches/0123abcd");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["kind"], "unknown_dispatch");
    assert!(
        unknown.json()["error"]
            .as_str()
            .unwrap()
            .contains("0123abcd")
    );
    let no_node = get(addr, &format!("/api/dispatches/{id}/nodes/999"));
    assert_eq!(no_node.status, 404);
    assert!(
        no_node.json()["error"]
            .as_str()
            .unwrap()
            .contains("no node 999")
    );
    let not_sub = get(
        addr,
        &format!("/api/dispatches/{id}/sublattices/{}", add["id"]),
    );
    assert_eq!(not_sub.status, 404);
    assert_eq!(
        get(addr, &format!("/api/dispatches/{id}/nodes/x")).status,
        400
    );
    assert_eq!(get(addr, "/api/nothing").status, 404);
}

#[covalent::electron]
fn tick(i: u64) -> u64 {
    i * i
}

#[covalent::electron]
fn sum_all(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// `n` tasks fanned into one.
#[covalent::lattice]
fn wide(n: u64) -> u64 {
    let xs: Vec<covalent::Node<u64>> = (0..n).map(tick).collect();
    sum_all(xs)
}

/// Above 20,000 tasks (`GRAPH_FULL_MAX`) the dispatch answer has no nodes: its graph comes
/// grouped by name and depth, a group's nodes a page at a time, a node with its first inputs.
#[test]
fn a_dispatch_too_big_to_draw_is_summarized_and_read_a_page_at_a_time() {
    let home = tempfile::tempdir().unwrap();
    let n: u64 = 25_000;
    let r = covalent::dispatch_sync(wide(n).with_config(config(home.path()))).unwrap();
    let id = r.dispatch_id().to_string();
    let all_nodes = r.nodes().count() as u64;
    let server = serve(home.path(), &[]);
    let addr = &server.addr;

    let d = get(addr, &format!("/api/dispatches/{id}")).json();
    assert_eq!(d["summarized"], true);
    assert!(d.get("nodes").is_none(), "no node list");
    assert_eq!(d["status"], "COMPLETED");
    assert_eq!(d["output"], (0..n).map(|i| i * i).sum::<u64>());
    assert_eq!(
        (d["done"].as_u64(), d["total"].as_u64()),
        (Some(n + 1), Some(n + 1))
    );
    assert_eq!(d["node_count"], all_nodes);
    assert_eq!(d["shown"], n + 1, "internal nodes hidden");
    let groups = d["groups"].as_array().unwrap();
    let counts: u64 = groups.iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(counts, n + 1, "the groups hold every shown node");
    assert_eq!(groups.len(), 2, "{groups:?}");
    let (squares, sum) = (&groups[0], &groups[1]);
    assert_eq!(
        (squares["name"].as_str(), squares["count"].as_u64()),
        (Some("tick"), Some(n))
    );
    assert_eq!(squares["statuses"]["COMPLETED"], n);
    assert_eq!(squares["executor"], "local");
    assert_eq!(squares["depth"], serde_json::json!([0, 0]));
    assert_eq!(
        (sum["name"].as_str(), sum["count"].as_u64()),
        (Some("sum_all"), Some(1))
    );
    assert_eq!(sum["depth"], serde_json::json!([1, 1]));
    // The edges through the hidden collection node join the squares to the total.
    assert_eq!(
        d["group_edges"],
        serde_json::json!([{ "source": 0, "target": 1, "count": n }])
    );

    // With internal nodes: every node is in a group.
    let all = get(addr, &format!("/api/dispatches/{id}?internal=1")).json();
    let groups_all = all["groups"].as_array().unwrap();
    let every: u64 = groups_all
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(every, all_nodes);
    assert!(
        groups_all
            .iter()
            .any(|g| g["internal"] == true && g["count"] == n),
        "a group of {n} parameters: {groups_all:?}"
    );
    assert!(all["group_edges"].as_array().unwrap().len() >= 3);

    // A page of a group's nodes, then the next one.
    let page = get(
        addr,
        &format!("/api/dispatches/{id}/nodes?group=0&offset=100&limit=50"),
    )
    .json();
    assert_eq!(page["matching"], n);
    let nodes = page["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 50);
    assert!(
        nodes
            .iter()
            .all(|m| m["name"] == "tick" && m["status"] == "COMPLETED")
    );
    let ids: Vec<u64> = nodes.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order");
    let first = get(addr, &format!("/api/dispatches/{id}/nodes?group=0&limit=1")).json();
    assert_eq!(first["nodes"][0]["id"], squares["first_id"]);
    let last = get(
        addr,
        &format!("/api/dispatches/{id}/nodes?group=0&offset={}", n - 3),
    )
    .json();
    assert_eq!(last["nodes"].as_array().unwrap().len(), 3, "the last page");
    let plain = get(addr, &format!("/api/dispatches/{id}/nodes?limit=10")).json();
    assert_eq!(plain["matching"], n + 1);
    assert_eq!(plain["nodes"].as_array().unwrap().len(), 10);
    assert_eq!(
        get(addr, &format!("/api/dispatches/{id}/nodes?limit=501")).status,
        400
    );
    assert_eq!(
        get(addr, &format!("/api/dispatches/{id}/nodes?group=7")).status,
        404
    );

    // The drawer of the sum: its one input is the hidden collection node, whose 25,000 inputs
    // come 200 at a time.
    let total_id = sum["first_id"].as_u64().unwrap();
    let t = get(addr, &format!("/api/dispatches/{id}/nodes/{total_id}")).json();
    assert_eq!(t["name"], "sum_all");
    assert_eq!(t["output"], d["output"]);
    assert_eq!(t["inputs_total"], 1);
    let list = t["inputs"][0]["source"].as_u64().unwrap();
    assert_eq!(t["inputs"][0]["source_internal"], true);
    let l = get(addr, &format!("/api/dispatches/{id}/nodes/{list}")).json();
    assert_eq!(l["inputs_total"], n);
    let inputs = l["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 200, "capped");
    assert!(inputs.iter().all(|i| i["source_name"] == "tick"));
    assert_eq!(inputs[0]["value"], 0);
    assert_eq!(inputs[3]["value"], 9);
    assert_eq!(l["dependants"][0]["id"], total_id);
    assert_eq!(l["dependants_total"], 1);
    let sq = squares["first_id"].as_u64().unwrap();
    let s = get(addr, &format!("/api/dispatches/{id}/nodes/{sq}")).json();
    assert_eq!(
        (s["name"].as_str(), s["output"].as_i64()),
        (Some("tick"), Some(0))
    );
    assert_eq!(s["dependants"][0]["id"], list);
    assert_eq!(
        get(
            addr,
            &format!("/api/dispatches/{id}/nodes/{}", all_nodes + 5)
        )
        .status,
        404
    );

    // Live events send the groups' counts, not the nodes.
    let mut events = Events::open(addr, &format!("/api/dispatches/{id}/events"));
    let update = events.wait_for("event: update", Duration::from_secs(20));
    let data = update
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("data: ")
        .unwrap();
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["status"], "COMPLETED");
    assert!(data["nodes"].as_array().unwrap().is_empty());
    assert_eq!(
        data["groups"][0],
        serde_json::json!([0, { "COMPLETED": n }])
    );
    assert_eq!(data["groups"].as_array().unwrap().len(), 2);
    events.wait_for("event: end", Duration::from_secs(10));

    // Cancel checks the node ids it is given without reading every node.
    let token = csrf(addr);
    let ok = [
        ("Content-Type", "application/json"),
        ("X-Covalent-Csrf", token.as_str()),
    ];
    let path = format!("/api/dispatches/{id}/cancel");
    let bad = http(
        addr,
        "POST",
        &path,
        &ok,
        &format!(r#"{{"nodes": [{}]}}"#, all_nodes + 5),
    );
    assert_eq!(bad.status, 404, "{bad:?}");
    let ended = http(addr, "POST", &path, &ok, &format!(r#"{{"nodes": [{sq}]}}"#));
    assert_eq!(ended.status, 409, "{ended:?}");
}

/// `n` quick tasks, then one that waits for a task sleeping `secs`.
#[covalent::lattice]
fn wide_and_slow(n: u64, secs: u64) -> u64 {
    let xs: Vec<covalent::Node<u64>> = (0..n).map(tick).collect();
    sum_all(xs).wait_for([nap(secs)])
}

#[test]
fn a_running_big_dispatch_streams_its_groups_counts_and_is_cancelled() {
    let home = tempfile::tempdir().unwrap();
    let rt = &*RUNTIME;
    let d = rt
        .block_on(covalent::dispatch(
            wide_and_slow(25_000, 60).with_config(config(home.path())),
        ))
        .unwrap();
    let id = d.id().to_string();
    let server = serve(home.path(), &[]);
    let addr = &server.addr;

    // The nap runs once the ticks are done (the graph is there from the start).
    let group = |d: &Value, name: &str| -> Value {
        d["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let start = Instant::now();
    let nap_group = loop {
        let a = get(addr, &format!("/api/dispatches/{id}")).json();
        assert_eq!(a["summarized"], true, "{a}");
        let g = group(&a, "nap");
        if g["statuses"]["RUNNING"] == 1 && a["done"] == 25_000 {
            assert_eq!(a["status"], "RUNNING");
            assert_eq!(group(&a, "sum_all")["statuses"]["NEW"], 1);
            break g;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{a}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut events = Events::open(addr, &format!("/api/dispatches/{id}/events"));
    let first = events.wait_for("event: update", Duration::from_secs(10));
    let data = first
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("data: ")
        .unwrap();
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["status"], "RUNNING");
    assert!(data["nodes"].as_array().unwrap().is_empty());
    let key = nap_group["key"].clone();
    assert!(
        data["groups"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!([key, { "RUNNING": 1 }])),
        "{data}"
    );

    // Cancelling the nap by its id: checked without reading every node.
    let token = csrf(addr);
    let ok = [
        ("Content-Type", "application/json"),
        ("X-Covalent-Csrf", token.as_str()),
    ];
    let path = format!("/api/dispatches/{id}/cancel");
    let nap_id = nap_group["first_id"].clone();
    let a = http(
        addr,
        "POST",
        &path,
        &ok,
        &format!(r#"{{"nodes": [{nap_id}]}}"#),
    );
    assert_eq!(a.status, 202, "{a:?}");
    let end = events.wait_for("event: end", Duration::from_secs(20));
    assert!(end.starts_with("event: end"));
    let r = rt.block_on(d.wait()).unwrap();
    assert_eq!(r.status(), Status::Cancelled);
    let after = get(addr, &format!("/api/dispatches/{id}")).json();
    assert_eq!(after["status"], "CANCELLED");
    assert_eq!(group(&after, "nap")["statuses"]["CANCELLED"], 1, "{after}");
}

#[test]
fn pages_and_embedded_assets_are_served_and_nothing_else() {
    let home = tempfile::tempdir().unwrap();
    let r = covalent::dispatch_sync(workflow(3, 4).with_config(config(home.path()))).unwrap();
    let id = r.dispatch_id().to_string();
    let server = serve(home.path(), &[]);
    let addr = &server.addr;

    let list = get(addr, "/");
    assert_eq!(list.status, 200);
    assert!(
        list.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(list.body.contains(&format!("content=\"{}\"", csrf(addr))));
    assert!(list.body.contains("/assets/list.js"));
    let csp = list.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(list.header("x-frame-options"), Some("DENY"));
    assert_eq!(list.header("x-content-type-options"), Some("nosniff"));

    let page = get(addr, &format!("/dispatches/{id}"));
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("content=\"{id}\"")));
    assert!(page.body.contains("/assets/graph.js"));
    let short = get(addr, &format!("/dispatches/{}?internal=1", &id[..30]));
    assert_eq!(short.status, 303);
    assert_eq!(
        short.header("location"),
        Some(format!("/dispatches/{id}?internal=1").as_str())
    );
    let unknown = get(addr, "/dispatches/0123abcd");
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("Unknown dispatch"));
    assert!(unknown.body.contains("0123abcd"));
    let escaped = get(addr, "/dispatches/%3Cscript%3E");
    assert_eq!(escaped.status, 404);
    assert!(!escaped.body.contains("<script>"), "{}", escaped.body);
    let nowhere = get(addr, "/no/such/page");
    assert_eq!(nowhere.status, 404);
    assert!(nowhere.body.contains("there is no page /no/such/page"));

    for (name, kind) in [
        ("app.css", "text/css"),
        ("common.js", "text/javascript"),
        ("list.js", "text/javascript"),
        ("graph.js", "text/javascript"),
        ("dispatch.js", "text/javascript"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let a = get(addr, &format!("/assets/{name}"));
        assert_eq!(a.status, 200, "{name}");
        assert!(
            a.header("content-type").unwrap().starts_with(kind),
            "{name}"
        );
        let etag = a.header("etag").unwrap().to_string();
        let again = http(
            addr,
            "GET",
            &format!("/assets/{name}"),
            &[("If-None-Match", &etag)],
            "",
        );
        assert_eq!(again.status, 304, "{name}");
    }
    for path in [
        "/assets/../Cargo.toml",
        "/assets/..%2F..%2FCargo.toml",
        "/assets/%2e%2e/src/main.rs",
        "/assets/main.rs",
        "/assets/",
        "/Cargo.toml",
        "/src/ui/assets/app.css",
    ] {
        let a = get(addr, path);
        assert_eq!(a.status, 404, "{path}: {a:?}");
        assert!(!a.body.contains("[package]"), "{path}");
    }
}

#[test]
fn a_missing_or_corrupt_store_is_a_clear_page_and_the_server_survives() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path(), &[]);
    let addr = &server.addr;

    let list = get(addr, "/");
    assert_eq!(list.status, 200);
    let api = get(addr, "/api/dispatches").json();
    assert_eq!(api["store"]["exists"], false);
    assert_eq!(api["dispatches"].as_array().unwrap().len(), 0);
    let page = get(addr, "/dispatches/0123abcd");
    assert_eq!(page.status, 404);
    assert!(page.body.contains("Nothing recorded yet"), "{}", page.body);
    assert!(
        !home.path().join("covalent.db").exists(),
        "looking creates no store"
    );

    // The first dispatch appears without a restart.
    let r = covalent::dispatch_sync(workflow(3, 4).with_config(config(home.path()))).unwrap();
    let api = get(addr, "/api/dispatches").json();
    assert_eq!(api["dispatches"][0]["id"], r.dispatch_id().to_string());
    drop(server);

    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("covalent.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let server = serve(home.path(), &[]);
    let addr = &server.addr;
    for path in ["/", "/dispatches/0123abcd"] {
        let page = get(addr, path);
        assert_eq!(page.status, 503, "{path}");
        assert!(
            page.body.contains("The store cannot be read"),
            "{}",
            page.body
        );
        assert!(
            page.body.contains("is not a usable covalent store"),
            "{}",
            page.body
        );
    }
    let api = get(addr, "/api/dispatches");
    assert_eq!(api.status, 503);
    assert_eq!(api.json()["kind"], "store_unusable");
    assert!(get(addr, "/api").json()["store"]["error"].is_string());
    let events = get(addr, "/api/dispatches/0123abcd/events");
    assert_eq!(events.status, 503);
    assert_eq!(get(addr, "/assets/app.css").status, 200, "still serving");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        garbage,
        "the file is left as it was"
    );
}

#[test]
fn cancel_is_a_same_origin_json_post_with_the_csrf_token() {
    let home = tempfile::tempdir().unwrap();
    let rt = &*RUNTIME;
    let d = rt
        .block_on(covalent::dispatch(
            sleepy(60).with_config(config(home.path())),
        ))
        .unwrap();
    let id = d.id().to_string();
    let server = serve(home.path(), &[]);
    let addr = &server.addr;
    let token = csrf(addr);
    let origin = format!("http://{addr}");
    let json = ("Content-Type", "application/json");
    let path = format!("/api/dispatches/{id}/cancel");

    let refused = [
        vec![json],
        vec![
            json,
            ("X-Covalent-Csrf", "0123456789abcdef0123456789abcdef"),
        ],
        vec![
            json,
            ("X-Covalent-Csrf", &token),
            ("Origin", "http://evil.example"),
        ],
        vec![
            json,
            ("X-Covalent-Csrf", &token),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        vec![
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Covalent-Csrf", &token),
        ],
    ];
    for headers in &refused {
        let a = http(addr, "POST", &path, headers, "{}");
        assert_eq!(a.status, 403, "{headers:?}: {a:?}");
        assert_eq!(a.json()["kind"], "forbidden");
    }
    assert_eq!(get(addr, &path).status, 405, "GET never cancels");
    assert_eq!(
        get(addr, &format!("/api/dispatches/{id}")).json()["status"],
        "RUNNING"
    );

    let ok = [
        json,
        ("X-Covalent-Csrf", &token),
        ("Origin", &origin),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let bad_node = http(addr, "POST", &path, &ok, r#"{"nodes": [99]}"#);
    assert_eq!(bad_node.status, 404, "{bad_node:?}");
    let not_json = http(addr, "POST", &path, &ok, "nodes=1");
    assert_eq!(not_json.status, 400);
    let a = http(addr, "POST", &path, &ok, "{}");
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.json()["requested"], true);
    assert_eq!(a.json()["status"], "RUNNING");
    let r = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), d.wait()).await })
        .expect("cancelled within 10 s")
        .unwrap();
    assert_eq!(r.status(), Status::Cancelled);
    let again = http(addr, "POST", &path, &ok, "{}");
    assert_eq!(again.status, 409);
    assert!(
        again.json()["error"]
            .as_str()
            .unwrap()
            .contains("already ended (CANCELLED)")
    );
}

#[test]
fn events_follow_a_running_dispatch_to_its_end() {
    let home = tempfile::tempdir().unwrap();
    let rt = &*RUNTIME;
    let d = rt
        .block_on(covalent::dispatch(
            sleepy(60).with_config(config(home.path())),
        ))
        .unwrap();
    let id = d.id().to_string();
    let server = serve(home.path(), &[]);
    let addr = &server.addr;

    let mut list = Events::open(addr, "/api/events");
    list.wait_for("event: hello", Duration::from_secs(10));
    let mut events = Events::open(addr, &format!("/api/dispatches/{id}/events"));
    let first = events.wait_for("event: update", Duration::from_secs(10));
    let data = first
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("data: ")
        .unwrap();
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["full"], true);
    assert_eq!(data["status"], "RUNNING");
    assert_eq!(data["total"], 1);
    assert!(!data["nodes"].as_array().unwrap().is_empty());

    d.cancel();
    let last = events.wait_for("event: end", Duration::from_secs(15));
    assert!(last.starts_with("event: end"));
    assert!(events.seen.is_empty() || !events.seen.contains("event: update"));
    list.wait_for("event: change", Duration::from_secs(10));
    let r = rt.block_on(d.wait()).unwrap();
    assert_eq!(r.status(), Status::Cancelled);
    let before_end = get(addr, &format!("/api/dispatches/{id}")).json();
    assert_eq!(before_end["status"], "CANCELLED");

    // An ended dispatch: one update, then end.
    let mut ended = Events::open(addr, &format!("/api/dispatches/{id}/events"));
    let update = ended.wait_for("event: update", Duration::from_secs(10));
    assert!(update.contains("\"status\":\"CANCELLED\""), "{update}");
    ended.wait_for("event: end", Duration::from_secs(10));
    assert_eq!(get(addr, "/api/dispatches/0123abcd/events").status, 404);
    let unknown = "01234567-89ab-7def-8123-456789abcdef";
    for path in ["", "/events", "/record", "/nodes/0"] {
        let a = get(addr, &format!("/api/dispatches/{unknown}{path}"));
        assert_eq!(a.status, 404, "{path}");
    }
    assert_eq!(get(addr, &format!("/dispatches/{unknown}")).status, 404);
}

#[test]
fn only_loopback_host_names_are_answered() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path(), &[]);
    let addr = &server.addr;
    let port = addr.rsplit(':').next().unwrap();
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            http(addr, "GET", "/", &[("Host", &host)], "").status,
            200,
            "{host}"
        );
    }
    for host in [format!("evil.example:{port}"), "attacker.test".to_string()] {
        let a = http(addr, "GET", "/api", &[("Host", &host)], "");
        assert_eq!(a.status, 403, "{host}");
        assert!(!a.body.contains("csrf_token"), "{host}");
    }
}

#[test]
fn a_token_is_required_on_every_request_when_set() {
    let home = tempfile::tempdir().unwrap();
    covalent::dispatch_sync(workflow(3, 4).with_config(config(home.path()))).unwrap();
    let secret = "s3cret-token-0123456789";
    let server = serve(home.path(), &["--token", secret]);
    let addr = &server.addr;

    for path in ["/", "/api", "/api/dispatches", "/assets/app.css", "/nope"] {
        let a = get(addr, path);
        assert_eq!(a.status, 401, "{path}");
        assert!(!a.body.contains("csrf"), "{path}");
    }
    let bearer = format!("Bearer {secret}");
    assert_eq!(
        http(addr, "GET", "/api", &[("Authorization", &bearer)], "").status,
        200
    );
    assert_eq!(
        http(addr, "GET", "/api", &[("X-Covalent-Token", secret)], "").status,
        200
    );
    assert_eq!(
        http(addr, "GET", "/api", &[("Authorization", "Bearer nope")], "").status,
        401
    );
    let wrong = get(addr, "/?token=wrong");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());

    // The printed link: sets the cookie and sends the browser on without the token.
    let link = get(addr, &format!("/?status=failed&token={secret}"));
    assert_eq!(link.status, 303);
    assert_eq!(link.header("location"), Some("/?status=failed"));
    let cookie = link.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(http(addr, "GET", "/", &[("Cookie", pair)], "").status, 200);
    assert_eq!(
        http(addr, "GET", "/", &[("Cookie", "covalent_ui_1=x")], "").status,
        401
    );
}

#[test]
fn binding_beyond_loopback_needs_a_token_and_busy_ports_are_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let out = ui_command(home.path(), &["--host", "0.0.0.0", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("--token"),
        "{err}"
    );
    let out = ui_command(home.path(), &["--host", "0.0.0.0", "--token", "short"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12"));

    let server = serve(home.path(), &[]);
    let port = server.addr.rsplit(':').next().unwrap();
    let out = ui_command(home.path(), &["--port", port]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}
