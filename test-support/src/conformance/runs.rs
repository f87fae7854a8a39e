//! The suite's scenarios of tasks that run to an end: results and streams, failures and
//! crashes, retries after a crash, parallel tasks, hooks (expanded inside the `conformance`
//! module of [`executor_conformance!`](crate::executor_conformance), whose helpers they use).

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_runs {
    ($name:expr) => {
        // ---- results and streams ----------------------------------------------------------

        #[electron(executor = executor())]
        fn shout(word: String) -> (String, u32) {
            println!("saying {word}");
            eprintln!("warning about {word}");
            (word.to_uppercase(), ::std::process::id())
        }

        /// Runs where the lattice's default executor says (here: in this process).
        #[electron]
        fn join(a: (String, u32), b: (String, u32)) -> (String, u32, u32) {
            (format!("{}/{}", a.0, b.0), a.1, b.1)
        }

        #[lattice]
        fn basic() -> (String, u32, u32) {
            join(shout("hello".to_string()), shout("x".to_string()))
        }

        /// Tasks run out of this process, return their values to downstream nodes, and
        /// their stdout and stderr are captured on their node, with a job handle.
        #[test]
        fn tasks_run_elsewhere_with_their_streams_captured() {
            if !engine_up("tasks_run_elsewhere_with_their_streams_captured") {
                return;
            }
            let r = ::covalent::dispatch_sync(basic().with_config(config())).unwrap();
            assert_eq!(r.status(), ::covalent::Status::Completed, "{r}");
            let (joined, a, b) = r.value().unwrap().clone();
            assert_eq!(joined, "HELLO/X");
            let me = ::std::process::id();
            assert!(
                a != me && b != me,
                "ran in other processes: {a}, {b} (this is {me})"
            );
            let n = node(&r, "shout");
            assert_eq!(n.executor().as_deref(), Some($name));
            assert!(n.stdout().contains("saying "), "stdout: {:?}", n.stdout());
            assert!(
                n.stderr().contains("warning about "),
                "stderr: {:?}",
                n.stderr()
            );
            assert!(n.job_handle().is_some(), "a job handle is recorded");
            assert_nothing_left(&r.dispatch_id());
        }

        // ---- failures and crashes ---------------------------------------------------------

        #[electron(executor = executor())]
        fn fails() -> Result<i64, String> {
            Err("no luck".to_string())
        }

        #[electron(executor = executor())]
        fn panics() -> i64 {
            panic!("worker panic")
        }

        #[electron(executor = executor())]
        fn aborts() -> i64 {
            eprintln!("about to abort");
            ::std::process::abort()
        }

        #[electron(executor = executor())]
        fn exits() -> i64 {
            ::std::process::exit(3)
        }

        #[electron(executor = executor())]
        fn segfaults() -> i64 {
            // SAFETY: not safe at all: the point is a real segmentation fault in the
            // worker (address 8 is never mapped; non-null, so no debug precondition
            // turns it into an abort first).
            unsafe { ::std::ptr::without_provenance_mut::<u8>(8).write_volatile(1) };
            0
        }

        #[lattice]
        fn failures() -> (i64, i64, i64, i64, i64) {
            (fails(), panics(), aborts(), exits(), segfaults())
        }

        /// `Err` is a `User` failure with its message, a panic a `Panic`; a worker that
        /// aborts, exits or segfaults without a result is `WorkerLost`, saying how it ended
        /// and showing its stderr.
        #[test]
        fn failures_and_crashes_fail_their_node_with_the_kind_and_reason() {
            if !engine_up("failures_and_crashes_fail_their_node_with_the_kind_and_reason") {
                return;
            }
            use ::covalent::ErrorKind;
            let r = ::covalent::dispatch_sync(failures().with_config(config())).unwrap();
            assert_eq!(r.status(), ::covalent::Status::Failed);
            let (kind, e) = kind_and_message(&node(&r, "fails"));
            assert_eq!((kind, e.as_str()), (ErrorKind::User, "no luck"));
            let (kind, e) = kind_and_message(&node(&r, "panics"));
            assert_eq!(kind, ErrorKind::Panic, "{e}");
            assert!(e.contains("panicked: worker panic"), "{e}");
            let (kind, e) = kind_and_message(&node(&r, "aborts"));
            assert_eq!(kind, ErrorKind::WorkerLost, "{e}");
            assert!(e.contains("SIGABRT"), "{e}");
            assert!(e.contains("about to abort"), "stderr is shown: {e}");
            let (kind, e) = kind_and_message(&node(&r, "exits"));
            assert_eq!(kind, ErrorKind::WorkerLost, "{e}");
            assert!(e.contains("exited with code 3"), "{e}");
            let (kind, e) = kind_and_message(&node(&r, "segfaults"));
            assert_eq!(kind, ErrorKind::WorkerLost, "{e}");
            assert!(e.contains("SIGSEGV"), "{e}");
            assert_nothing_left(&r.dispatch_id());
        }

        // ---- retries after a crash --------------------------------------------------------

        /// Crashes on its first attempt (leaving `flag`), succeeds on the next.
        #[electron(executor = executor(), retries = 1)]
        fn crashes_once(flag: String) -> i64 {
            if !Path::new(&flag).exists() {
                ::std::fs::write(&flag, "crashed").unwrap();
                eprintln!("crashing on purpose");
                ::std::process::abort();
            }
            7
        }

        #[lattice]
        fn retried(flag: String) -> i64 {
            crashes_once(flag)
        }

        /// A worker crash is retryable: with `retries = 1` the second attempt's value is
        /// the node's, and the first attempt is recorded as `WorkerLost` (SIGABRT).
        #[test]
        fn a_worker_crash_is_retried() {
            if !engine_up("a_worker_crash_is_retried") {
                return;
            }
            let flag = $crate::unique("crash-once");
            let r = ::covalent::dispatch_sync(
                retried(format!("{}/{flag}", there())).with_config(config()),
            )
            .unwrap();
            let _ = ::std::fs::remove_file(here().join(&flag));
            assert_eq!(r.value(), Some(&7), "{r}");
            let attempts = r.node(0).unwrap().attempts();
            assert_eq!(attempts.len(), 2, "{attempts:?}");
            let first = attempts[0]
                .error
                .as_ref()
                .expect("the first attempt failed");
            assert_eq!(first.kind(), ::covalent::ErrorKind::WorkerLost, "{first}");
            assert!(first.message().contains("SIGABRT"), "{first}");
            assert!(attempts[1].error.is_none(), "{attempts:?}");
            assert_nothing_left(&r.dispatch_id());
        }

        // ---- parallel tasks ---------------------------------------------------------------

        /// Waits until the other task has started too: only `true` if both run at once.
        #[electron(executor = executor())]
        fn rendezvous(me: String, other: String) -> bool {
            ::std::fs::write(&me, "here").unwrap();
            let start = Instant::now();
            while !Path::new(&other).exists() {
                if start.elapsed() > Duration::from_secs(60) {
                    return false;
                }
                ::std::thread::sleep(Duration::from_millis(10));
            }
            true
        }

        #[lattice]
        fn pair(a: String, b: String) -> (bool, bool) {
            (rendezvous(a.clone(), b.clone()), rendezvous(b, a))
        }

        /// Two independent tasks run at the same time, each with its own job.
        #[test]
        fn two_tasks_run_in_parallel() {
            if !engine_up("two_tasks_run_in_parallel") {
                return;
            }
            let (a, b) = ($crate::unique("left"), $crate::unique("right"));
            let r = ::covalent::dispatch_sync(
                pair(format!("{}/{a}", there()), format!("{}/{b}", there())).with_config(config()),
            )
            .unwrap();
            let _ = ::std::fs::remove_file(here().join(&a));
            let _ = ::std::fs::remove_file(here().join(&b));
            assert_eq!(r.value(), Some(&(true, true)), "{r}");
            let jobs: Vec<_> = r
                .nodes()
                .filter(|n| n.name() == "rendezvous")
                .map(|n| n.job_handle().expect("a job handle"))
                .collect();
            assert_eq!(jobs.len(), 2);
            assert_ne!(jobs[0], jobs[1], "two jobs");
            assert_nothing_left(&r.dispatch_id());
        }

        // ---- hooks --------------------------------------------------------------------------

        /// The pid of the process `call_before` ran in, as that process sees it.
        static HOOK_PID: AtomicU32 = AtomicU32::new(0);

        fn note_pid() {
            HOOK_PID.store(::std::process::id(), Ordering::SeqCst);
        }

        fn refuse() -> Result<(), String> {
            Err("not today".to_string())
        }

        /// `deps_bash` leaves its parent's pid in a file named after it; `call_before`
        /// notes its pid: both must be this task's process.
        #[electron(
                    executor = executor(),
                    deps_bash = "echo $PPID > \"${TMPDIR:-/tmp}/covalent-conformance-deps-$PPID\"",
                    call_before = note_pid
                )]
        fn hooked() -> (bool, bool) {
            let me = ::std::process::id();
            let file = ::std::env::temp_dir().join(format!("covalent-conformance-deps-{me}"));
            let deps = ::std::fs::read_to_string(&file).is_ok_and(|s| s.trim() == me.to_string());
            let _ = ::std::fs::remove_file(&file);
            (deps, HOOK_PID.load(Ordering::SeqCst) == me)
        }

        #[electron(executor = executor(), deps_bash = "echo cannot install >&2; false")]
        fn broken_deps() -> bool {
            true
        }

        #[electron(executor = executor(), call_before = refuse)]
        fn refused() -> bool {
            true
        }

        #[lattice]
        fn hooks() -> ((bool, bool), bool, bool) {
            (hooked(), broken_deps(), refused())
        }

        /// `deps_bash` and `call_before` run in the task's own process (where the task
        /// runs, not in the dispatching program); a failing `deps_bash` or `call_before`
        /// fails the node as `Hook`, with the command's stderr or the hook's error.
        #[test]
        fn hooks_run_where_the_task_runs() {
            if !engine_up("hooks_run_where_the_task_runs") {
                return;
            }
            let r = ::covalent::dispatch_sync(hooks().with_config(config())).unwrap();
            let n = node(&r, "hooked");
            assert_eq!(n.status(), ::covalent::Status::Completed, "{r}");
            let (deps, before) = n.output_as::<(bool, bool)>().unwrap();
            assert!(deps, "deps_bash ran in the task's process");
            assert!(before, "call_before ran in the task's process");
            let (kind, e) = kind_and_message(&node(&r, "broken_deps"));
            assert_eq!(kind, ::covalent::ErrorKind::Hook, "{e}");
            assert!(
                e.contains("deps_bash") && e.contains("cannot install"),
                "{e}"
            );
            let (kind, e) = kind_and_message(&node(&r, "refused"));
            assert_eq!(kind, ::covalent::ErrorKind::Hook, "{e}");
            assert!(e.contains("call_before") && e.contains("not today"), "{e}");
            assert_nothing_left(&r.dispatch_id());
        }

        // ---- large outputs ----------------------------------------------------------------

        #[electron(executor = executor())]
        fn big_output(n: u32) -> Vec<u32> {
            (0..n).collect()
        }

        #[electron]
        fn big_sum(v: Vec<u32>) -> u64 {
            v.iter().map(|&x| u64::from(x)).sum()
        }

        #[lattice]
        fn big_flow(n: u32) -> u64 {
            big_sum(big_output(n))
        }

        /// The files among a dispatch's value files (none when the directory is not there).
        fn value_files(dispatch: &::covalent::Uuid) -> Vec<PathBuf> {
            let dir = config()
                .results_dir()
                .join(dispatch.to_string())
                .join("values");
            ::std::fs::read_dir(dir)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        }

        /// An output too large for the result envelope (1.3 MB of JSON) comes back as a file
        /// of its own, complete, and is the node's value without being read into memory: a
        /// downstream electron reads it; without recording the file goes with the value; with
        /// recording the store names that file (one file, the value's JSON exactly).
        #[test]
        fn a_large_output_comes_back_as_a_file() {
            if !engine_up("a_large_output_comes_back_as_a_file") {
                return;
            }
            warm();
            let n = 200_000u32;
            let text = format!(
                "[{}]",
                (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            );
            let sum = u64::from(n) * u64::from(n - 1) / 2;

            let r = ::covalent::dispatch_sync(big_flow(n).with_config(config())).unwrap();
            assert_eq!(r.value(), Some(&sum), "{r}");
            let id = r.dispatch_id();
            let v = node(&r, "big_output").output_as::<Vec<u32>>().unwrap();
            assert!(v.len() == n as usize && v.iter().enumerate().all(|(i, &x)| x as usize == i));
            let files = value_files(&id);
            assert_eq!(files.len(), 1, "{files:?}");
            assert_eq!(::std::fs::read_to_string(&files[0]).unwrap(), text);
            drop(r);
            $crate::settle("an unrecorded dispatch's value file goes with its value", || {
                match value_files(&id) {
                    f if f.is_empty() => Ok(()),
                    f => Err(format!("left: {f:?}")),
                }
            });
            assert_nothing_left(&id);

            let r = ::covalent::dispatch_sync(big_flow(n).with_config(config()).record(true))
                .unwrap();
            assert_eq!(r.value(), Some(&sum), "{r}");
            let id = r.dispatch_id();
            drop(r);
            let store = ::covalent::store::Store::open(&config().store_path()).unwrap();
            let rec = store.get(id).unwrap();
            let big = rec.nodes.iter().find(|n| n.name == "big_output").unwrap();
            let file = big.output_file.as_ref().expect("the output is in a value file");
            assert_eq!(file.bytes, text.len() as u64);
            assert_eq!(::std::fs::read_to_string(&file.path).unwrap(), text);
            assert_eq!(value_files(&id), vec![file.path.clone()]);
            assert_eq!(big.value::<Vec<u32>>().unwrap().unwrap().len(), n as usize);
            assert_nothing_left(&id);
        }
    };
}
