//! Each macro's table of option keys, and the check of raw pairs against it: the "unknown
//! option ...; expected one of", "duplicate option" and "needs a value" messages.
//!
//! It decides which pairs are usable and passes them on in source order; it must not judge a
//! value's contents (that is the value checks' job) nor fill any option struct.

use syn::Expr;
use syn::ext::IdentExt;

use crate::errors::Errors;
use crate::options::syntax::RawOption;

/// The keys a macro accepts, with an example value for each (used in "needs a value").
pub(crate) struct Schema {
    pub(crate) macro_name: &'static str,
    keys: &'static [(&'static str, &'static str)],
}

pub(crate) const ELECTRON: Schema = Schema {
    macro_name: "#[electron]",
    keys: &[
        ("executor", "\"local\""),
        ("name", "\"my task\""),
        ("retries", "2"),
        ("time_limit", "\"30s\""),
        ("deps_bash", "[\"pip install numpy\"]"),
        ("call_before", "[setup]"),
        ("call_after", "[cleanup]"),
        ("files", "[stage_in(\"data/in.csv\", \"in.csv\")]"),
        ("pool", "\"db\""),
        ("cpus", "4"),
        ("memory", "\"16G\""),
        ("gpus", "1"),
        ("resources", "[(\"matlab\", 1)]"),
    ],
};

pub(crate) const LATTICE: Schema = Schema {
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
    pub(crate) fn each(
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
