//! `covalent executors`: the executor plugins linked into this binary and their defaults.

use std::io::Write;

use anyhow::Result;

use crate::cli::ExecutorsArgs;
use crate::format;
use crate::table::Table;

/// Runs `covalent executors`.
pub fn run(args: &ExecutorsArgs, out: &mut dyn Write) -> Result<()> {
    let executors = covalent::executor::registered_executors();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&executors)?)?;
        return Ok(());
    }
    let mut t = Table::new(&["EXECUTOR", "OPTION", "DEFAULT"]);
    for e in &executors {
        match e.defaults.as_object() {
            Some(options) if !options.is_empty() => {
                for (i, (key, value)) in options.iter().enumerate() {
                    let name = if i == 0 { e.name } else { "" };
                    t.row([name.to_string(), key.clone(), format::json_cell(value)]);
                }
            }
            _ => t.row([e.name.to_string(), "(no options)".into(), String::new()]),
        }
    }
    write!(out, "{t}")?;
    let noun = format::plural(executors.len(), "executor", "executors");
    writeln!(
        out,
        "{} {noun} in this binary; `[executors.NAME]` in covalent.toml overrides the defaults \
         (`covalent config` shows the effective options)",
        executors.len()
    )?;
    Ok(())
}
