//! Files that travel with tasks: the [`File`] value electrons take and return, the
//! `files = [stage_in(..), stage_out(..)]` electron option, the transfer strategies (local
//! copy, rsync or scp over OpenSSH, HTTP(S) download) and the [`TransferRecord`]s a node
//! keeps of them.
//!
//! Which side moves a file: where the task runs, unless the file is one of the dispatching
//! machine and the task runs elsewhere (an ssh host, a Slurm job, a container); then the
//! dispatcher's executor sends it into the task's directory before the task, or brings it back
//! after (see `executor::files`).
//!
//! ```
//! use covalent::prelude::*;
//! use covalent::File;
//!
//! #[electron]
//! fn count_lines(data: File) -> Result<usize, std::io::Error> {
//!     Ok(data.read_to_string()?.lines().count())
//! }
//!
//! #[lattice]
//! fn flow(data: File) -> usize {
//!     count_lines(data)
//! }
//!
//! fn main() {
//! # covalent_test_support::isolate_home();
//!     let dir = tempfile::tempdir().unwrap();
//!     let csv = dir.path().join("data.csv");
//!     std::fs::write(&csv, "x\n1\n2\n").unwrap();
//!     let data = File::new(csv.to_str().unwrap()).unwrap();
//!     let result = covalent::dispatch_sync(flow(data)).unwrap();
//!     assert_eq!(result.value(), Some(&3));
//! }
//! ```

mod file;
mod planned;
mod record;
mod scope;
mod strategy;
mod transfer;
mod uri;

pub use file::{FILE_KEY, File, HASH_LIMIT, files_in_json};
pub use planned::{By, Order, Planned};
pub use record::TransferRecord;
pub use scope::{Fetch, Scope, Scoped, StagedInput, enter, task_dir};
pub use strategy::{hash_file, rsync_here, rsync_missing_there, shell_quote};
pub use transfer::{Transfer, plan, stage_in, stage_out};
pub use uri::{Location, SshPath, check_task_path};

pub(crate) use scope::{failed_transfer, used};
pub(crate) use strategy::{copy_local, part_path};
pub(crate) use transfer::run as run_transfers;
