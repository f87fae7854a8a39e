//! Building graphs: parameters, collections, tuples, outputs, ordering, operators, indexing,
//! sublattices; and the seed workflow's report.

covalent_test_support::isolated_home!();

use std::sync::Mutex;

use covalent::Status;
use covalent::prelude::*;

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
fn seed_workflow_gives_28_with_a_covalent_style_report() {
    let r = covalent::dispatch_sync(workflow(3, 4)).unwrap();
    assert_eq!(r.status(), Status::Completed);
    assert_eq!(r.value(), Some(&28));
    assert_eq!(r.task_count(), 2);
    assert_eq!(r.nodes().len(), 5, "add, x, y, multiply, y");
    let names: Vec<(usize, &str)> = r
        .nodes()
        .filter(|n| !n.is_internal())
        .map(|n| (n.id(), n.name()))
        .collect();
    assert_eq!(names, vec![(0, "add"), (3, "multiply")]);
    assert_eq!(r.node(0).unwrap().output_as::<i64>(), Some(7));
    assert_eq!(r.node(0).unwrap().output_json(), Some(serde_json::json!(7)));
    assert_eq!(r.node(3).unwrap().executor().as_deref(), Some("local"));
    assert_eq!(r.node(3).unwrap().attempt_count(), 1);
    assert!(r.node(3).unwrap().start_time().is_some());
    assert!(r.end_time().unwrap() >= r.start_time());
    assert_eq!(
        r.inputs(),
        &[
            ("x".to_string(), serde_json::json!(3)),
            ("y".to_string(), serde_json::json!(4))
        ]
    );
    let inputs = r.node(3).unwrap().inputs();
    assert_eq!(inputs, vec![(4, "x".to_string()), (0, "y".to_string())]);

    let report = r.to_string();
    for needle in [
        "Lattice Result",
        "status: COMPLETED",
        "result: 28",
        "inputs: x=3, y=4",
        "Node Outputs",
        "add(0): 7",
        "multiply(3): 28",
        "tasks: 2 of 2 completed",
    ] {
        assert!(report.contains(needle), "missing {needle:?} in\n{report}");
    }
    assert!(report.contains(&format!("dispatch_id: {}", r.dispatch_id())));
    assert_eq!(r.dispatch_id().get_version_num(), 7);
}

#[test]
fn electrons_are_plain_rust_through_call() {
    assert_eq!(add::call(2, 3), 5);
}

#[test]
#[should_panic(expected = "outside a #[lattice] body")]
fn calling_an_electron_outside_a_lattice_says_how_to_call_it() {
    let _ = add(1, 2);
}

#[electron]
fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[electron]
fn grid_total(rows: Vec<Vec<i64>>) -> i64 {
    rows.iter().flatten().sum()
}

#[electron]
fn pair_sum(p: (i64, String)) -> String {
    format!("{}{}", p.0, p.1)
}

#[electron]
fn word(s: String) -> String {
    s
}

#[lattice]
fn collections(n: i64) -> (i64, i64, String) {
    let row: Vec<Node<i64>> = (0..n).map(|i| add(i, 1)).collect();
    let grid: Vec<Vec<Node<i64>>> = (0..3).map(|r| vec![add(r, 0), add(r, 10)]).collect();
    let t = total(row);
    let g = grid_total(grid);
    let s = pair_sum((t, word("!".to_string())));
    (t, g, s)
}

#[test]
fn vectors_nested_vectors_and_tuples_of_nodes() {
    let r = covalent::dispatch_sync(collections(4)).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    // 1+2+3+4 = 10; grid: (0+10)+(1+11)+(2+12) = 36
    assert_eq!(r.value(), Some(&(10, 36, "10!".to_string())));
    let internal = r.nodes().filter(|n| n.is_internal()).count();
    assert!(internal > 0);
    assert_eq!(r.task_count(), r.nodes().len() - internal);
}

#[lattice]
fn returns_value() -> String {
    "constant".to_string()
}

#[lattice]
fn returns_vec(n: i64) -> Vec<i64> {
    (0..n).map(|i| multiply(i, i)).collect::<Vec<_>>()
}

#[test]
fn a_lattice_may_return_a_value_or_a_vec_of_nodes() {
    let r = covalent::dispatch_sync(returns_value()).unwrap();
    assert_eq!(r.value().map(String::as_str), Some("constant"));
    assert_eq!(r.task_count(), 0);
    let r = covalent::dispatch_sync(returns_vec(4)).unwrap();
    assert_eq!(r.value(), Some(&vec![0, 1, 4, 9]));
}

static ORDER: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

#[electron]
fn first() {
    std::thread::sleep(std::time::Duration::from_millis(30));
    ORDER.lock().unwrap().push("first");
}

#[electron]
fn second() -> i64 {
    ORDER.lock().unwrap().push("second");
    1
}

#[lattice]
fn ordered() -> i64 {
    let a = first();
    wait(second(), a)
}

#[test]
fn wait_orders_nodes_without_data() {
    let r = covalent::dispatch_sync(ordered()).unwrap();
    assert_eq!(r.value(), Some(&1));
    assert_eq!(*ORDER.lock().unwrap(), vec!["first", "second"]);
    let edges = r.node(1).unwrap().inputs();
    assert_eq!(edges, vec![(0, "!waiting_edge".to_string())]);
}

#[electron]
fn pair(x: i64) -> (i64, String) {
    (x, format!("#{x}"))
}

#[electron]
fn range(n: i64) -> Vec<i64> {
    (0..n).collect()
}

#[lattice]
fn operators(x: i64) -> (i64, String, i64, f64) {
    let a = add(x, 1);
    let b = multiply(x, 2);
    let arith = (a + b) * 2 - 1 / a + 10 - a;
    let (num, label) = pair(x).split();
    let third = range(5).get(3usize);
    let half = 1.0 / word_len(label);
    (arith + num + third, label, pair(x).field::<0>(), half)
}

#[electron]
fn word_len(s: String) -> f64 {
    s.len() as f64
}

#[test]
fn operators_indexing_and_tuple_fields() {
    let r = covalent::dispatch_sync(operators(5)).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    // a = 6, b = 10: (16)*2 - 0 + 10 - 6 = 36; + num 5 + third 3 = 44
    assert_eq!(r.value(), Some(&(44, "#5".to_string(), 5, 0.5)));
    let ops: Vec<&str> = r
        .nodes()
        .filter(|n| ["+", "-", "*", "/"].contains(&n.name()))
        .map(|n| n.name())
        .collect();
    assert!(ops.len() >= 5, "operator nodes: {ops:?}");
}

#[lattice]
fn out_of_bounds() -> i64 {
    range(2).get(5usize)
}

#[test]
fn indexing_past_the_end_fails_that_node() {
    let r = covalent::dispatch_sync(out_of_bounds()).unwrap();
    assert_eq!(r.status(), Status::Failed);
    assert!(
        r.error()
            .unwrap()
            .contains("index 5 is out of bounds for a list of length 2"),
        "{:?}",
        r.error()
    );
}

#[electron]
fn width(seed: i64) -> i64 {
    seed % 5 + 2
}

#[electron]
fn square(x: i64) -> i64 {
    x * x
}

/// A sublattice: its fan-out width is an upstream value, known only at run time.
#[electron]
#[lattice]
fn fan(n: i64) -> i64 {
    let squares: Vec<Node<i64>> = (0..n).map(square).collect();
    total(squares)
}

#[lattice]
fn dynamic(seed: i64) -> i64 {
    let n = width(seed);
    let s = fan(n);
    add(s, 1)
}

#[test]
fn a_sublattice_builds_its_graph_from_upstream_values() {
    let r = covalent::dispatch_sync(dynamic(7)).unwrap();
    // width(7) = 4: 0 + 1 + 4 + 9 = 14, + 1
    assert_eq!(r.status(), Status::Completed, "{r}");
    assert_eq!(r.value(), Some(&15));
    let sub = r.nodes().find(|n| n.is_sublattice()).unwrap();
    assert_eq!(sub.name(), "fan");
    let child = sub.sublattice().expect("the child graph is recorded");
    assert_eq!(child.task_count(), 5, "4 squares and a total");
    assert!(child.nodes().all(|n| n.status() == Status::Completed));
    assert!(r.to_string().contains("    square("), "{r}");
    // The same lattice runs standalone too.
    let alone = covalent::dispatch_sync(fan::lattice(3)).unwrap();
    assert_eq!(alone.value(), Some(&5));
}
