//! The typed option set of each macro, [`ElectronOptions`] and [`LatticeOptions`]: the one
//! place that maps a checked key to the field it fills.
//!
//! It only wires the grammar, the schema and the value checks together; it must not write a
//! message of its own or know how any value is checked or generated.

use std::time::Duration;

use proc_macro2::TokenStream;
use syn::{LitStr, Path};

use crate::errors::Errors;
use crate::options::schema::{ELECTRON, LATTICE};
use crate::options::syntax::parse;
use crate::options::values::{
    ExecutorOpt, FileTransferOpt, count, deps_bash, fail_fast, files, hooks, memory, name, pool,
    resources, retries, time_limit,
};

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
    pub(crate) files: Vec<FileTransferOpt>,
    pub(crate) pool: Option<LitStr>,
    pub(crate) cpus: Option<u32>,
    pub(crate) memory: Option<u64>,
    pub(crate) gpus: Option<u32>,
    pub(crate) resources: Vec<(LitStr, u32)>,
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
            "files" => options.files = errors.check(files(value)).unwrap_or_default(),
            "pool" => options.pool = errors.check(pool(value)),
            "cpus" => options.cpus = errors.check(count(key, value)),
            "gpus" => options.gpus = errors.check(count(key, value)),
            "memory" => options.memory = errors.check(memory(value)),
            "resources" => options.resources = errors.check(resources(value)).unwrap_or_default(),
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
