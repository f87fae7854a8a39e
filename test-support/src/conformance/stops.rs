//! The suite's scenarios of tasks that are stopped: by a time limit and by cancellation
//! (expanded inside the `conformance` module of
//! [`executor_conformance!`](crate::executor_conformance), whose helpers they use).

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_stops {
    ($limit:tt) => {
        // ---- a time limit and cancellation ------------------------------------------------

        /// Prints that it started, marks it in a file, leaves a grandchild behind, then sleeps
        /// far past any time limit of the suite. The mark comes a moment after the print: the
        /// test cancels when it sees the mark, and the printed line must by then have made its
        /// way to the executor (a container's output travels through the engine first).
        fn linger(started: &str) {
            println!("started");
            let _ = ::std::io::Write::flush(&mut ::std::io::stdout());
            ::std::thread::sleep(Duration::from_millis(300));
            let _ = ::std::fs::write(started, "started");
            // A grandchild (in the task's process group, job or container) must go too.
            let _ = ::std::process::Command::new("sleep").arg("120").spawn();
            ::std::thread::sleep(Duration::from_secs(120));
        }

        #[electron(executor = executor(), time_limit = $limit)]
        fn too_slow(started: String) -> i64 {
            linger(&started);
            1
        }

        #[lattice]
        fn timed(started: String) -> i64 {
            too_slow(started)
        }

        /// A task past its `time_limit` fails `TimedOut` ("timed out after ..."), what it
        /// printed is kept, and the executor stops it (its probe says nothing is left).
        #[test]
        fn a_time_limit_stops_the_task() {
            if !engine_up("a_time_limit_stops_the_task") {
                return;
            }
            warm();
            let started = $crate::unique("timed-out");
            let start = Instant::now();
            let r = ::covalent::dispatch_sync(
                timed(format!("{}/{started}", there())).with_config(config()),
            )
            .unwrap();
            let _ = ::std::fs::remove_file(here().join(&started));
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{:?}",
                start.elapsed()
            );
            let n = r.node(0).unwrap();
            assert_eq!(n.status(), ::covalent::Status::Failed);
            let (kind, e) = kind_and_message(&n);
            assert_eq!(kind, ::covalent::ErrorKind::TimedOut, "{e}");
            assert!(e.contains(concat!("timed out after ", $limit)), "{e}");
            streams_of_stopped(&n);
            let job = n.job_handle().expect("a job handle");
            $crate::settle("the timed-out task is stopped", || stopped(&job));
            assert_nothing_left(&r.dispatch_id());
        }

        #[electron(executor = executor())]
        fn waits_forever(started: String) -> i64 {
            linger(&started);
            1
        }

        #[lattice]
        fn cancellable(started: String) -> i64 {
            waits_forever(started)
        }

        /// Cancelling a dispatch while its task runs cancels the node (`Cancelled`) and
        /// the executor stops the task.
        #[::covalent::test]
        async fn cancel_stops_the_running_task() {
            if !engine_up("cancel_stops_the_running_task") {
                return;
            }
            warm();
            let started = $crate::unique("cancelled");
            let marker = here().join(&started);
            let d = ::covalent::dispatch(
                cancellable(format!("{}/{started}", there())).with_config(config()),
            )
            .await
            .unwrap();
            let start = Instant::now();
            while !marker.exists() {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "the task never started"
                );
                ::std::thread::sleep(Duration::from_millis(50));
            }
            ::std::thread::sleep(Duration::from_millis(300));
            d.cancel();
            let r = d.wait().await.unwrap();
            let _ = ::std::fs::remove_file(&marker);
            assert_eq!(r.status(), ::covalent::Status::Cancelled, "{r}");
            let n = r.node(0).unwrap();
            assert_eq!(n.status(), ::covalent::Status::Cancelled);
            assert_eq!(n.error_kind(), Some(::covalent::ErrorKind::Cancelled));
            streams_of_stopped(&n);
            let job = n.job_handle().expect("a job handle");
            $crate::settle("the cancelled task is stopped", || stopped(&job));
            assert_nothing_left(&r.dispatch_id());
        }
    };
}
