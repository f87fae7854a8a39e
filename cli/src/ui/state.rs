//! What every request of `covalent ui` shares: the store (opened lazily, once its file exists,
//! and again when the file is replaced),
//! the configuration, the security settings, the change counter fed by the poller, and a small
//! cache of ended dispatches' records; plus the one error type of the UI and the helper that
//! runs store calls off the async threads.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use covalent::store::{DispatchRecord, Store, StoreError};
use covalent::{Config, Uuid};
use tokio::sync::watch;

use super::security::Security;

/// The state shared by every handler.
pub type Shared = Arc<AppState>;

/// The server's state.
pub struct AppState {
    /// The store.
    pub store: StoreHandle,
    /// The effective configuration (executor options for the node drawer).
    pub config: Config,
    /// Token, CSRF token, host checks.
    pub security: Arc<Security>,
    /// Bumped whenever the store's `data_version` changes (see `events::poll_versions`).
    pub changes: watch::Sender<u64>,
    /// Records of ended dispatches, which never change (a 10,000-node record takes a while to
    /// assemble; the node drawer asks for one node at a time).
    cache: Mutex<Vec<Arc<DispatchRecord>>>,
}

/// How many ended dispatches' records are kept.
const CACHED_RECORDS: usize = 4;

impl AppState {
    /// The state of a server on the store `ctx` names.
    pub fn new(config: Config, security: Security) -> Shared {
        let data_dir = config.data_dir();
        let path = config.store_path();
        Arc::new(AppState {
            store: StoreHandle {
                data_dir,
                path,
                open: Mutex::new(None),
            },
            config,
            security: Arc::new(security),
            changes: watch::Sender::new(0),
            cache: Mutex::new(Vec::new()),
        })
    }

    /// The record of dispatch `id`: from the cache when it had ended (and still exists), else
    /// from the store. Blocking.
    pub fn record(&self, store: &Store, id: Uuid) -> Result<Arc<DispatchRecord>, UiError> {
        let cached = self
            .cache
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.id == id)
            .cloned();
        if let Some(r) = cached {
            // Still there (not purged meanwhile)? `status` is one indexed row.
            store.status(id)?;
            return Ok(r);
        }
        let record = Arc::new(store.get(id)?);
        if record.status.is_terminal() {
            let mut cache = self.cache.lock().unwrap();
            cache.retain(|r| r.id != id);
            if cache.len() >= CACHED_RECORDS {
                cache.remove(0);
            }
            cache.push(record.clone());
        }
        Ok(record)
    }
}

/// The store file, opened the first time it exists (looking never creates it).
pub struct StoreHandle {
    /// The data dir.
    pub data_dir: PathBuf,
    /// `<data dir>/covalent.db`.
    pub path: PathBuf,
    open: Mutex<Option<Arc<Store>>>,
}

impl StoreHandle {
    /// The store, `None` while nothing was ever recorded; an error when the file is not a
    /// usable store (tried again on the next call, so a fixed file is picked up). A store file
    /// deleted, re-created or replaced while the server runs is noticed on the next call (one
    /// `stat`), and the new file is opened. Blocking.
    pub fn get(&self) -> Result<Option<Arc<Store>>, StoreError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = open.as_ref() {
            if s.is_current() {
                return Ok(Some(s.clone()));
            }
            *open = None;
        }
        if !self.path.exists() {
            return Ok(None);
        }
        let store = Store::open(&self.path)?;
        *open = Some(store.clone());
        Ok(Some(store))
    }

    /// The store, or [`UiError::NoStore`]. Blocking.
    pub fn require(&self) -> Result<Arc<Store>, UiError> {
        self.get()?.ok_or_else(|| UiError::NoStore {
            data_dir: self.data_dir.clone(),
            path: self.path.clone(),
        })
    }
}

/// Why a request could not be answered.
#[derive(Debug)]
pub enum UiError {
    /// Nothing was ever recorded: the store file does not exist.
    NoStore {
        /// The data dir.
        data_dir: PathBuf,
        /// The missing file.
        path: PathBuf,
    },
    /// The store said no (unknown id, corrupt file, ...).
    Store(StoreError),
    /// No such thing (a node, a sublattice, a page).
    NotFound(String),
    /// The request makes no sense.
    BadRequest(String),
    /// The dispatch is not in a state that allows it.
    Conflict(String),
    /// A bug: a store call panicked.
    Internal(String),
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        UiError::Store(e)
    }
}

impl UiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            UiError::NoStore { .. } | UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::Store(StoreError::UnknownDispatch { .. }) => StatusCode::NOT_FOUND,
            UiError::Store(StoreError::Ambiguous { .. }) => StatusCode::NOT_FOUND,
            UiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Conflict(_) => StatusCode::CONFLICT,
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            UiError::NoStore { .. } => "no_store",
            UiError::Store(StoreError::UnknownDispatch { .. }) => "unknown_dispatch",
            UiError::Store(StoreError::Ambiguous { .. }) => "ambiguous_id",
            UiError::Store(_) => "store_unusable",
            UiError::NotFound(_) => "not_found",
            UiError::BadRequest(_) => "bad_request",
            UiError::Conflict(_) => "conflict",
            UiError::Internal(_) => "internal",
        }
    }

    /// The message for people.
    pub fn message(&self) -> String {
        match self {
            UiError::NoStore { data_dir, path } => format!(
                "nothing has been recorded in {} yet (the store {} does not exist)",
                data_dir.display(),
                path.display()
            ),
            UiError::Store(e) => e.to_string(),
            UiError::NotFound(m)
            | UiError::BadRequest(m)
            | UiError::Conflict(m)
            | UiError::Internal(m) => m.clone(),
        }
    }
}

/// Runs `f` on the store on a blocking thread (SQLite calls block). A panic inside becomes
/// [`UiError::Internal`], never a dead server.
pub async fn blocking<T, F>(state: &Shared, f: F) -> Result<T, UiError>
where
    T: Send + 'static,
    F: FnOnce(&AppState) -> Result<T, UiError> + Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .unwrap_or_else(|e| Err(UiError::Internal(format!("a store call failed: {e}"))))
}
