//! The async runtime the dispatcher runs on: the caller's tokio runtime when there is one,
//! otherwise a process-wide one started on first use. Owns nothing else.

use std::future::Future;
use std::sync::LazyLock;

use tokio::runtime::{Handle, Runtime};

static GLOBAL: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("covalent-rt")
        .build()
        .expect("cannot start the covalent async runtime")
});

/// The current runtime's handle, or the process-wide runtime's.
pub(crate) fn handle() -> Handle {
    Handle::try_current().unwrap_or_else(|_| GLOBAL.handle().clone())
}

/// Runs blocking code from synchronous code or from a multi-threaded runtime's thread (through
/// `block_in_place`); a single-threaded runtime cannot block, which is an error.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    match Handle::try_current() {
        Err(_) => Ok(f()),
        Ok(h) => match h.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => Ok(tokio::task::block_in_place(f)),
            _ => Err(single_threaded()),
        },
    }
}

fn single_threaded() -> String {
    "dispatch_sync was called on a single-threaded async runtime, which it would block; \
     use `covalent::dispatch(..).await` there"
        .into()
}

/// `#[covalent::main]`: builds a multi-threaded runtime and runs the program on it.
pub(crate) fn block_on_main<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime")
        .block_on(f)
}
