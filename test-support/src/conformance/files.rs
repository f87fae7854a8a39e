//! The file scenarios of the conformance suite: `files = [stage_in, stage_out]` and `File`
//! values travel between the dispatcher and the task, are checked and recorded, and a failed
//! transfer fails its node as a `transfer` error, retried, leaving nothing partial behind.
//!
//! Relative transfer paths resolve against the dispatcher's directory: the test binary's own
//! (its isolated home), entered once.

/// Expands, inside the suite's module, to the file scenarios.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_files {
    () => {
        /// The directory the dispatcher resolves relative paths against (entered once for the
        /// whole test binary; every path below is under it).
        fn files_cwd() -> &'static Path {
            static CWD: ::std::sync::LazyLock<PathBuf> = ::std::sync::LazyLock::new(|| {
                let d = $crate::isolated_dir()
                    .expect("an isolated home")
                    .join("dispatcher-cwd");
                ::std::fs::create_dir_all(d.join("files-in")).unwrap();
                ::std::fs::create_dir_all(d.join("files-out")).unwrap();
                ::std::fs::write(d.join("files-in/table.csv"), "x,y\n1,2\n3,4\n5,6\n").unwrap();
                ::std::env::set_current_dir(&d).unwrap();
                d
            });
            &CWD
        }

        fn part_files(dir: &Path) -> Vec<String> {
            ::std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.contains(".part") || n.contains("covalent-part"))
                        .collect()
                })
                .unwrap_or_default()
        }

        #[electron(
            executor = executor(),
            files = [
                stage_in("files-in/table.csv", "table.csv"),
                stage_out("summary.txt", "files-out/summary.txt"),
            ]
        )]
        fn summarise(data: ::covalent::File) -> Result<(usize, usize, ::covalent::File), String> {
            let here = ::covalent::task_dir();
            let staged = ::std::fs::read_to_string(here.join("table.csv"))
                .map_err(|e| format!("table.csv in {}: {e}", here.display()))?;
            let typed = data.read_to_string().map_err(|e| e.to_string())?;
            ::std::fs::write(here.join("summary.txt"), format!("rows={}\n", staged.lines().count() - 1))
                .map_err(|e| e.to_string())?;
            ::std::fs::write(here.join("report.txt"), typed.to_uppercase()).map_err(|e| e.to_string())?;
            let report = ::covalent::File::output("report.txt").map_err(|e| e.to_string())?;
            Ok((staged.lines().count(), typed.len(), report))
        }

        #[electron(executor = executor())]
        fn read_back(f: ::covalent::File) -> Result<String, String> {
            f.read_to_string().map_err(|e| e.to_string())
        }

        #[lattice]
        fn file_flow(data: ::covalent::File) -> ((usize, usize, ::covalent::File), String) {
            let s = summarise(data);
            let f = s.clone().field::<2>();
            (s, read_back(f))
        }

        #[test]
        fn files_travel_with_tasks_and_are_recorded() {
            if !engine_up("files_travel_with_tasks_and_are_recorded") {
                return;
            }
            let cwd = files_cwd();
            warm();
            ::std::fs::write(cwd.join("files-in/typed.txt"), "typed input\n").unwrap();
            let data = ::covalent::File::new(cwd.join("files-in/typed.txt").to_str().unwrap()).unwrap();
            let r = ::covalent::dispatch_sync(file_flow(data).with_config(config())).unwrap();
            assert_eq!(r.status(), ::covalent::Status::Completed, "{r}");
            let ((rows, typed_len, report), again) = r.value().cloned().unwrap();
            assert_eq!((rows, typed_len), (4, 12), "{r}");
            // The file the task made came back here whole, and the next task read it.
            assert_eq!(again, "TYPED INPUT\n", "{r}");
            let at = report.path().unwrap();
            assert_eq!(::std::fs::read_to_string(&at).unwrap(), "TYPED INPUT\n");
            assert_eq!(
                report.blake3(),
                Some(::covalent::files::hash_file(&at).unwrap().1.as_str())
            );
            assert_eq!(
                ::std::fs::read_to_string(cwd.join("files-out/summary.txt")).unwrap(),
                "rows=3\n"
            );
            assert!(part_files(&cwd.join("files-out")).is_empty());
            let n = node(&r, "summarise");
            let t = n.transfers();
            let has = |dir: &str, what: &str| {
                t.iter().any(|x| {
                    x.direction == dir
                        && (x.source.contains(what) || x.destination.contains(what))
                        && x.error.is_none()
                        && x.blake3.is_some()
                })
            };
            assert!(has("in", "table.csv"), "{t:#?}");
            assert!(has("out", "summary.txt"), "{t:#?}");
            assert!(t.iter().all(|x| x.attempt == 1), "{t:#?}");
        }

        #[electron(executor = executor(), retries = 1, files = [stage_in("files-in/absent.csv", "absent.csv")])]
        fn needs_absent() -> i64 {
            1
        }

        #[electron(executor = executor())]
        fn reads(f: ::covalent::File) -> Result<usize, String> {
            f.read_to_string().map(|s| s.len()).map_err(|e| e.to_string())
        }

        #[electron(executor = executor(), files = [stage_out("never-written.txt", "files-out/never.txt")])]
        fn forgets_its_output() -> i64 {
            1
        }

        #[electron(executor = executor(), files = [stage_out("made.txt", "/proc/covalent-refused/made.txt")])]
        fn refused_destination() -> Result<i64, String> {
            ::std::fs::write(::covalent::task_dir().join("made.txt"), "made").map_err(|e| e.to_string())?;
            Ok(1)
        }

        #[lattice]
        fn bad_files(pinned: ::covalent::File) -> (i64, usize, i64, i64) {
            (needs_absent(), reads(pinned), forgets_its_output(), refused_destination())
        }

        #[test]
        fn a_failed_transfer_fails_its_node_as_a_transfer_and_is_retried() {
            if !engine_up("a_failed_transfer_fails_its_node_as_a_transfer_and_is_retried") {
                return;
            }
            let cwd = files_cwd();
            warm();
            ::std::fs::write(cwd.join("files-in/pinned.txt"), "what it is\n").unwrap();
            let pinned = ::covalent::File::new(cwd.join("files-in/pinned.txt").to_str().unwrap())
                .unwrap()
                .with_blake3(&"0".repeat(64));
            let r = ::covalent::dispatch_sync(bad_files(pinned).with_config(config())).unwrap();
            assert_eq!(r.status(), ::covalent::Status::Failed, "{r}");

            let n = node(&r, "needs_absent");
            let (kind, msg) = kind_and_message(&n);
            assert_eq!(kind, ::covalent::ErrorKind::Transfer, "{msg}");
            assert!(msg.contains("absent.csv") && msg.contains("does not exist"), "{msg}");
            assert_eq!(n.attempts().len(), 2, "retried once: {r}");
            assert!(n.transfers().iter().any(|t| t.error.is_some()), "{:#?}", n.transfers());

            let n = node(&r, "reads");
            let (kind, msg) = kind_and_message(&n);
            assert_eq!(kind, ::covalent::ErrorKind::Transfer, "{msg}");
            assert!(msg.contains("checksum mismatch"), "{msg}");

            let n = node(&r, "forgets_its_output");
            let (kind, msg) = kind_and_message(&n);
            assert_eq!(kind, ::covalent::ErrorKind::Transfer, "{msg}");
            assert!(msg.contains("never-written.txt"), "{msg}");
            assert!(!cwd.join("files-out/never.txt").exists());

            let n = node(&r, "refused_destination");
            let (kind, msg) = kind_and_message(&n);
            assert_eq!(kind, ::covalent::ErrorKind::Transfer, "{msg}");
            assert!(msg.contains("/proc/covalent-refused"), "{msg}");
            assert!(part_files(&cwd.join("files-out")).is_empty());
        }
    };
}
