//! Typed, concurrent workflows in Rust: mark task functions `#[electron]` and workflow
//! functions `#[lattice]`, then dispatch the lattice; independent electrons run at once, each
//! where its executor says, and the result records every node.
//!
//! ```
//! use covalent::prelude::*;
//!
//! #[electron]
//! fn add(x: i64, y: i64) -> i64 {
//!     x + y
//! }
//!
//! #[electron(retries = 2, time_limit = "30s")]
//! fn multiply(x: i64, y: i64) -> i64 {
//!     x * y
//! }
//!
//! #[lattice]
//! fn workflow(x: i64, y: i64) -> i64 {
//!     let r1 = add(x, y); // a Node<i64>: nothing runs yet
//!     multiply(y, r1)
//! }
//!
//! # covalent_test_support::isolate_home();
//! let result = covalent::dispatch_sync(workflow(3, 4)).unwrap();
//! assert_eq!(result.value(), Some(&28));
//! assert_eq!(result.status(), covalent::Status::Completed);
//! println!("{result}"); // the Covalent-style report
//! ```
//!
//! In an async program, use `#[covalent::main]` and `covalent::dispatch(..).await?.wait().await?`.
//! Outside a lattice, an electron is plain Rust through its `call` path: `add::call(1, 2)`.
//!
//! See the README for the tour: electron options, executors and plugins, sublattices,
//! failure semantics and configuration.

// Layers, bottom to top (docs/architecture.md draws them); a module uses only its own layer
// and those below.
// leaves:
mod cancel;
mod electron;
mod error;
mod faithful;
pub mod files;
mod invoke;
mod pool;
pub mod resources;
mod runtime;
mod status;
mod time;
mod value;
// executor API:
mod config;
pub mod executor;
// graph model:
mod graph;
// engine:
mod dispatcher;
// observers:
mod progress;
mod record;
mod result;
pub mod store;
// facade:
mod api_error;
mod durable;
mod entry;
mod lattice;
mod recorded;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use covalent_macros::{electron, lattice, main, test};

pub use api_error::Error;
pub use cancel::cancelled;
pub use config::{Config, ConfigError, SdkConfig};
pub use dispatcher::Attempt;
pub use durable::{CancelledAttempt, cancel_left_running, dispatch_detached, resume, resume_in};
pub use electron::ElectronDef;
pub use error::{ErrorKind, NodeError};
pub use files::{File, task_dir};
pub use graph::{AnyNode, Graph, IntoNode, Node, Waitable, wait};
pub use lattice::{Dispatch, Lattice, dispatch, dispatch_sync};
pub use recorded::{cancel, get_result, wait_result};
pub use resources::assigned;
pub use result::{LatticeResult, NodeResult, SublatticeResult};
pub use status::Status;
/// Dispatch ids are UUIDs (v7: time-ordered).
pub use uuid::Uuid;
pub use value::{Input, Value};

/// What a workflow file needs: `use covalent::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Dispatch, LatticeResult, Node, Status, dispatch, dispatch_sync, electron, lattice, wait,
    };
}

#[cfg(test)]
covalent_test_support::isolated_home!();
