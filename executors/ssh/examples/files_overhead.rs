//! What staging files to an ssh host costs against `rsync` by hand, interleaved run by run on
//! one connection (the same `ControlMaster` socket and ssh options for both): a 100 MB file
//! (the executor's way: the batch laid out and sent in one rsync run while the sources are
//! hashed, BLAKE3),
//! and 1,000 small files in one batch; then one dispatch whose ssh task takes the 100 MB file
//! and returns a 100 MB file it made (both ways through the dispatcher, checked). Prints
//! medians; no assertions.
//!
//! `cargo run --release -p covalent-ssh --example files_overhead [RUNS]` (needs the server of
//! `scripts/sshd-up.sh`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use covalent::File;
use covalent::executor::ExecutorRef;
use covalent::executor::files::TaskDirAccess;
use covalent::prelude::*;
use covalent_remote::{Input, RemoteTaskDir, Session, SshOptions, shell_quote};
use covalent_ssh::SshExecutor;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn server() -> HashMap<String, String> {
    covalent_test_support::sshd_env().unwrap_or_else(|e| {
        eprintln!("no SSH server ({e}): run `bash scripts/sshd-up.sh` first");
        std::process::exit(2)
    })
}

fn options(s: &HashMap<String, String>) -> SshOptions {
    let mut o = SshOptions::new(&s["COVALENT_SSH_HOST"]);
    o.port = Some(s["COVALENT_SSH_PORT"].parse().unwrap());
    o.username = Some(s["COVALENT_SSH_USER"].clone());
    o.ssh_key_file = Some(s["COVALENT_SSH_KEY"].clone().into());
    o.known_hosts = Some(s["COVALENT_SSH_KNOWN_HOSTS"].clone().into());
    o
}

/// `rsync -rt -e 'ssh <the connection's options>' SRC host:DEST` by hand.
fn rsync_by_hand(session: &Session, src: &str, dest: &str) {
    let e: Vec<String> = std::iter::once("ssh".to_string())
        .chain(
            session
                .transport_args()
                .iter()
                .map(|a| shell_quote(&a.to_string_lossy())),
        )
        .collect();
    let ok = Command::new("rsync")
        .arg("-rt")
        .arg("-e")
        .arg(e.join(" "))
        .arg(src)
        .arg(format!("{}:{dest}", session.host()))
        .status()
        .unwrap()
        .success();
    assert!(ok, "rsync by hand failed");
}

#[electron(executor = &*EXEC)]
fn double_size(data: File) -> Result<File, String> {
    let mut bytes =
        std::fs::read(data.path().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    bytes.reverse();
    std::fs::write("reversed.bin", &bytes).map_err(|e| e.to_string())?;
    File::output("reversed.bin").map_err(|e| e.to_string())
}

#[lattice]
fn roundtrip(data: File) -> File {
    double_size(data)
}

static EXEC: std::sync::LazyLock<ExecutorRef> = std::sync::LazyLock::new(|| {
    let s = server();
    ExecutorRef::new(
        SshExecutor::new(&s["COVALENT_SSH_HOST"])
            .with_port(s["COVALENT_SSH_PORT"].parse().unwrap())
            .with_username(&s["COVALENT_SSH_USER"])
            .with_key_file(&s["COVALENT_SSH_KEY"])
            .with_known_hosts(&s["COVALENT_SSH_KNOWN_HOSTS"]),
    )
});

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let s = server();
    let home = tempfile::tempdir().unwrap();
    // SAFETY: before any thread of ours starts.
    unsafe {
        std::env::set_var("XDG_DATA_HOME", home.path().join("data"));
        std::env::set_var("XDG_CONFIG_HOME", home.path().join("config"));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let session = Session::new(&options(&s)).unwrap();
    let t = Duration::from_secs(120);
    rt.block_on(session.run("true", Input::None, t)).unwrap();

    let dir = home.path().join("src");
    std::fs::create_dir_all(dir.join("small")).unwrap();
    let big = dir.join("big.bin");
    let mut data = vec![0u8; 100_000_000];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&big, &data).unwrap();
    drop(data);
    let small: Vec<(PathBuf, String)> = (0..1000)
        .map(|i| {
            let p = dir.join(format!("small/f{i:04}.txt"));
            std::fs::write(&p, format!("{i}\n").repeat(100)).unwrap();
            (p, format!("small/f{i:04}.txt"))
        })
        .collect();

    let remote_root = "covalent-files-bench";
    let clean = |d: &str| {
        rt.block_on(session.run(&format!("rm -rf {}", shell_quote(d)), Input::None, t))
            .unwrap();
    };
    // As `covalent::executor::files::send` does it: the sources hashed while the batch goes.
    let put = |target: &str, list: &[(PathBuf, String)], hash: bool| {
        let access = RemoteTaskDir {
            session: &session,
            dir: target.to_string(),
            timeout: t,
        };
        std::thread::scope(|sc| {
            let hashing = hash.then(|| {
                sc.spawn(|| {
                    for (p, _) in list {
                        covalent::files::hash_file(p).unwrap();
                    }
                })
            });
            rt.block_on(access.put(list)).unwrap();
            if let Some(h) = hashing {
                h.join().unwrap();
            }
        });
    };

    let (mut ours, mut ours_hashed, mut hand) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours_small, mut hand_small) = (Vec::new(), Vec::new());
    let big_list = vec![(big.clone(), "big.bin".to_string())];
    for run in 0..=runs {
        let d = format!("{remote_root}/r{run}");
        let t0 = Instant::now();
        put(&format!("{d}/a"), &big_list, false);
        let a = t0.elapsed();
        let t0 = Instant::now();
        put(&format!("{d}/b"), &big_list, true);
        let b = t0.elapsed();
        let t0 = Instant::now();
        rt.block_on(session.run(&format!("mkdir -p {d}/c"), Input::None, t))
            .unwrap();
        rsync_by_hand(&session, big.to_str().unwrap(), &format!("{d}/c/"));
        let c = t0.elapsed();
        let t0 = Instant::now();
        put(&format!("{d}/s"), &small, true);
        let sm = t0.elapsed();
        let t0 = Instant::now();
        rt.block_on(session.run(&format!("mkdir -p {d}/h"), Input::None, t))
            .unwrap();
        rsync_by_hand(
            &session,
            &format!("{}/small", dir.display()),
            &format!("{d}/h/"),
        );
        let hs = t0.elapsed();
        clean(&d);
        if run > 0 {
            // The first round warms caches on both sides.
            ours.push(a);
            ours_hashed.push(b);
            hand.push(c);
            ours_small.push(sm);
            hand_small.push(hs);
        }
    }
    clean(remote_root);
    let (a, b, c) = (median(ours), median(ours_hashed), median(hand));
    let mbps = |d: Duration| 100.0 / d.as_secs_f64();
    println!("100 MB to the ssh host over rsync on loopback, median of {runs} interleaved runs:");
    println!(
        "  rsync by hand (same connection and options)   {:>10}  {:>6.0} MB/s",
        ms(c),
        mbps(c)
    );
    println!(
        "  covalent staging (RemoteTaskDir::put)         {:>10}  {:>6.0} MB/s  ({:.2}x)",
        ms(a),
        mbps(a),
        a.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "  covalent staging with the source's BLAKE3     {:>10}  {:>6.0} MB/s  ({:.2}x)",
        ms(b),
        mbps(b),
        b.as_secs_f64() / c.as_secs_f64()
    );
    let (sm, hs) = (median(ours_small), median(hand_small));
    println!("1,000 files of 200-400 bytes in one batch:");
    println!(
        "  rsync -r by hand of their directory           {:>10}",
        ms(hs)
    );
    println!(
        "  covalent staging (hashed, laid out, one rsync) {:>9}  ({:.2}x)",
        ms(sm),
        sm.as_secs_f64() / hs.as_secs_f64()
    );

    // A whole dispatch: the 100 MB file staged in, a 100 MB file brought back, both checked.
    let input = File::new(big.to_str().unwrap()).unwrap();
    let t0 = Instant::now();
    let r = covalent::dispatch_sync(roundtrip(input)).unwrap();
    let total = t0.elapsed();
    assert_eq!(r.status(), Status::Completed, "{r}");
    println!(
        "one ssh task taking and returning 100 MB (dispatch to result): {}",
        ms(total)
    );
    for n in r.nodes() {
        for x in n.transfers() {
            println!("  {}", x.line());
        }
    }
}
