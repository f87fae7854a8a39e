//! What each option's value may be: the checks that turn a value expression into its typed
//! form (executor, name, retries, time limit, shell commands, hooks, fail-fast), each with
//! the message and span for a value it rejects.
//!
//! Every check sees one value whose key is already known to be valid; it must not deal with
//! key names, duplicates or missing values (the schema's job) nor generate code.

use std::time::Duration;

use syn::{Expr, ExprArray, ExprLit, Lit, LitBool, LitStr, Path};

use crate::errors::{Errors, render};

/// Where a node runs: a registered executor's name or an expression yielding an executor.
pub(crate) enum ExecutorOpt {
    Named(LitStr),
    Expr(Expr),
}

impl ExecutorOpt {
    pub(crate) fn parse(value: &Expr) -> syn::Result<Self> {
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

pub(crate) fn name(value: &Expr) -> syn::Result<LitStr> {
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

pub(crate) fn retries(value: &Expr) -> syn::Result<u32> {
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

/// `cpus = 4`, `gpus = 1`: a positive whole number.
pub(crate) fn count(key: &str, value: &Expr) -> syn::Result<u32> {
    match lit(value) {
        Some(Lit::Int(n)) => match n.base10_parse::<u32>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(syn::Error::new_spanned(
                n,
                format!("`{key} = {n}`: a whole number from 1 (leave `{key}` out for none)"),
            )),
        },
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`{key}` takes a whole number, as in `{key} = 2`, not `{}`",
                render(value)
            ),
        )),
    }
}

/// `memory = "16G"`: bytes, checked here (units K, M, G, T: powers of 1024).
pub(crate) fn memory(value: &Expr) -> syn::Result<u64> {
    let Some(Lit::Str(s)) = lit(value) else {
        return Err(syn::Error::new_spanned(
            value,
            "`memory` takes a size as a string, as in `memory = \"16G\"` (K, M, G, T)",
        ));
    };
    let t = s.value();
    let t = t.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        other => {
            return Err(syn::Error::new_spanned(
                s,
                format!(
                    "`memory = \"{t}\"`: unknown unit `{other}`; use K, M, G or T, as in \"16G\""
                ),
            ));
        }
    };
    match num.parse::<f64>() {
        Ok(n) if n > 0.0 => Ok((n * mult as f64) as u64),
        _ => Err(syn::Error::new_spanned(
            s,
            format!("`memory = \"{t}\"` is not a size, as in \"16G\" or \"512M\""),
        )),
    }
}

/// `resources = [("matlab", 1), ("scratch", 2)]`: named resources and how many of each.
pub(crate) fn resources(value: &Expr) -> syn::Result<Vec<(LitStr, u32)>> {
    let mut errors = Errors::default();
    let mut out = Vec::new();
    for item in one_or_list(value) {
        let ok = match peel(item) {
            Expr::Tuple(t) if t.elems.len() == 2 => match (lit(&t.elems[0]), lit(&t.elems[1])) {
                (Some(Lit::Str(name)), Some(Lit::Int(n))) => match n.base10_parse::<u32>() {
                    Ok(v) if v > 0 && !name.value().is_empty() => {
                        out.push((name.clone(), v));
                        true
                    }
                    _ => false,
                },
                _ => false,
            },
            _ => false,
        };
        if !ok {
            errors.spanned(
                item,
                "`resources` takes (name, count) pairs, as in `resources = [(\"matlab\", 1)]` (counts from 1)",
            );
        }
    }
    errors.into_error().map_or(Ok(out), Err)
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

pub(crate) fn time_limit(value: &Expr) -> syn::Result<Duration> {
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

/// Elements of `[a, b]`, or the single value itself.
fn one_or_list(value: &Expr) -> Vec<&Expr> {
    match peel(value) {
        Expr::Array(ExprArray { elems, .. }) => elems.iter().collect(),
        single => vec![single],
    }
}

pub(crate) fn deps_bash(value: &Expr) -> syn::Result<Vec<LitStr>> {
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

/// One `files = [...]` entry: `stage_in(from, to)` (before the task) or `stage_out(from, to)`.
pub(crate) struct FileTransferOpt {
    pub(crate) before: bool,
    pub(crate) from: LitStr,
    pub(crate) to: LitStr,
}

const FILES_EXAMPLE: &str = "`files = [stage_in(\"data/in.csv\", \"in.csv\"), stage_out(\"out.csv\", \"results/out.csv\")]`";

/// Checks a location outside the task (a path or URI) as the runtime will parse it.
fn check_location(s: &str, before: bool) -> Result<(), String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("an empty location".into());
    }
    if let Some(rest) = s.strip_prefix("file://") {
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err(format!(
                "`{s}`: a file:// URI needs an absolute path (file:///data/x.csv); write a relative path without file://"
            ));
        }
        return Ok(());
    }
    if s.starts_with("http://") || s.starts_with("https://") {
        if !before {
            return Err(format!(
                "`{s}`: HTTP transfers are downloads (stage_in); send results to a path or an ssh:// URI"
            ));
        }
        let host = s.split_once("://").map(|x| x.1).unwrap_or_default();
        if host.is_empty() || host.starts_with('/') {
            return Err(format!("`{s}`: an HTTP URL needs a host"));
        }
        return Ok(());
    }
    if let Some(rest) = s.strip_prefix("ssh://") {
        let Some(i) = rest.find('/') else {
            return Err(format!("`{s}`: an ssh:// URI needs a path after the host"));
        };
        let authority = &rest[..i];
        let hostport = authority.rsplit_once('@').map_or(authority, |x| x.1);
        if let Some((_, port)) = hostport.rsplit_once(':')
            && port.parse::<u16>().is_err()
        {
            return Err(format!("`{s}`: `{port}` is not a port number"));
        }
        if hostport.split(':').next().unwrap_or("").is_empty() {
            return Err(format!("`{s}`: no host name"));
        }
        return Ok(());
    }
    if let Some(scheme) = s.split_once("://").map(|x| x.0)
        && !scheme.contains('/')
    {
        return Err(format!(
            "`{s}`: `{scheme}://` is not a transfer covalent makes (paths, file://, ssh://, user@host:path, http:// and https:// are)"
        ));
    }
    Ok(())
}

/// Checks a path inside the task's directory.
fn check_task_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("an empty path in the task's directory".into());
    }
    if p.starts_with('/') || p.contains("://") {
        return Err(format!(
            "`{p}` must be a path relative to the task's directory (where the task runs), not an absolute path or URI"
        ));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("`{p}` leaves the task's directory (`..`)"));
    }
    Ok(())
}

pub(crate) fn files(value: &Expr) -> syn::Result<Vec<FileTransferOpt>> {
    let mut errors = Errors::default();
    let mut out = Vec::new();
    for item in one_or_list(value) {
        let Expr::Call(call) = peel(item) else {
            errors.spanned(
                item,
                format!("`files` takes `stage_in(from, to)` and `stage_out(from, to)` entries, as in {FILES_EXAMPLE}"),
            );
            continue;
        };
        let name = match peel(&call.func) {
            Expr::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        let before = match name.as_deref() {
            Some("stage_in") => true,
            Some("stage_out") => false,
            _ => {
                errors.spanned(
                    &call.func,
                    format!("`files` entries are `stage_in(from, to)` or `stage_out(from, to)`, as in {FILES_EXAMPLE}"),
                );
                continue;
            }
        };
        let args: Vec<&Expr> = call.args.iter().collect();
        let lits: Vec<Option<LitStr>> = args
            .iter()
            .map(|a| match lit(a) {
                Some(Lit::Str(s)) => Some(s.clone()),
                _ => None,
            })
            .collect();
        if args.len() != 2 || lits.iter().any(Option::is_none) {
            errors.spanned(
                call,
                "`stage_in` and `stage_out` take two string literals: where from and where to",
            );
            continue;
        }
        let (from, to) = (lits[0].clone().unwrap(), lits[1].clone().unwrap());
        let (outside, inside) = if before { (&from, &to) } else { (&to, &from) };
        if let Err(e) = check_location(&outside.value(), before) {
            errors.spanned(outside, e);
        }
        if let Err(e) = check_task_path(&inside.value()) {
            errors.spanned(inside, e);
        }
        out.push(FileTransferOpt { before, from, to });
    }
    errors.into_error().map_or(Ok(out), Err)
}

pub(crate) fn pool(value: &Expr) -> syn::Result<LitStr> {
    match lit(value) {
        Some(Lit::Str(s))
            if !s.value().is_empty()
                && s.value()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok(s.clone())
        }
        _ => Err(syn::Error::new_spanned(
            value,
            "`pool` takes the name of a concurrency pool (letters, digits, `_`, `-`), as in \
             `pool = \"db\"` with `[pools] db = 2` in covalent.toml",
        )),
    }
}

pub(crate) fn hooks(key: &str, value: &Expr) -> syn::Result<Vec<Path>> {
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

pub(crate) fn fail_fast(value: &Expr) -> syn::Result<bool> {
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
