//! What runs before `main`: the modes in which a covalent program is re-run by another process
//! (a worker running one task, `executor/worker.rs`; a detached dispatcher or a maintenance
//! run, `durable.rs`). Each is entered from a constructor, so it works for binaries whose
//! `main` is not `#[covalent::main]` (test harnesses, examples), and from
//! `#[covalent::main]` where constructors do not run first.
//!
//! This module owns the entry only; what each mode does is its module's.

use crate::durable::{DISPATCHER_ENV, MAINTAIN_ENV, enter_if_dispatcher, enter_if_maintenance};
use crate::executor::worker::{SERVE_ENV, TASK_ENV, enter_if_worker};

/// Whether this process was started in one of the modes.
fn any_mode() -> bool {
    [TASK_ENV, SERVE_ENV, DISPATCHER_ENV, MAINTAIN_ENV]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Enters the mode this process was started in (each exits when done); returns otherwise.
pub(crate) fn enter_modes() {
    enter_if_worker();
    enter_if_dispatcher();
    enter_if_maintenance();
}

/// The modes before `main` (glibc Linux): binaries whose `main` is not `#[covalent::main]`
/// (test harnesses) are workers and dispatchers too, and no user code runs first in them.
///
/// Electrons register themselves from constructors as well, and constructors run in link
/// order, so some may not have run yet when this one does. In any mode it therefore runs
/// the constructors that come after it itself (with the arguments the C runtime gave it), then
/// the mode's work, then exits: the C runtime never reaches them again. Outside worker mode it
/// returns at once.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod preinit {
    use std::ffi::{c_char, c_int};

    type InitFn = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char);

    unsafe extern "C" {
        static __init_array_start: [InitFn; 0];
        static __init_array_end: [InitFn; 0];
    }

    unsafe extern "C" fn entry(
        argc: c_int,
        argv: *const *const c_char,
        envp: *const *const c_char,
    ) {
        if !super::any_mode() {
            return;
        }
        // SAFETY: the linker delimits the array of constructor pointers with these symbols;
        // we read it in place and call each constructor after ours exactly once, with the
        // arguments the C runtime passes to constructors, then exit before it would.
        unsafe {
            let mut p = (&raw const __init_array_start).cast::<InitFn>();
            let end = (&raw const __init_array_end).cast::<InitFn>();
            let me = entry as InitFn as usize;
            let mut after_me = false;
            while p < end {
                let f = *p;
                if after_me {
                    f(argc, argv, envp);
                } else if f as usize == me {
                    after_me = true;
                }
                p = p.add(1);
            }
        }
        super::enter_modes();
    }

    #[used]
    #[unsafe(link_section = ".init_array")]
    static ENTRY: InitFn = entry;
}
