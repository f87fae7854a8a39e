//! What the commands start from: the effective configuration, where the data dir came from,
//! and the store it names (opened only when it exists, so looking never creates files).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use covalent::store::Store;
use covalent::{Config, Uuid};

/// Where the data dir came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HomeSource {
    /// The `--home` option.
    Flag,
    /// The `COVALENT_HOME` environment variable.
    Env,
    /// `[sdk] data_dir` of the configuration file.
    File,
    /// The user's data directory + `covalent`.
    Default,
}

/// The configuration and the store of one `covalent` run.
#[derive(Debug)]
pub struct Context {
    /// The effective configuration (`--home` applied through `COVALENT_HOME`).
    pub config: Config,
    /// Where its data dir came from.
    pub home_source: HomeSource,
}

impl Context {
    /// Loads the configuration; `home_flag` says whether `--home` set `COVALENT_HOME`.
    pub fn load(home_flag: bool) -> Result<Self> {
        let config = Config::load()?;
        let env_home = std::env::var_os("COVALENT_HOME").is_some_and(|v| !v.is_empty());
        let home_source = if home_flag {
            HomeSource::Flag
        } else if env_home {
            HomeSource::Env
        } else if config.sdk.data_dir.is_some() {
            HomeSource::File
        } else {
            HomeSource::Default
        };
        Ok(Context {
            config,
            home_source,
        })
    }

    /// The store's database file.
    pub fn store_path(&self) -> PathBuf {
        self.config.store_path()
    }

    /// The store, or `None` when nothing was ever recorded there (the file does not exist).
    pub fn existing_store(&self) -> Result<Option<Arc<Store>>> {
        let path = self.store_path();
        let home = self.config.data_dir();
        if home.exists() && !home.is_dir() {
            let source = match self.home_source {
                HomeSource::Flag => "--home",
                HomeSource::Env => "COVALENT_HOME",
                HomeSource::File => "`[sdk] data_dir` in covalent.toml",
                HomeSource::Default => "the data directory",
            };
            bail!(
                "{source} names {}, which is a file, not a directory: point it at a directory (the store is <dir>/covalent.db)",
                home.display()
            );
        }
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(Store::open(&path)?))
    }

    /// The store and the dispatch that `id` (a full id or a unique prefix) names.
    pub fn dispatch(&self, id: &str) -> Result<(Arc<Store>, Uuid)> {
        let Some(store) = self.existing_store()? else {
            bail!(
                "no dispatch `{id}`: nothing has been recorded in {} yet (the store {} does not exist)",
                self.config.data_dir().display(),
                self.store_path().display()
            );
        };
        let uuid = store.resolve(id)?;
        Ok((store, uuid))
    }
}
