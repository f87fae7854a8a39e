//! Recorded dispatches from any process, through the store of the process-wide configuration
//! (`COVALENT_HOME`, `covalent.toml`): a record, waiting for one to end, cancel requests.
//!
//! This module owns these entry points; the store itself is `store/`'s.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::api_error::Error;
use crate::config::Config;
use crate::record::DispatchRecord;
use crate::status::Status;
use crate::store::Store;

impl Store {
    /// Opens the store of the process-wide configuration (`COVALENT_HOME`, `covalent.toml`).
    pub fn open_default() -> Result<Arc<Store>, Error> {
        let config = Config::global()?;
        Ok(Store::open(&config.store_path())?)
    }
}

/// Record of dispatch `id` from the store of the process-wide configuration.
///
/// ```no_run
/// let id: covalent::Uuid = "01a1fd3f-d23d-732c-ad74-729047fc95ec".parse().unwrap();
/// let record = covalent::get_result(id).unwrap();
/// println!("{record}");
/// let value: Option<i64> = record.value().unwrap();
/// ```
pub fn get_result(id: Uuid) -> Result<DispatchRecord, Error> {
    Ok(Store::open_default()?.get(id)?)
}

/// Waits (up to `timeout`, or forever) for dispatch `id` to end, then returns its record.
pub async fn wait_result(id: Uuid, timeout: Option<Duration>) -> Result<DispatchRecord, Error> {
    let store = Store::open_default()?;
    tokio::task::spawn_blocking(move || store.wait(id, timeout))
        .await
        .map_err(|e| Error::Runtime(e.to_string()))?
        .map_err(Into::into)
}

/// Asks the process running dispatch `id` to cancel it (every node, or only `nodes`).
pub fn cancel(id: Uuid, nodes: &[usize]) -> Result<Status, Error> {
    Ok(Store::open_default()?.request_cancel(id, nodes)?)
}
