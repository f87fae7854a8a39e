//! Unit tests of option parsing: every option of both macros, through the public entry
//! points [`ElectronOptions::parse`] and [`LatticeOptions::parse`], with the exact messages.

use std::time::Duration;

use proc_macro2::TokenStream;
use syn::LitStr;

use crate::errors::{Errors, render};
use crate::options::sets::{ElectronOptions, LatticeOptions};
use crate::options::tokens::duration_tokens;
use crate::options::values::ExecutorOpt;

fn electron(attr: &str) -> (ElectronOptions, Vec<String>) {
    let mut errors = Errors::default();
    let tokens: TokenStream = attr.parse().expect("test attribute tokenizes");
    let options = ElectronOptions::parse(tokens, &mut errors);
    let messages = errors
        .into_error()
        .map(|e| e.into_iter().map(|e| e.to_string()).collect())
        .unwrap_or_default();
    (options, messages)
}

fn lattice(attr: &str) -> (LatticeOptions, Vec<String>) {
    let mut errors = Errors::default();
    let tokens: TokenStream = attr.parse().expect("test attribute tokenizes");
    let options = LatticeOptions::parse(tokens, &mut errors);
    let messages = errors
        .into_error()
        .map(|e| e.into_iter().map(|e| e.to_string()).collect())
        .unwrap_or_default();
    (options, messages)
}

#[test]
fn no_options_is_all_defaults() {
    let (o, errors) = electron("");
    assert!(errors.is_empty());
    assert!(o.executor.is_none() && o.name.is_none() && o.retries.is_none());
    assert!(o.time_limit.is_none() && o.deps_bash.is_empty());
    assert!(o.call_before.is_empty() && o.call_after.is_empty());
}

#[test]
fn every_electron_option_parses() {
    let (o, errors) = electron(
        r#"executor = "process", name = "mul", retries = 2, time_limit = "1m 30s",
           deps_bash = ["echo a", "echo b"], call_before = setup, call_after = [a::b, c],"#,
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert!(matches!(&o.executor, Some(ExecutorOpt::Named(s)) if s.value() == "process"));
    assert_eq!(o.name.map(|n| n.value()).as_deref(), Some("mul"));
    assert_eq!(o.retries, Some(2));
    assert_eq!(o.time_limit, Some(Duration::from_secs(90)));
    let deps: Vec<String> = o.deps_bash.iter().map(LitStr::value).collect();
    assert_eq!(deps, ["echo a", "echo b"]);
    let before: Vec<String> = o.call_before.iter().map(render).collect();
    let after: Vec<String> = o.call_after.iter().map(render).collect();
    assert_eq!(before, ["setup"]);
    assert_eq!(after, ["a::b", "c"]);
}

#[test]
fn executor_expression_is_kept() {
    let (o, errors) = electron("executor = MyExecutor::new(4)");
    assert!(errors.is_empty());
    let Some(ExecutorOpt::Expr(e)) = &o.executor else {
        panic!("expected an expression executor");
    };
    assert_eq!(render(e), "MyExecutor::new(4)");
}

#[test]
fn thirty_seconds_is_thirty_billion_nanoseconds() {
    let (o, errors) = electron(r#"time_limit = "30s""#);
    assert!(errors.is_empty());
    let limit = o.time_limit.expect("time_limit parsed");
    assert_eq!(limit.as_nanos(), 30_000_000_000);
    assert_eq!(
        duration_tokens(limit).to_string(),
        ":: core :: time :: Duration :: from_nanos (30000000000u64)"
    );
}

#[test]
fn unknown_option_lists_the_valid_ones() {
    let (_, errors) = electron("retires = 2");
    assert_eq!(
        errors,
        [
            "unknown `#[electron]` option `retires`; expected one of: executor, name, retries, \
          time_limit, deps_bash, call_before, call_after, files, pool, cpus, memory, gpus, resources"
        ]
    );
    let (_, errors) = lattice("fail_fats = true");
    assert_eq!(
        errors,
        ["unknown `#[lattice]` option `fail_fats`; expected one of: executor, name, fail_fast"]
    );
}

#[test]
fn duplicate_option_is_reported_once_and_first_value_wins() {
    let (o, errors) = electron("retries = 1, retries = 3");
    assert_eq!(errors, ["duplicate `#[electron]` option `retries`"]);
    assert_eq!(o.retries, Some(1));
}

#[test]
fn malformed_time_limit_is_rejected_with_the_reason() {
    let (o, errors) = electron(r#"time_limit = "30 sekonds""#);
    assert!(o.time_limit.is_none());
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .starts_with(r#"malformed `time_limit` "30 sekonds": unknown time unit "sekonds""#)
    );
    assert!(errors[0].ends_with(r#"expected a duration such as "30s", "1m 30s" or "2h""#));
    let (_, errors) = electron(r#"time_limit = "0s""#);
    assert!(errors[0].contains("must be longer than zero"), "{errors:?}");
    let (_, errors) = electron("time_limit = 30");
    assert!(
        errors[0].starts_with("`time_limit` takes a duration string"),
        "{errors:?}"
    );
}

#[test]
fn every_problem_is_collected() {
    let (_, errors) = electron(
        r#"retries = "2", nme = "x", time_limit = "soon", deps_bash = [1], call_before = "f", retries"#,
    );
    assert_eq!(errors.len(), 6, "{errors:#?}");
    assert!(errors[0].starts_with("`retries` takes a whole number"));
    assert!(errors[1].starts_with("unknown `#[electron]` option `nme`"));
    assert!(errors[2].starts_with("malformed `time_limit` \"soon\""));
    assert!(errors[3].starts_with("`deps_bash` takes a shell command string"));
    assert!(errors[4].starts_with("`call_before` takes the path of a function"));
    assert_eq!(errors[5], "duplicate `#[electron]` option `retries`");
}

#[test]
fn missing_value_names_an_example() {
    let (_, errors) = electron("retries");
    assert_eq!(
        errors,
        ["`#[electron]` option `retries` needs a value, as in `retries = 2`"]
    );
}

#[test]
fn retries_must_fit_u32() {
    let (_, errors) = electron("retries = 5000000000");
    assert!(errors[0].contains("does not fit a `u32`"), "{errors:?}");
    let (_, errors) = electron("retries = -1");
    assert!(
        errors[0].starts_with("`retries` takes a whole number"),
        "{errors:?}"
    );
}

#[test]
fn syntax_errors_read_as_sentences() {
    let (_, errors) = electron(r#""process""#);
    assert_eq!(
        errors,
        ["expected `#[electron]` options written as `key = value`, separated by commas"]
    );
    let (_, errors) = electron("retries = 2 name = \"x\"");
    assert_eq!(
        errors,
        ["expected `,` between `#[electron]` options, or `=` after an option name"]
    );
}

#[test]
fn lattice_options_parse() {
    let (o, errors) = lattice(r#"executor = "local", name = "flow", fail_fast = true"#);
    assert!(errors.is_empty());
    assert!(o.fail_fast);
    assert_eq!(o.name.map(|n| n.value()).as_deref(), Some("flow"));
    let (_, errors) = lattice("fail_fast = 1");
    assert_eq!(errors, ["`fail_fast` takes `true` or `false`, not `1`"]);
    let (_, errors) = lattice(r#"executor = """#);
    assert!(errors[0].contains("cannot be empty"));
}

#[test]
fn files_take_stage_in_and_stage_out_with_checked_locations() {
    let (o, errors) = electron(
        r#"files = [stage_in("data/in.csv", "in.csv"), covalent::files::stage_out("out.csv", "me@host:/scratch/out.csv"),
                    stage_in("https://example.org/x.csv", "sub/x.csv"), stage_in("ssh://me@h:2222/d/y", "y")]"#,
    );
    assert!(errors.is_empty(), "{errors:?}");
    let got: Vec<(bool, String, String)> = o
        .files
        .iter()
        .map(|f| (f.before, f.from.value(), f.to.value()))
        .collect();
    assert_eq!(
        got[..2],
        [
            (true, "data/in.csv".into(), "in.csv".into()),
            (false, "out.csv".into(), "me@host:/scratch/out.csv".into())
        ]
    );
    assert_eq!(got.len(), 4);

    let (_, errors) = electron(
        r#"files = [stage_in("s3://b/k", "k"), stage_in("a", "../a"), stage_out("o", "https://x/up"),
                    stage_in("file://rel", "r"), stage_in("ssh://h:port/x", "x"), copy("a", "b"),
                    stage_in("a"), "a.csv"]"#,
    );
    assert_eq!(errors.len(), 8, "{errors:#?}");
    assert!(
        errors[0].contains("`s3://` is not a transfer"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("leaves the task's directory"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].contains("HTTP transfers are downloads"),
        "{}",
        errors[2]
    );
    assert!(errors[3].contains("absolute path"), "{}", errors[3]);
    assert!(errors[4].contains("not a port number"), "{}", errors[4]);
    assert!(
        errors[5].contains("`stage_in(from, to)` or `stage_out(from, to)`"),
        "{}",
        errors[5]
    );
    assert!(errors[6].contains("two string literals"), "{}", errors[6]);
    assert!(errors[7].starts_with("`files` takes"), "{}", errors[7]);
}
