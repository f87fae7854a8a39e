//! [`StoreError`]: why the store could not be used, naming the file and what to do.
//!
//! This module owns the store's error type only.

use std::path::PathBuf;

/// Why the store could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The file or its directory cannot be opened or created.
    #[error("cannot open the covalent store {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not a SQLite database, or is damaged.
    #[error(
        "{path} is not a usable covalent store (corrupt, or not a SQLite database): {reason}; it was left unchanged. Move it aside (or restore it from a copy) to start a new store there"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// SQLite's message.
        reason: String,
    },
    /// The file is another application's database.
    #[error(
        "{path} belongs to another application (it is not a covalent store); it was left unchanged. Point COVALENT_HOME elsewhere"
    )]
    Foreign {
        /// The database file.
        path: PathBuf,
    },
    /// The file was written by a newer covalent.
    #[error(
        "{path} was written by a newer covalent (schema {found}; this build knows up to {supported}); it was left unchanged. Upgrade covalent to read it"
    )]
    Newer {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// Ours.
        supported: i64,
    },
    /// No dispatch has this id.
    #[error("no dispatch `{id}` in {path}")]
    UnknownDispatch {
        /// What was asked for.
        id: String,
        /// The database file.
        path: PathBuf,
    },
    /// An id prefix matches several dispatches.
    #[error("`{prefix}` matches several dispatches ({}); give more of the id", .matches.join(", "))]
    Ambiguous {
        /// What was asked for.
        prefix: String,
        /// The candidates.
        matches: Vec<String>,
    },
    /// A query failed.
    #[error("covalent store {path}: {reason}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's message.
        reason: String,
    },
}
