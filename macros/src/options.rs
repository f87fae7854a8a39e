//! Attribute options: the `key = value, ...` lists inside `#[electron(...)]` and
//! `#[lattice(...)]`, parsed once by a shared parser and then checked against each macro's
//! table of keys into typed option structs.
//!
//! This module owns every message about an option (unknown, duplicated, missing or malformed
//! values); it knows nothing about the function the attribute sits on and generates no code
//! except the literal forms of option values.

use std::time::Duration;

use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, ExprArray, ExprLit, Ident, Lit, LitBool, LitStr, Path, Token};

use crate::errors::{Errors, render};

/// One `key = value` pair as written; the value is missing for a bare `key`.
pub(crate) struct RawOption {
    pub(crate) key: Ident,
    pub(crate) value: Option<Expr>,
}

/// Parses `key = value, key = value` (a trailing comma is fine; a bare `key` is kept so that
/// validation can say which value is missing).
pub(crate) fn parse(attr: TokenStream, macro_name: &str) -> syn::Result<Vec<RawOption>> {
    let parser = |input: ParseStream<'_>| {
        let mut options = Vec::new();
        while !input.is_empty() {
            if !input.peek(Ident::peek_any) {
                return Err(input.error(format!(
                    "expected `{macro_name}` options written as `key = value`, separated by commas"
                )));
            }
            let key = input.call(Ident::parse_any)?;
            let value = if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                Some(input.parse::<Expr>()?)
            } else {
                None
            };
            options.push(RawOption { key, value });
            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error(format!(
                    "expected `,` between `{macro_name}` options, or `=` after an option name"
                )));
            }
            input.parse::<Token![,]>()?;
        }
        Ok(options)
    };
    parser.parse2(attr)
}

/// The keys a macro accepts, with an example value for each (used in "needs a value").
struct Schema {
    macro_name: &'static str,
    keys: &'static [(&'static str, &'static str)],
}

const ELECTRON: Schema = Schema {
    macro_name: "#[electron]",
    keys: &[
        ("executor", "\"local\""),
        ("name", "\"my task\""),
        ("retries", "2"),
        ("time_limit", "\"30s\""),
        ("deps_bash", "[\"pip install numpy\"]"),
        ("call_before", "[setup]"),
        ("call_after", "[cleanup]"),
    ],
};

const LATTICE: Schema = Schema {
    macro_name: "#[lattice]",
    keys: &[
        ("executor", "\"local\""),
        ("name", "\"my workflow\""),
        ("fail_fast", "true"),
    ],
};

impl Schema {
    /// Reports unknown, duplicated and value-less options and hands each usable one to
    /// `accept(key, value, errors)`, in the order written (so messages come in source order).
    fn each(
        &self,
        raw: &[RawOption],
        errors: &mut Errors,
        mut accept: impl FnMut(&'static str, &Expr, &mut Errors),
    ) {
        let mut seen: Vec<&'static str> = Vec::new();
        for option in raw {
            let written = option.key.unraw().to_string();
            let Some(&(key, example)) = self.keys.iter().find(|(k, _)| *k == written) else {
                let expected: Vec<&str> = self.keys.iter().map(|(k, _)| *k).collect();
                errors.spanned(
                    &option.key,
                    format!(
                        "unknown `{}` option `{written}`; expected one of: {}",
                        self.macro_name,
                        expected.join(", ")
                    ),
                );
                continue;
            };
            if seen.contains(&key) {
                errors.spanned(
                    &option.key,
                    format!("duplicate `{}` option `{key}`", self.macro_name),
                );
                continue;
            }
            seen.push(key);
            match &option.value {
                Some(value) => accept(key, value, errors),
                None => errors.spanned(
                    &option.key,
                    format!(
                        "`{}` option `{key}` needs a value, as in `{key} = {example}`",
                        self.macro_name
                    ),
                ),
            }
        }
    }
}

/// Where a node runs: a registered executor's name or an expression yielding an executor.
pub(crate) enum ExecutorOpt {
    Named(LitStr),
    Expr(Expr),
}

impl ExecutorOpt {
    fn parse(value: &Expr) -> syn::Result<Self> {
        match peel(value) {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => {
                if s.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(
                        s,
                        "`executor` names a registered executor and cannot be empty, as in `executor = \"local\"`",
                    ));
                }
                Ok(ExecutorOpt::Named(s.clone()))
            }
            other => Ok(ExecutorOpt::Expr(other.clone())),
        }
    }

    /// The `Option<ExecutorSel>` expression for an optional executor.
    pub(crate) fn tokens(executor: Option<&ExecutorOpt>) -> TokenStream {
        match executor {
            None => quote!(::core::option::Option::None),
            Some(ExecutorOpt::Named(name)) => quote! {
                ::core::option::Option::Some(::covalent::__private::ExecutorSel::Named(
                    ::std::borrow::Cow::Borrowed(#name)
                ))
            },
            Some(ExecutorOpt::Expr(expr)) => quote! {
                ::core::option::Option::Some(::covalent::__private::executor(#expr))
            },
        }
    }
}

/// The options of `#[electron(...)]`.
#[derive(Default)]
pub(crate) struct ElectronOptions {
    pub(crate) executor: Option<ExecutorOpt>,
    pub(crate) name: Option<LitStr>,
    pub(crate) retries: Option<u32>,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) deps_bash: Vec<LitStr>,
    pub(crate) call_before: Vec<Path>,
    pub(crate) call_after: Vec<Path>,
}

impl ElectronOptions {
    /// Parses and checks the options, recording every problem in `errors`.
    pub(crate) fn parse(attr: TokenStream, errors: &mut Errors) -> Self {
        let mut options = ElectronOptions::default();
        let Some(raw) = errors.check(parse(attr, ELECTRON.macro_name)) else {
            return options;
        };
        ELECTRON.each(&raw, errors, |key, value, errors| match key {
            "executor" => options.executor = errors.check(ExecutorOpt::parse(value)),
            "name" => options.name = errors.check(name(value)),
            "retries" => options.retries = errors.check(retries(value)),
            "time_limit" => options.time_limit = errors.check(time_limit(value)),
            "deps_bash" => options.deps_bash = errors.check(deps_bash(value)).unwrap_or_default(),
            "call_before" | "call_after" => {
                let hooks = errors.check(hooks(key, value)).unwrap_or_default();
                if key == "call_before" {
                    options.call_before = hooks;
                } else {
                    options.call_after = hooks;
                }
            }
            _ => unreachable!("every key of the electron schema is handled"),
        });
        options
    }
}

/// The options of `#[lattice(...)]`.
#[derive(Default)]
pub(crate) struct LatticeOptions {
    pub(crate) executor: Option<ExecutorOpt>,
    pub(crate) name: Option<LitStr>,
    pub(crate) fail_fast: bool,
}

impl LatticeOptions {
    /// Parses and checks the options, recording every problem in `errors`.
    pub(crate) fn parse(attr: TokenStream, errors: &mut Errors) -> Self {
        let mut options = LatticeOptions::default();
        let Some(raw) = errors.check(parse(attr, LATTICE.macro_name)) else {
            return options;
        };
        LATTICE.each(&raw, errors, |key, value, errors| match key {
            "executor" => options.executor = errors.check(ExecutorOpt::parse(value)),
            "name" => options.name = errors.check(name(value)),
            "fail_fast" => options.fail_fast = errors.check(fail_fast(value)).unwrap_or(false),
            _ => unreachable!("every key of the lattice schema is handled"),
        });
        options
    }
}

/// Looks through the invisible groups `macro_rules!` wraps around `$e:expr` fragments.
fn peel(mut expr: &Expr) -> &Expr {
    while let Expr::Group(group) = expr {
        expr = &group.expr;
    }
    expr
}

fn lit(expr: &Expr) -> Option<&Lit> {
    match peel(expr) {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

fn name(value: &Expr) -> syn::Result<LitStr> {
    match lit(value) {
        Some(Lit::Str(s)) if s.value().trim().is_empty() => Err(syn::Error::new_spanned(
            s,
            "`name` cannot be empty; it is the name shown in results and the UI",
        )),
        Some(Lit::Str(s)) => Ok(s.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            "`name` takes a string literal, as in `name = \"add numbers\"`",
        )),
    }
}

fn retries(value: &Expr) -> syn::Result<u32> {
    match lit(value) {
        Some(Lit::Int(n)) => n.base10_parse::<u32>().map_err(|_| {
            syn::Error::new_spanned(
                n,
                format!(
                    "`retries = {n}` does not fit a `u32`; use a whole number from 0 to 4294967295"
                ),
            )
        }),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`retries` takes a whole number of extra attempts, as in `retries = 2`, not `{}`",
                render(value)
            ),
        )),
    }
}

const DURATION_EXAMPLES: &str = "\"30s\", \"1m 30s\" or \"2h\"";

/// Parses a `time_limit` string at compile time.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration.is_zero() {
        return Err("a time limit must be longer than zero".to_string());
    }
    if u64::try_from(duration.as_nanos()).is_err() {
        return Err("a time limit must be shorter than 584 years".to_string());
    }
    Ok(duration)
}

fn time_limit(value: &Expr) -> syn::Result<Duration> {
    match lit(value) {
        Some(Lit::Str(s)) => parse_duration(&s.value()).map_err(|reason| {
            syn::Error::new_spanned(
                s,
                format!(
                    "malformed `time_limit` {:?}: {reason}; expected a duration such as {DURATION_EXAMPLES}",
                    s.value()
                ),
            )
        }),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`time_limit` takes a duration string such as {DURATION_EXAMPLES}, not `{}`",
                render(value)
            ),
        )),
    }
}

/// The `Duration` expression for a parsed time limit.
pub(crate) fn duration_tokens(duration: Duration) -> TokenStream {
    // `parse_duration` guarantees the value fits in `u64` nanoseconds.
    let nanos = Literal::u64_suffixed(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    quote!(::core::time::Duration::from_nanos(#nanos))
}

/// Elements of `[a, b]`, or the single value itself.
fn one_or_list(value: &Expr) -> Vec<&Expr> {
    match peel(value) {
        Expr::Array(ExprArray { elems, .. }) => elems.iter().collect(),
        single => vec![single],
    }
}

fn deps_bash(value: &Expr) -> syn::Result<Vec<LitStr>> {
    let mut errors = Errors::default();
    let mut commands = Vec::new();
    for item in one_or_list(value) {
        match lit(item) {
            Some(Lit::Str(s)) => commands.push(s.clone()),
            _ => errors.spanned(
                item,
                "`deps_bash` takes a shell command string or a list of them, as in \
                 `deps_bash = [\"pip install numpy\"]`",
            ),
        }
    }
    errors.into_error().map_or(Ok(commands), Err)
}

fn hooks(key: &str, value: &Expr) -> syn::Result<Vec<Path>> {
    let mut errors = Errors::default();
    let mut paths = Vec::new();
    for item in one_or_list(value) {
        match peel(item) {
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => paths.push(p.path.clone()),
            _ => errors.spanned(
                item,
                format!(
                    "`{key}` takes the path of a function with no parameters, or a list of them, \
                     as in `{key} = [check_env, hooks::log_start]`"
                ),
            ),
        }
    }
    errors.into_error().map_or(Ok(paths), Err)
}

fn fail_fast(value: &Expr) -> syn::Result<bool> {
    match lit(value) {
        Some(Lit::Bool(LitBool { value, .. })) => Ok(*value),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`fail_fast` takes `true` or `false`, not `{}`",
                render(value)
            ),
        )),
    }
}

/// The string a hook is known by in messages: its path as written.
pub(crate) fn hook_name(path: &Path) -> LitStr {
    LitStr::new(&render(path), Span::call_site())
}

/// A list of string literals as a `&'static [&'static str]` expression.
pub(crate) fn str_slice(items: &[LitStr]) -> TokenStream {
    quote!(&[#(#items),*])
}

#[cfg(test)]
mod tests {
    use super::*;

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
              time_limit, deps_bash, call_before, call_after"
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
}
