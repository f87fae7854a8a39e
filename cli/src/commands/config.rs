//! `covalent config`: the effective configuration, and for every value where it came from
//! (a default, the configuration file, `COVALENT_HOME` or `--home`).

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::context::{Context, HomeSource};
use crate::format;
use crate::table::Table;

/// Runs `covalent config`.
pub fn run(ctx: &Context, out: &mut dyn Write) -> Result<()> {
    let file = ctx.config.source();
    let set = match file {
        Some(path) => FileKeys {
            name: path.display().to_string(),
            table: read_table(path)?,
        },
        None => FileKeys::default(),
    };
    match file {
        Some(path) => writeln!(
            out,
            "configuration file: {} ({})",
            path.display(),
            how_found(path)
        )?,
        None => writeln!(
            out,
            "configuration file: none (no COVALENT_CONFIG, ./covalent.toml or user \
             covalent/covalent.toml); defaults"
        )?,
    }
    writeln!(out)?;
    writeln!(out, "[sdk]")?;
    write!(out, "{}", sdk_table(ctx, &set)?)?;
    writeln!(out)?;
    write!(out, "{}", paths_table(ctx))?;
    writeln!(out)?;
    writeln!(out, "[executors]")?;
    executors_section(ctx, &set, out)
}

/// Which keys the configuration file sets (empty without a file).
#[derive(Default)]
struct FileKeys {
    /// The file, as shown in SOURCE.
    name: String,
    /// Its contents.
    table: toml::Table,
}

impl FileKeys {
    /// The table `[section]` or `[section.sub]`.
    fn section(&self, path: &[&str]) -> Option<&toml::Table> {
        path.iter()
            .try_fold(&self.table, |t, key| t.get(*key)?.as_table())
    }

    /// Whether the file sets `key` in `[section]`.
    fn sets(&self, section: &[&str], key: &str) -> bool {
        self.section(section).is_some_and(|t| t.contains_key(key))
    }
}

/// Every `[sdk]` key: its effective value and where that came from.
fn sdk_table(ctx: &Context, file: &FileKeys) -> Result<Table> {
    let config = &ctx.config;
    let from_file_or = |key: &str, default: &str| {
        if file.sets(&["sdk"], key) {
            file.name.clone()
        } else {
            default.to_string()
        }
    };
    let mut t = Table::new(&["KEY", "VALUE", "SOURCE"]);
    let sdk = serde_json::to_value(&config.sdk)?;
    for (key, value) in sdk.as_object().into_iter().flatten() {
        let (value, source) = match key.as_str() {
            "data_dir" => {
                let mut source = match ctx.home_source {
                    HomeSource::Flag => "--home".to_string(),
                    HomeSource::Env => "env COVALENT_HOME".to_string(),
                    HomeSource::File => file.name.clone(),
                    HomeSource::Default => "default (user data dir + covalent)".to_string(),
                };
                if let Some(dir) = &config.sdk.data_dir
                    && ctx.home_source != HomeSource::File
                {
                    source.push_str(&format!(
                        " (overrides {} from {})",
                        dir.display(),
                        file.name
                    ));
                }
                (config.data_dir().display().to_string(), source)
            }
            "results_dir" => (
                config.results_dir().display().to_string(),
                from_file_or(key, "default (data dir + results)"),
            ),
            _ => (format::json_cell(value), from_file_or(key, "default")),
        };
        t.row([key.clone(), value, source]);
    }
    Ok(t)
}

/// The data dir, the store and the results dir.
fn paths_table(ctx: &Context) -> Table {
    let config = &ctx.config;
    let store = config.store_path();
    let state = if store.exists() {
        ""
    } else {
        " (not created yet)"
    };
    let mut t = Table::new(&["PATH", "LOCATION"]);
    t.row(["data dir".into(), config.data_dir().display().to_string()]);
    t.row(["store".into(), format!("{}{state}", store.display())]);
    t.row([
        "results dir".into(),
        config.results_dir().display().to_string(),
    ]);
    t
}

/// Every registered executor's effective options with their sources, then a note for each
/// `[executors.NAME]` table naming a plugin this binary does not have.
fn executors_section(ctx: &Context, file: &FileKeys, out: &mut dyn Write) -> Result<()> {
    let registered = covalent::executor::registered_executors();
    let mut t = Table::new(&["EXECUTOR", "OPTION", "VALUE", "SOURCE"]);
    for e in &registered {
        let options = ctx.config.executor_options(e.name);
        for (i, (key, value)) in options.as_object().into_iter().flatten().enumerate() {
            let source = if file.sets(&["executors", e.name], key) {
                format!("{} [executors.{}]", file.name, e.name)
            } else {
                "plugin default".to_string()
            };
            let name = if i == 0 { e.name } else { "" };
            t.row([
                name.to_string(),
                key.clone(),
                format::json_cell(value),
                source,
            ]);
        }
    }
    write!(out, "{t}")?;
    let configured = file
        .section(&["executors"])
        .into_iter()
        .flat_map(|t| t.keys());
    for name in configured.filter(|n| !registered.iter().any(|e| e.name == n.as_str())) {
        writeln!(
            out,
            "note: {} configures [executors.{name}], which is not built into this `covalent` binary",
            file.name
        )?;
    }
    Ok(())
}

/// The file's text as a table (the runtime already validated it; this says which keys it sets).
fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    text.parse::<toml::Table>()
        .with_context(|| format!("invalid configuration file {}", path.display()))
}

/// How [`covalent::Config::find`] came to this file.
fn how_found(path: &Path) -> &'static str {
    if std::env::var_os("COVALENT_CONFIG").is_some() {
        "named by COVALENT_CONFIG"
    } else if path == Path::new("covalent.toml") {
        "in the current directory"
    } else {
        "in the user config directory"
    }
}
