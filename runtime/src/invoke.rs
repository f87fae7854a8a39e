//! Invoking an electron's code: panics captured as [`TaskError::Panicked`] with their message
//! and location (instead of printed), and the hooks around a body (`deps_bash`, `call_before`,
//! `call_after`).
//!
//! This module owns panic capture and hook running for every caller (the dispatcher's pool
//! path, executors through `Task::call*`, worker processes). It does not decide retries or
//! record anything.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use crate::electron::{ElectronDef, TaskError, TaskFuture};
use crate::value::Output;

thread_local! {
    static CAPTURE: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs (once) a panic hook that, inside an electron, records the message and location
/// instead of printing them; elsewhere it defers to the previous hook.
pub(crate) fn install_panic_hook() {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURE.with(|c| c.get()) {
                let msg = panic_message(info.payload());
                let text = match info.location() {
                    Some(l) => format!("{msg} (at {}:{}:{})", l.file(), l.line(), l.column()),
                    None => msg,
                };
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
            } else {
                prev(info)
            }
        }));
    });
}

/// The message of a panic payload.
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// The message of a panicked (or cancelled) tokio task.
pub(crate) fn join_error_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => panic_message(&p),
        Err(e) => e.to_string(),
    }
}

/// Runs `f`, turning a panic into [`TaskError::Panicked`].
pub(crate) fn catch<R>(f: impl FnOnce() -> Result<R, TaskError>) -> Result<R, TaskError> {
    let prev = CAPTURE.with(|c| c.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    CAPTURE.with(|c| c.set(prev));
    match r {
        Ok(r) => r,
        Err(p) => Err(TaskError::Panicked(
            LAST_PANIC
                .with(|l| l.borrow_mut().take())
                .unwrap_or_else(|| panic_message(&*p)),
        )),
    }
}

/// Polls a future, turning a panic into `Err(message)` (with the location, as [`catch`]).
pub(crate) struct CatchPanic<F: ?Sized>(pub(crate) Pin<Box<F>>);

impl<F: std::future::Future + ?Sized> std::future::Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch(|| Ok(fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(TaskError::Panicked(m)) => Poll::Ready(Err(m)),
            Err(e) => Poll::Ready(Err(e.to_string())),
        }
    }
}

/// Runs an electron's future with panics turned into [`TaskError::Panicked`].
pub(crate) async fn catch_future(f: TaskFuture) -> Result<Output, TaskError> {
    CatchPanic(f)
        .await
        .unwrap_or_else(|m| Err(TaskError::Panicked(m)))
}

/// Runs `deps_bash` commands and `call_before` hooks.
pub(crate) fn run_before_hooks(def: &ElectronDef) -> Result<(), TaskError> {
    if !def.files.is_empty() {
        crate::files::run_transfers(crate::files::Order::Before).map_err(TaskError::Transfer)?;
    }
    for cmd in def.deps_bash {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| TaskError::Hook(format!("deps_bash `{cmd}` could not start: {e}")))?;
        if !out.status.success() {
            return Err(TaskError::Hook(format!(
                "deps_bash `{cmd}` failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    for h in def.call_before {
        catch(|| (h.run)().map_err(TaskError::Hook))
            .map_err(|e| TaskError::Hook(format!("call_before `{}` failed: {e}", h.name)))?;
    }
    Ok(())
}

/// Runs `call_after` hooks.
pub(crate) fn run_after_hooks(def: &ElectronDef) -> Result<(), TaskError> {
    for h in def.call_after {
        catch(|| (h.run)().map_err(TaskError::Hook))
            .map_err(|e| TaskError::Hook(format!("call_after `{}` failed: {e}", h.name)))?;
    }
    if !def.files.is_empty() {
        crate::files::run_transfers(crate::files::Order::After).map_err(TaskError::Transfer)?;
    }
    Ok(())
}

/// A body's failure as the task's error: a transfer error when a file the body asked for
/// could not be brought (its own error then usually just passes that on).
pub(crate) fn classify(e: TaskError) -> TaskError {
    match (&e, crate::files::failed_transfer()) {
        (TaskError::Failed(_) | TaskError::Panicked(_), Some(t)) => {
            TaskError::Transfer(format!("{t} (the electron failed with: {e})"))
        }
        _ => e,
    }
}

/// Runs a sync electron's hooks and body here: `deps_bash`, `call_before`, the body,
/// `call_after`, with panics captured.
pub(crate) fn run_sync(
    def: &ElectronDef,
    body: fn(&mut crate::electron::Args) -> Result<Output, TaskError>,
    args: &mut crate::electron::Args,
) -> Result<Output, TaskError> {
    run_before_hooks(def)?;
    let v = catch(|| body(args)).map_err(classify)?;
    run_after_hooks(def)?;
    Ok(v)
}
