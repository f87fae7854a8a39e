//! What every request of `covalent ui` shares: the store (opened lazily, once its file exists,
//! and again when the file is replaced),
//! the configuration, the security settings, the change counter fed by the poller, a small
//! cache of ended dispatches' records and one of big dispatches' graph summaries; plus the one
//! error type of the UI and the helper that runs store calls off the async threads.
//!
//! A dispatch of more than [`GRAPH_FULL_MAX`] tasks is never read whole by the pages' answers:
//! its graph is summarized ([`AppState::graph_summary`]) and its nodes read a few at a time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use covalent::store::{DispatchRecord, GraphSummary, Store, StoreError};
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
    /// Graph summaries of big dispatches (see [`AppState::graph_summary`]).
    summaries: Mutex<Vec<CachedSummary>>,
    /// Held while a summary is computed: two requests for one (the page and its event stream)
    /// compute it once, and two big ones do not share the cores.
    summarizing: Mutex<()>,
}

/// How many ended dispatches' records are kept.
const CACHED_RECORDS: usize = 4;

/// The most tasks a dispatch may have for the pages to get its whole graph, node by node;
/// above it they get the graph summarized ([`AppState::graph_summary`]). Above 10,001: the
/// browser test draws a grid of that many tasks in full.
pub const GRAPH_FULL_MAX: usize = 20_000;

/// The most groups a summarized graph is drawn with.
pub const MAX_GROUPS: usize = 300;

/// How many graph summaries are kept.
const CACHED_SUMMARIES: usize = 4;

/// How long a running dispatch's summary is served before it is computed again.
const SUMMARY_FRESH: Duration = Duration::from_secs(2);

/// A graph summary, with what it was computed from.
struct CachedSummary {
    id: Uuid,
    internal: bool,
    /// The store's `data_version` then.
    version: i64,
    /// Whether the dispatch had ended then (its summary never changes).
    terminal: bool,
    at: Instant,
    summary: Arc<GraphSummary>,
}

/// Whether a dispatch of `tasks` tasks has its graph summarized.
pub fn is_big(tasks: usize) -> bool {
    tasks > GRAPH_FULL_MAX
}

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
            summaries: Mutex::new(Vec::new()),
            summarizing: Mutex::new(()),
        })
    }

    /// The summary of dispatch `id`'s top-level graph (internal nodes grouped too with
    /// `internal`): [`Store::graph_summary`] with at most [`MAX_GROUPS`] groups, kept for as long
    /// as it holds: for good once the dispatch has ended, else while the store's `data_version`
    /// is unchanged or for [`SUMMARY_FRESH`] (status counts of a running dispatch lag by that
    /// much at most). Blocking.
    pub fn graph_summary(
        &self,
        store: &Store,
        id: Uuid,
        internal: bool,
    ) -> Result<Arc<GraphSummary>, UiError> {
        let status = store.status(id)?;
        let version = store.data_version()?;
        let find = || {
            self.summaries
                .lock()
                .unwrap()
                .iter()
                .find(|c| {
                    c.id == id
                        && c.internal == internal
                        && (c.terminal
                            || c.version == version
                            || (!status.is_terminal() && c.at.elapsed() < SUMMARY_FRESH))
                })
                .map(|c| c.summary.clone())
        };
        if let Some(s) = find() {
            return Ok(s);
        }
        let _one = self.summarizing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = find() {
            return Ok(s);
        }
        let summary = Arc::new(store.graph_summary(id, internal, MAX_GROUPS)?);
        let mut cache = self.summaries.lock().unwrap();
        cache.retain(|c| c.id != id || c.internal != internal);
        if cache.len() >= CACHED_SUMMARIES {
            cache.remove(0);
        }
        cache.push(CachedSummary {
            id,
            internal,
            version,
            terminal: status.is_terminal(),
            at: Instant::now(),
            summary: summary.clone(),
        });
        Ok(summary)
    }

    /// A record holding top-level node `first` (and the sublattices under it): the whole
    /// record of a dispatch of up to [`GRAPH_FULL_MAX`] tasks ([`AppState::record`]), only that
    /// node of a bigger one. For answers about node `first` or a graph under it. Blocking.
    pub fn record_under(
        &self,
        store: &Store,
        id: Uuid,
        first: usize,
    ) -> Result<Arc<DispatchRecord>, UiError> {
        if is_big(store.summary(id)?.total) {
            return Ok(Arc::new(store.get_nodes(id, &[first])?));
        }
        self.record(store, id)
    }

    /// The record of dispatch `id`: from the cache when it had ended (and still exists), else
    /// from the store. The records of big dispatches (more than [`GRAPH_FULL_MAX`] tasks) are not
    /// kept. Blocking.
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
        if record.status.is_terminal() && !is_big(record.task_count()) {
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
