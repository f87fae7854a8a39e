//! The executor conformance suite: [`executor_conformance!`](crate::executor_conformance)
//! expands, in the calling test crate, to the electrons, lattices and `#[test]` functions of
//! every scenario an out-of-process executor must pass (the crate documentation lists the
//! scenarios and the arguments).
//!
//! The expansion puts a few `__conformance_*` functions in the calling file's scope (so the
//! expressions given to the macro are evaluated there and name the caller's items, never the
//! suite's) and everything else in a module named `conformance` (its tests are
//! `conformance::...`, and `cargo test conformance` runs them). The scenarios themselves are
//! two internal macros expanded inside that module: [`runs`] (tasks that run to an end) and
//! [`stops`] (tasks stopped by a time limit or a cancel). Generated code reaches everything by
//! absolute path (`::covalent`, `::std`, `$crate`): the calling crate needs `covalent` and
//! this crate, nothing else.

mod files;
mod runs;
mod stops;

/// Runs the executor conformance suite against one executor; see the [crate
/// documentation](crate#the-executor-conformance-suite) for the scenarios and every argument.
#[macro_export]
macro_rules! executor_conformance {
    (
        executor: $executor:expr,
        name: $name:expr,
        config: $config:expr,
        engine: $engine:expr,
        shared_dir: $here:expr,
        shared_dir_in_task: $there:expr,
        time_limit: $limit:tt,
        stopped: $stopped:expr,
        leftovers: $leftovers:expr,
        keeps_streams_of_stopped_tasks: $keeps:expr $(,)?
    ) => {
        // What the invocation gave, evaluated here in the caller's scope (so the expressions
        // name the caller's items, never the suite's); the module below calls these.

        /// The executor under test, made once per test binary (so every electron of the suite
        /// shares one instance, as electrons naming one `ExecutorRef` do).
        fn __conformance_executor() -> ::covalent::executor::ExecutorSel {
            static EXECUTOR: ::std::sync::LazyLock<::covalent::executor::ExecutorSel> =
                ::std::sync::LazyLock::new(|| {
                    ::covalent::executor::IntoExecutor::into_executor($executor)
                });
            ::std::clone::Clone::clone(&*EXECUTOR)
        }

        fn __conformance_config() -> ::covalent::Config {
            $config
        }

        fn __conformance_engine(test: &str) -> ::std::result::Result<(), ::std::string::String> {
            let engine: fn(&str) -> ::std::result::Result<(), ::std::string::String> = $engine;
            engine(test)
        }

        fn __conformance_shared_dir() -> ::std::path::PathBuf {
            ::std::path::PathBuf::from($here)
        }

        fn __conformance_shared_dir_in_task() -> ::std::string::String {
            ::std::path::PathBuf::from($there).display().to_string()
        }

        fn __conformance_stopped(
            job: &::covalent::executor::JobHandle,
        ) -> ::std::result::Result<(), ::std::string::String> {
            let probe: fn(
                &::covalent::executor::JobHandle,
            ) -> ::std::result::Result<(), ::std::string::String> = $stopped;
            probe(job)
        }

        fn __conformance_leftovers(
            dispatch: &::covalent::Uuid,
        ) -> ::std::vec::Vec<::std::string::String> {
            let probe: fn(&::covalent::Uuid) -> ::std::vec::Vec<::std::string::String> = $leftovers;
            probe(dispatch)
        }

        fn __conformance_keeps_streams_of_stopped_tasks() -> bool {
            $keeps
        }

        /// The executor conformance suite of `covalent-test-support`, run against this file's
        /// executor.
        mod conformance {
            use ::covalent::prelude::{electron, lattice};
            use ::std::path::{Path, PathBuf};
            use ::std::sync::atomic::{AtomicU32, Ordering};
            use ::std::time::{Duration, Instant};

            // ---- what the invocation gave (evaluated in the caller's scope) --------------------

            fn executor() -> ::covalent::executor::ExecutorSel {
                super::__conformance_executor()
            }

            fn config() -> ::covalent::Config {
                super::__conformance_config()
            }

            /// Whether the engine is here; if not, the test is skipped with a message (a
            /// failure under `COVALENT_REQUIRE_ENGINES=1`).
            fn engine_up(test: &str) -> bool {
                let test = format!("{}::{test}", module_path!());
                match super::__conformance_engine(&test) {
                    Ok(()) => true,
                    Err(why) => {
                        $crate::skip(&test, &why);
                        false
                    }
                }
            }

            /// The shared directory as this test process sees it.
            fn here() -> PathBuf {
                super::__conformance_shared_dir()
            }

            /// The shared directory as the tasks see it.
            fn there() -> String {
                super::__conformance_shared_dir_in_task()
            }

            /// `Ok` when nothing of the task behind `job` runs any more, else what is left.
            fn stopped(job: &::covalent::executor::JobHandle) -> Result<(), String> {
                super::__conformance_stopped(job)
            }

            /// What a stopped task printed is on its node, or (for an executor that loses the
            /// streams of stopped tasks, a known gap the invocation states) is not.
            fn streams_of_stopped(n: &::covalent::NodeResult<'_>) {
                let kept = n.stdout().contains("started");
                if super::__conformance_keeps_streams_of_stopped_tasks() {
                    assert!(kept, "the stopped task's stdout is kept: {:?}", n.stdout());
                } else {
                    assert!(
                        !kept,
                        "this executor now keeps the streams of stopped tasks: say \
                        `keeps_streams_of_stopped_tasks: true`"
                    );
                }
            }

            fn assert_nothing_left(dispatch: &::covalent::Uuid) {
                $crate::settle("nothing of the dispatch is left", || {
                    let left = super::__conformance_leftovers(dispatch);
                    if left.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("left behind: {left:?}"))
                    }
                });
            }

            // ---- helpers ----------------------------------------------------------------------

            fn node<'a>(
                r: &'a ::covalent::LatticeResult<impl ::covalent::Value>,
                name: &str,
            ) -> ::covalent::NodeResult<'a> {
                r.nodes()
                    .find(|n| n.name() == name)
                    .unwrap_or_else(|| panic!("no node {name}"))
            }

            fn kind_and_message(n: &::covalent::NodeResult<'_>) -> (::covalent::ErrorKind, String) {
                let e = n
                    .node_error()
                    .unwrap_or_else(|| panic!("node {} has no error", n.name()));
                (e.kind(), e.message().to_string())
            }

            #[electron(executor = executor())]
            fn ping() -> i64 {
                1
            }

            #[lattice]
            fn warm_up() -> i64 {
                ping()
            }

            /// One task first, so that a time limit covers the task and not the executor's
            /// one-time start-up (shipping a binary, ...).
            fn warm() {
                static WARM: ::std::sync::Once = ::std::sync::Once::new();
                WARM.call_once(|| {
                    let r = ::covalent::dispatch_sync(warm_up().with_config(config())).unwrap();
                    assert_eq!(r.value(), Some(&1), "warming up: {r}");
                });
            }

            $crate::__conformance_runs!($name);
            $crate::__conformance_stops!($limit);
            $crate::__conformance_files!();
        }
    };
}
