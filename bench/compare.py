#!/usr/bin/env python3
"""Side-by-side benchmark: this project against Dask, Prefect and Covalent, in one run.

    python3 bench/compare.py            # everything (about an hour on 2 cores)
    python3 bench/compare.py --quick    # small workloads, few repetitions (a few minutes)

What it does, in order:
  1. creates one virtual environment per peer under bench/.venv-<peer> (git-ignored) and
     installs bench/peers/requirements-<peer>.txt into it (the pinned versions that are known to
     work); if the pinned set cannot be installed it falls back to the few top-level pins the
     engine needs (and says so);
  2. builds and runs our side (`cargo run --release -p covalent-bench --bin workloads`),
     recording off and on, W1-W5 and the scaling runs;
  3. runs each peer configuration in its own process (bench/peers/*_peer.py), starting the
     servers a configuration needs (`covalent start`) and always stopping them, also on failure
     or Ctrl-C; a run that passes the per-run cap is cut (its process, and the server, are
     stopped) and reported as "cut at Xs", and the remaining workloads go on in a fresh process;
  4. prints one table (workload x engine/config: median seconds, per-task time, ratio to ours
     with recording off) and writes everything under bench/results/: compare.json (every run),
     compare.md (the tables and the targets), scaling.md and scaling.svg (per-task time and
     memory per node from 1k to 1M nodes), machine.md.

Only the Python standard library is used here; the peers' packages live in their venvs.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
sys.path.insert(0, str(PEERS))
import common  # noqa: E402  (the workload table and expected values, shared with the peers)

HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

FULL = ["W1", "W2-100", "W2-10000", "W3-100", "W3-1000", "W3-100000", "W4", "W5"]
SMALL = ["W1", "W2-100", "W3-100", "W4", "W5"]

# Timed repetitions at most per workload (a workload also stops starting new runs once its
# time budget is spent, after at least one timed run).
REPS = {
    "dask": {"W1": 50, "W2-100": 20, "W2-10000": 5, "W3-100": 20, "W3-1000": 10,
             "W3-100000": 3, "W4": 5, "W5": 20},
    "prefect": {"W1": 20, "W2-100": 10, "W2-10000": 3, "W3-100": 10, "W3-1000": 3,
                "W3-100000": 1, "W4": 5, "W5": 10},
    "covalent": {"W1": 10, "W2-100": 5, "W2-10000": 1, "W3-100": 5, "W3-1000": 1,
                 "W3-100000": 1, "W4": 3, "W5": 5},
}
# Workloads run without the discarded warm-up run: the largest sizes (the same shape already
# ran at a smaller size in the same process), and W3-1000 where one run takes minutes.
COLD = {
    "dask": {"W2-10000", "W3-100000"},
    "prefect": {"W2-10000", "W3-1000", "W3-100000"},
    "covalent": {"W2-10000", "W3-1000", "W3-100000"},
}

# (engine, config, workloads: None = all selected, what it is)
CONFIGS = [
    ("dask", "threads", None, "x.compute(scheduler='threads'), default pool: one thread per core"),
    ("dask", "threads8", ["W4"], "the same with num_workers=8 (8 slots for W4)"),
    ("dask", "threads-graph", None,
     "the same scheduler (dask.threaded.get) on a dict task graph, without dask.delayed"),
    ("dask", "dist", None,
     "distributed LocalCluster on 127.0.0.1, 2 worker processes x 1 thread"),
    ("dask", "dist-t4", ["W4"], "the same with 4 threads per worker (8 slots for W4)"),
    ("prefect", "default", None,
     "@flow submitting @tasks to the default thread-pool runner; ephemeral local API (SQLite)"),
    ("prefect", "no-heartbeat", ["W1", "W2-100", "W3-100", "W3-1000", "W4", "W5"],
     "the same without the flow heartbeat thread (~1 s join per flow call)"),
    ("covalent", "dask", None,
     "`covalent start` (defaults): its own Dask LocalCluster, default executor 'dask'"),
    ("covalent", "local", None,
     "`covalent start --no-cluster`: default executor 'local' (process pool in the server)"),
]

FALLBACK = {
    "dask": ["dask[distributed]"],
    "prefect": ["prefect==3.8.8", "fastapi<=0.154.0"],
    "covalent": ["covalent==0.240.0", "fastapi<0.110"],
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes and /proc


def proc_table():
    """pid -> (ppid, cpu ticks, rss bytes) for every process we can read."""
    out = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        # fields after the name: state ppid ... utime(12) stime(13) ... rss(22)
        out[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[21]) * page)
    return out


def descendants(table, roots):
    roots = {r for r in roots if r in table}
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen, stack = set(), list(roots)
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        stack.extend(children.get(p, []))
    return seen


def busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


class Meter:
    """Samples the CPU used by the machine and by our process trees (roots: the driver and
    any server), and the peak summed RSS of the trees below `rss_roots`."""

    def __init__(self, roots, rss_roots):
        self.roots, self.rss_roots = set(roots), set(rss_roots)
        self.t0, self.busy0 = time.monotonic(), busy_ticks()
        self.ours, self.peak_rss = 0, 0
        table = proc_table()
        # Processes already running count from now; later ones from their start.
        self.last = {p: table[p][1] for p in descendants(table, self.roots)}
        self.sample()

    def sample(self):
        table = proc_table()
        for pid in descendants(table, self.roots):
            ticks = table[pid][1]
            self.ours += ticks - self.last.get(pid, 0)
            self.last[pid] = ticks
        rss = sum(table[p][2] for p in descendants(table, self.rss_roots))
        self.peak_rss = max(self.peak_rss, rss)

    def result(self):
        self.sample()
        wall = time.monotonic() - self.t0
        total = busy_ticks() - self.busy0
        cap = wall * HZ * NCPU
        return {
            "machine_cpu_frac": round(total / cap, 3) if cap else None,
            "foreign_cpu_frac": round(max(0, total - self.ours) / cap, 3) if cap else None,
            "peak_rss_bytes": self.peak_rss,
        }


def wait_quiet(limit_s, threshold=0.25):
    """Waits up to `limit_s` for the machine's CPU use (over 2 s) to fall below `threshold`."""
    start = time.monotonic()
    while True:
        b0, t0 = busy_ticks(), time.monotonic()
        time.sleep(2)
        frac = (busy_ticks() - b0) / ((time.monotonic() - t0) * HZ * NCPU)
        waited = time.monotonic() - start
        if frac < threshold or waited >= limit_s:
            return {"cpu_frac": round(frac, 3), "waited_s": round(waited, 1),
                    "quiet": frac < threshold}


def kill_tree(pids, sig=signal.SIGTERM):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listeners(pids):
    """Listening TCP sockets of `pids`, from `ss` (empty if unavailable)."""
    try:
        out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.splitlines():
        found = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if found & pids:
            rows.append(line.split()[3])
    return sorted(set(rows))


# ---------------------------------------------------------------- venvs


def venv(engine, work):
    """The engine's venv, created and installed if missing or its requirements changed."""
    path = BENCH / f".venv-{engine}"
    req = PEERS / f"requirements-{engine}.txt"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    marker = path / ".bench-installed"
    py = path / "bin" / "python"
    if marker.exists() and marker.read_text().split()[0] == digest and py.exists():
        return path, marker.read_text().split(maxsplit=1)[1].strip()
    log(f"creating {path.relative_to(ROOT)} and installing {req.relative_to(ROOT)}")
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    logf = work / f"pip-{engine}.log"
    with open(logf, "w") as out:
        r = subprocess.run([str(py), "-m", "pip", "install", "-r", str(req)], stdout=out,
                           stderr=subprocess.STDOUT)
        how = "pinned"
        if r.returncode != 0:
            log(f"pinned install of {engine} failed (see {logf}); falling back to "
                f"{' '.join(FALLBACK[engine])}")
            r = subprocess.run([str(py), "-m", "pip", "install", *FALLBACK[engine]], stdout=out,
                               stderr=subprocess.STDOUT)
            how = "fallback: " + " ".join(FALLBACK[engine])
    if r.returncode != 0:
        raise SystemExit(f"could not install {engine}; see {logf}")
    marker.write_text(f"{digest} {how}\n")
    return path, how


def versions(py, names):
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
    r = subprocess.run([str(py), "-c", code, *names], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else {}


# ---------------------------------------------------------------- Covalent server


class CovalentServer:
    """`covalent start` in an isolated home, on a free loopback port; `stop` always cleans up
    every process of the server's tree, even if `covalent stop` fails."""

    def __init__(self, venv_path, work, no_cluster):
        self.bin = venv_path / "bin" / "covalent"
        self.home = work / "covalent-home"
        self.no_cluster = no_cluster
        self.port = free_port()
        self.pids = set()
        site = work / "covalent-site"
        site.mkdir(parents=True, exist_ok=True)
        # Only the server's processes load this: its Dask cluster gets no dashboard (distributed
        # would bind it on every interface; bokeh is not installed, so it shows nothing anyway).
        (site / "sitecustomize.py").write_text(
            "def _patch():\n"
            "    import functools\n"
            "    try:\n"
            "        from distributed.deploy import local\n"
            "    except Exception:\n"
            "        return\n"
            "    init = local.LocalCluster.__init__\n"
            "    @functools.wraps(init)\n"
            "    def patched(self, *a, **k):\n"
            "        k.setdefault('dashboard_address', None)\n"
            "        init(self, *a, **k)\n"
            "    local.LocalCluster.__init__ = patched\n"
            "_patch()\n")
        self.site = site

    def env(self, server):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "COVALENT_"))}
        env.update(HOME=str(self.home), COVALENT_SVC_PORT=str(self.port), DO_NOT_TRACK="1")
        if server:
            env["PYTHONPATH"] = str(self.site)
        return env

    def pidfile(self):
        return self.home / ".cache" / "covalent" / "ui.pid"

    def start(self, log_path):
        self.home.mkdir(parents=True, exist_ok=True)
        args = [str(self.bin), "start", "--port", str(self.port)]
        if self.no_cluster:
            args.append("--no-cluster")
        t0 = time.monotonic()
        with open(log_path, "a") as out:
            subprocess.run(args, env=self.env(True), stdout=out, stderr=subprocess.STDOUT,
                           timeout=300, check=True)
        took = time.monotonic() - t0
        self.track()
        # Its Dask cluster's workers appear a moment after the server answers.
        time.sleep(2)
        self.track()
        return took

    def track(self):
        try:
            root = int(self.pidfile().read_text().strip())
        except (OSError, ValueError):
            return
        self.pids |= descendants(proc_table(), {root})

    def stop(self, log_path):
        self.track()
        try:
            with open(log_path, "a") as out:
                # `covalent stop` waits, without a time limit, for the server's launcher shell
                # to disappear; where orphans are not reaped promptly it never does, so the
                # server's processes are killed below after a short wait.
                subprocess.run([str(self.bin), "stop"], env=self.env(False), stdout=out,
                               stderr=subprocess.STDOUT, timeout=20)
        except (OSError, subprocess.SubprocessError) as e:
            log(f"covalent stop: {e}")
        alive = {p for p in self.pids if Path(f"/proc/{p}").exists()}
        if alive:
            kill_tree(alive)
            time.sleep(2)
            kill_tree({p for p in alive if Path(f"/proc/{p}").exists()}, signal.SIGKILL)
        self.pids = set()


# ---------------------------------------------------------------- running a peer


def run_peer(engine, config, workloads, venv_path, work, args):
    """Runs one configuration; returns {workload: result dict} and notes."""
    results = {}
    logdir = work / "logs"
    logdir.mkdir(exist_ok=True)
    tag = f"{engine}-{config}"
    server = None
    notes = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(DO_NOT_TRACK="1", PYTHONUNBUFFERED="1")
    if engine == "prefect":
        env.update(PREFECT_HOME=str(work / f"prefect-home-{config}"),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false")
    if engine == "covalent":
        server = CovalentServer(venv_path, work, no_cluster=(config == "local"))
        env = server.env(False)
        env["PYTHONUNBUFFERED"] = "1"

    reps = REPS[engine] if not args.quick else {w: 3 for w in FULL}
    cold = COLD[engine]
    todo = list(workloads)
    proc = None
    try:
        while todo:
            if server and not server.pids:
                took = server.start(logdir / f"{tag}-server.log")
                notes.setdefault("server_start_s", []).append(round(took, 1))
                notes["listening"] = listeners(server.pids)
                log(f"{tag}: covalent server up on 127.0.0.1:{server.port} in {took:.1f} s, "
                    f"listening {notes['listening']}")
            cmd = [str(venv_path / "bin" / "python"), str(PEERS / f"{engine}_peer.py"),
                   "--config", config, "--workloads", ",".join(todo),
                   "--reps", ",".join(f"{w}={reps[w]}" for w in todo),
                   "--no-warmup", ",".join(w for w in todo if w in cold),
                   "--budget", str(args.budget)]
            with open(logdir / f"{tag}.stderr.log", "a") as err:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env,
                                        cwd=work, start_new_session=True)
            cut = pump(proc, tag, results, server, args.cap, logdir / f"{tag}.events.log")
            if cut is None:
                break
            # Stop everything the cut run left behind, then go on with the workloads after it.
            kill_tree(descendants(proc_table(), {proc.pid}) | {proc.pid}, signal.SIGKILL)
            proc.wait()
            if server:
                server.stop(logdir / f"{tag}-server.log")
            todo = todo[todo.index(cut) + 1:]
    finally:
        if proc is not None and proc.poll() is None:
            kill_tree(descendants(proc_table(), {proc.pid}) | {proc.pid}, signal.SIGKILL)
            proc.wait()
        if server:
            server.stop(logdir / f"{tag}-server.log")
    return results, notes


def pump(proc, tag, results, server, cap, events_log):
    """Reads the peer's events until it exits (returns None) or a run passes `cap` seconds
    (returns the workload that was cut)."""
    buf = b""
    current = None  # (workload, kind, begin monotonic)
    meter = None
    fd = proc.stdout.fileno()

    def rss_roots():
        return {proc.pid} | (server.pids if server else set())

    with open(events_log, "a") as evlog:
        while True:
            r, _, _ = select.select([fd], [], [], 0.25)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    proc.wait()
                    if current:
                        w = current[0]
                        res = results.setdefault(w, new_result())
                        res["error"] = res["error"] or f"process exited ({proc.returncode})"
                    return None
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    evlog.write(line.decode(errors="replace") + "\n")
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    w = ev.get("workload")
                    if ev["event"] == "begin":
                        if meter is None:  # the workload's first run
                            meter = Meter({os.getpid()} | rss_roots(), rss_roots())
                            results.setdefault(w, new_result())
                        current = (w, ev["kind"], time.monotonic())
                    elif ev["event"] == "end":
                        res = results[w]
                        res["runs"].append({k: ev[k] for k in ("kind", "seconds", "ok")})
                        res["client_maxrss_kb"] = ev.get("client_maxrss_kb")
                        current = None
                        if ev["kind"] == "timed":
                            log(f"{tag} {w}: {ev['seconds']:.4f} s")
                    elif ev["event"] in ("done", "error"):
                        res = results.setdefault(w, new_result())
                        if ev["event"] == "error":
                            res["error"] = ev["message"]
                            log(f"{tag} {w}: ERROR {ev['message']}")
                        if meter:
                            res["machine"] = meter.result()
                        meter = None
                        current = None
            if meter:
                meter.sample()
            if current and time.monotonic() - current[2] > cap:
                w = current[0]
                res = results[w]
                res["cut_at_s"] = cap
                res["cut_kind"] = current[1]
                if meter:
                    res["machine"] = meter.result()
                log(f"{tag} {w}: cut at {cap:.0f} s ({current[1]} run)")
                return w


def new_result():
    return {"runs": [], "error": None, "cut_at_s": None}


# ---------------------------------------------------------------- our side


def run_ours(work, args):
    cmd = ["cargo", "run", "--release", "-q", "-p", "covalent-bench", "--bin", "workloads", "--"]
    out = work / "ours.json"
    cmd += ["--json", str(out)]
    if args.quick:
        cmd.append("--quick")
    log("building and running our side: " + " ".join(cmd[:9]))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "covalent-bench", "--bin",
                    "workloads"], cwd=ROOT, check=True)
    meter = Meter({os.getpid()}, set())
    with open(work / "logs" / "ours.stderr.log", "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            err.write(line)
            sys.stderr.write("  " + line)
            meter.sample()
        if proc.wait() != 0:
            raise SystemExit("our benchmark failed")
    doc = json.loads(out.read_text())
    doc["machine"] = meter.result()
    # Large values and large graphs in the store: written, then read back as the commands do.
    scale = work / "store_scale.json"
    scmd = ["cargo", "run", "--release", "-q", "-p", "covalent-bench", "--bin", "store_scale",
            "--", "--json", str(scale)] + (["--quick"] if args.quick else [])
    log("the store at scale: " + " ".join(scmd[:9]))
    with open(work / "logs" / "store_scale.stderr.log", "w") as err:
        if subprocess.run(scmd, cwd=ROOT, stderr=err).returncode != 0:
            raise SystemExit("the store_scale benchmark failed")
    doc["store_scale"] = json.loads(scale.read_text())["rows"]
    doc["commit"] = git("rev-parse", "--short", "HEAD")
    doc["engine_sources_modified"] = bool(git("status", "--porcelain", "--", "runtime", "macros"))
    return doc


def git(*a):
    try:
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- report


def summarize(res, tasks):
    timed = [r["seconds"] for r in res["runs"] if r["kind"] == "timed" and r["ok"]]
    s = {"reps": len(timed), "median_s": None, "per_task_s": None, "cut_at_s": res["cut_at_s"],
         "error": res["error"], "warmup": any(r["kind"] == "warmup" for r in res["runs"])}
    if timed:
        med = statistics.median(timed)
        s.update(median_s=med, min_s=min(timed), max_s=max(timed), per_task_s=med / tasks)
    s["machine"] = res.get("machine")
    s["client_maxrss_kb"] = res.get("client_maxrss_kb")
    return s


def fmt_s(x):
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.3g} ms"
    return f"{x * 1e6:.3g} µs"


def fmt_ratio(x, lower=False):
    if x is None:
        return "—"
    p = "> " if lower else ""
    if x >= 100:
        return f"{p}{x:,.0f}×"
    return f"{p}{x:.3g}×"


def build_report(ours, peers, args):
    """Returns (rows, markdown) for the comparison."""
    ours_rows = {(r["workload"], r["size"], r["record"]): r for r in ours["rows"]}
    rows = []
    workloads = SMALL if args.quick else FULL
    for w in workloads:
        family, n, tasks = common.WORKLOADS[w]
        # The headline is recording on, as users run it (the default); recording off beside it.
        rec_row = ours_rows.get((family, n, True))
        off_row = ours_rows.get((family, n, False))
        base = rec_row or off_row
        base_s = base["median_s"] if base else None
        off_s = off_row["median_s"] if off_row else None
        for rec in (True, False):
            r = ours_rows.get((family, n, rec))
            if r:
                rows.append({"workload": w, "engine": "covalent-rs",
                             "config": "recording " + ("on" if rec else "off"), "tasks": tasks,
                             "reps": r["reps"], "median_s": r["median_s"],
                             "per_task_s": r["median_s"] / tasks,
                             "ratio": r["median_s"] / base_s if base_s else None,
                             "ratio_off": r["median_s"] / off_s if off_s else None,
                             "cut_at_s": None, "error": None,
                             "peak_rss_bytes": r["process_peak_rss_bytes"],
                             "foreign_cpu_frac": (ours.get("machine") or {}).get(
                                 "foreign_cpu_frac")})
        order = [(e, c) for e, c, _, _ in CONFIGS]
        for (engine, config), res in sorted(peers.items(), key=lambda kv: order.index(kv[0])):
            if w not in res:
                continue
            s = summarize(res[w], tasks)
            ratio, lower, ratio_off = None, False, None
            if base_s and s["median_s"] is not None:
                ratio = s["median_s"] / base_s
                ratio_off = s["median_s"] / off_s if off_s else None
            elif base_s and s["cut_at_s"]:
                ratio, lower = s["cut_at_s"] / base_s, True
                ratio_off = s["cut_at_s"] / off_s if off_s else None
            rows.append({"workload": w, "engine": engine, "config": config, "tasks": tasks,
                         "reps": s["reps"], "median_s": s["median_s"],
                         "per_task_s": s["per_task_s"], "min_s": s.get("min_s"),
                         "max_s": s.get("max_s"), "ratio": ratio, "ratio_off": ratio_off,
                         "ratio_is_lower_bound": lower,
                         "cut_at_s": s["cut_at_s"], "error": s["error"],
                         "warmup": s["warmup"],
                         "peak_rss_bytes": (s["machine"] or {}).get("peak_rss_bytes"),
                         "foreign_cpu_frac": (s["machine"] or {}).get("foreign_cpu_frac")})
    md = ["| workload | engine / config | median | per task | × ours (recorded) | "
          "× ours (rec. off) | reps | peak RSS | foreign CPU |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["cut_at_s"] and r["median_s"] is None:
            med, per = f"**cut at {r['cut_at_s']:.0f} s**", f"> {fmt_s(r['cut_at_s'] / r['tasks'])}"
        elif r["error"] and r["median_s"] is None:
            med, per = "failed: " + r["error"][:60].replace("|", "/"), "—"
        else:
            med, per = fmt_s(r["median_s"]), fmt_s(r["per_task_s"])
            if r["cut_at_s"]:
                med += f" (a later run cut at {r['cut_at_s']:.0f} s)"
        rss = f"{r['peak_rss_bytes'] / 2**20:.0f} MB" if r.get("peak_rss_bytes") else "—"
        fc = r.get("foreign_cpu_frac")
        md.append(f"| {r['workload']} | {r['engine']}/{r['config']} | {med} | {per} | "
                  f"{fmt_ratio(r['ratio'], r.get('ratio_is_lower_bound'))} | "
                  f"{fmt_ratio(r.get('ratio_off'), r.get('ratio_is_lower_bound'))} | {r['reps']} | "
                  f"{rss} | {'—' if fc is None else f'{fc:.2f}'} |")
    return rows, "\n".join(md)


def scaling(ours):
    rows = [r for r in ours["rows"] if r["workload"].startswith("scale-")]
    md = ["| shape | N | recording | tasks | graph nodes | median | per task | bytes / node "
          "| bytes / task | reps |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["workload"], r["record"], r["size"])):
        md.append(f"| {r['workload'][6:]} | {r['size']:,} | {'on' if r['record'] else 'off'} | "
                  f"{r['tasks']:,} | {r['nodes']:,} | {fmt_s(r['median_s'])} | "
                  f"{r['per_task_us']:.3f} µs | {r['bytes_per_node']:.0f} | "
                  f"{r['bytes_per_task']:.0f} | {r['reps']} |")
    return rows, "\n".join(md)


def svg_plot(rows):
    """Two panels: per-task time and heap bytes per graph node against N (log scale)."""
    import math

    W, H, M = 460, 320, dict(l=64, r=16, t=36, b=48)
    series = []
    colors = {"fan-out": "#1f77b4", "chain": "#d62728"}
    for shape in ("fan-out", "chain"):
        for rec in (False, True):
            pts = sorted((r["size"], r) for r in rows
                         if r["workload"] == f"scale-{shape}" and r["record"] == rec)
            if pts:
                series.append((shape, rec, [p[1] for p in pts]))
    if not series:
        return None
    sizes = sorted({r["size"] for r in rows})
    xmin, xmax = math.log10(min(sizes)), math.log10(max(sizes))
    if xmax == xmin:
        xmax += 1

    def panel(ox, title, key, unit, target, target_label, log_y):
        vals = [r[key] for _, _, rs in series for r in rs] + [target]
        pw, ph = W - M["l"] - M["r"], H - M["t"] - M["b"]
        if log_y:  # decades and their 2s and 5s
            lo = 10 ** math.floor(math.log10(min(vals)))
            hi = 10 ** math.ceil(math.log10(max(vals)))
            ticks = [m * 10 ** e for e in range(round(math.log10(lo)), round(math.log10(hi)) + 1)
                     for m in (1, 2, 5) if lo <= m * 10 ** e <= hi]

            def Y(v):
                f = (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
                return M["t"] + ph - f * ph
        else:  # 0 to a round maximum in steps of 1, 2 or 5 times a power of ten
            raw = max(vals) * 1.1 / 5
            step = min(m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)
                       if m * 10 ** math.floor(math.log10(raw)) >= raw)
            ticks = [step * i for i in range(int(max(vals) * 1.1 / step) + 2)]
            ymax = ticks[-1]

            def Y(v):
                return M["t"] + ph - v / ymax * ph

        def X(n):
            return ox + M["l"] + (math.log10(n) - xmin) / (xmax - xmin) * pw

        out = [f'<text x="{ox + W / 2}" y="20" text-anchor="middle" font-size="14" '
               f'font-weight="bold">{title}</text>',
               f'<rect x="{ox + M["l"]}" y="{M["t"]}" width="{pw}" height="{ph}" fill="none" '
               f'stroke="#888"/>']
        for v in ticks:
            out.append(f'<line x1="{ox + M["l"]}" x2="{ox + M["l"] + pw}" y1="{Y(v):.1f}" '
                       f'y2="{Y(v):.1f}" stroke="#eee"/>')
            out.append(f'<text x="{ox + M["l"] - 6}" y="{Y(v) + 4:.1f}" text-anchor="end" '
                       f'font-size="11">{v:g}</text>')
        for n in sizes:
            label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
            out.append(f'<text x="{X(n):.1f}" y="{M["t"] + ph + 16}" text-anchor="middle" '
                       f'font-size="11">{label}</text>')
        out.append(f'<text x="{ox + M["l"] + pw / 2}" y="{H - 10}" text-anchor="middle" '
                   f'font-size="12">N (log scale)</text>')
        out.append(f'<text x="{ox + 14}" y="{M["t"] + ph / 2}" text-anchor="middle" '
                   f'font-size="12" transform="rotate(-90 {ox + 14} {M["t"] + ph / 2})">'
                   f'{unit}</text>')
        out.append(f'<line x1="{ox + M["l"]}" x2="{ox + M["l"] + pw}" y1="{Y(target):.1f}" '
                   f'y2="{Y(target):.1f}" stroke="#2ca02c" stroke-dasharray="2,3"/>')
        out.append(f'<text x="{ox + M["l"] + pw - 4}" y="{Y(target) - 4:.1f}" '
                   f'text-anchor="end" font-size="11" fill="#2ca02c">{target_label}</text>')
        for shape, rec, rs in series:
            pts = " ".join(f"{X(r['size']):.1f},{Y(r[key]):.1f}" for r in rs)
            dash = ' stroke-dasharray="6,4"' if rec else ""
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colors[shape]}" '
                       f'stroke-width="2"{dash}/>')
            for r in rs:
                out.append(f'<circle cx="{X(r["size"]):.1f}" cy="{Y(r[key]):.1f}" r="3" '
                           f'fill="{colors[shape]}"/>')
        return out

    body = panel(0, "time per task (log scale)", "per_task_us", "µs per task", 1.0,
                 "target ≤ 1 µs (recording off)", True)
    body += panel(W, "heap per graph node", "bytes_per_node", "bytes per node", 500,
                  "target ≤ 500 B", False)
    ly = H + 8
    legend = []
    for i, (shape, rec, _) in enumerate(series):
        x = 70 + i * 210
        dash = ' stroke-dasharray="6,4"' if rec else ""
        legend.append(f'<line x1="{x}" x2="{x + 30}" y1="{ly}" y2="{ly}" '
                      f'stroke="{colors[shape]}" stroke-width="2"{dash}/>')
        legend.append(f'<text x="{x + 36}" y="{ly + 4}" font-size="12">{shape}, recording '
                      f'{"on" if rec else "off"}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 24}" '
            f'font-family="sans-serif" viewBox="0 0 {2 * W} {H + 24}">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(body + legend) + "\n</svg>\n")


def targets(ours, rows):
    """The issue's targets, each with the measured figure and whether it is met."""
    by = {(r["workload"], r["size"], r["record"]): r for r in ours["rows"]}
    out = []

    def add(name, value, ok, detail=""):
        out.append({"target": name, "measured": value, "met": ok, "detail": detail})

    for shape in ("fan-out", "chain"):
        r = by.get((f"scale-{shape}", 100_000, False))
        if r:
            add(f"≤ 1 µs per task at 100k nodes, {shape}, recording off",
                f"{r['per_task_us']:.3f} µs", r["per_task_us"] <= 1.0)
        a = by.get((f"scale-{shape}", 1_000, False))
        b = by.get((f"scale-{shape}", 1_000_000, False))
        if a and b:
            g = b["per_task_us"] / a["per_task_us"]
            add(f"per-task time grows ≤ 1.5× from 1k to 1M, {shape}",
                f"{g:.2f}× ({a['per_task_us']:.3f} → {b['per_task_us']:.3f} µs)", g <= 1.5)
        sc = [r for (w, _, rec), r in by.items() if w == f"scale-{shape}" and not rec]
        if sc:
            worst = max(sc, key=lambda r: r["bytes_per_node"])
            add(f"≤ 500 bytes per node, {shape} (worst size)",
                f"{worst['bytes_per_node']:.0f} B at N = {worst['size']:,}",
                worst["bytes_per_node"] <= 500)
    r = by.get(("W1", 2, False))
    if r:
        add("W1 ≤ 100 µs in process", fmt_s(r["median_s"]), r["median_s"] <= 100e-6)
    r = by.get(("W1", 2, True))
    if r:
        add("W1 recorded ≤ 30 µs", fmt_s(r["median_s"]), r["median_s"] <= 30e-6)
    seq = next((r for r in ours["rows"] if r["workload"] == "W1-seq"), None)
    floor = next((r for r in ours["rows"] if r["workload"] == "commit-floor"), None)
    if seq and seq.get("mean_s") is not None:
        add(f"{seq['size']:,} sequential recorded dispatches ≤ 50 µs each",
            fmt_s(seq["mean_s"]) + " mean", seq["mean_s"] <= 50e-6,
            f"interleaved with a bare SQLite commit of the same row: {fmt_s(floor['median_s'])} "
            f"median (ours {fmt_s(seq['median_s'])})" if floor else "")
    for engine, config, need in [("dask", "threads", 60), ("dask", "threads-graph", 10)]:
        r = next((r for r in rows if r["workload"] == "W1" and r["engine"] == engine
                  and r["config"] == config), None)
        if r and r["ratio"] is not None:
            add(f"W1 recorded ≥ {need}× faster than {engine}/{config}",
                fmt_ratio(r["ratio"], r.get("ratio_is_lower_bound")), r["ratio"] >= need)
    r = by.get(("W4", 8, False))
    if r:
        add("W4 ≤ 0.55 s on the default executor", fmt_s(r["median_s"]), r["median_s"] <= 0.55)
    # W4 (eight 0.5 s sleeps) is bound by the sleeps, not by the engine: no per-task target.
    for w in ["W1", "W2-100", "W2-10000", "W3-100", "W3-1000", "W3-100000", "W5"]:
        for engine, config, need in [("dask", "threads", 100), ("dask", "threads-graph", 100),
                                     ("covalent", "dask", 10_000),
                                     ("covalent", "local", 10_000)]:
            r = next((r for r in rows if r["workload"] == w and r["engine"] == engine
                      and r["config"] == config), None)
            if not r or r["ratio"] is None:
                continue
            lower = r.get("ratio_is_lower_bound")
            ok = r["ratio"] >= need
            if lower and not ok:
                ok = None  # the peer was cut before the bound could reach the target
            add(f"{w}: ≥ {need:,}× faster per task than {engine}/{config} (ours recorded)",
                fmt_ratio(r["ratio"], lower), ok,
                "lower bound: the peer's run was cut" if lower else "")
    ss = {(r["case"], r["size"], r["record"]): r for r in ours.get("store_scale", [])}
    big_on, big_off = ss.get(("value", 100_000_000, True)), ss.get(("value", 100_000_000, False))
    if big_on and big_off:
        add("100 MB output: peak RSS ≤ 3× the value", f"{big_on['peak_rss_bytes'] / 1e6:.0f} MB",
            big_on["peak_rss_bytes"] <= 300e6)
        extra = big_on["seconds"] - big_off["seconds"]
        add("100 MB output: ≤ 2 s more than unrecorded", f"+{extra:.2f} s", extra <= 2.0)
    for case in ("read-result", "read-page", "read-record"):
        r = ss.get((case, 100_000_000, True))
        if r:
            add(f"100 MB output: {case} ≤ 1 s and ≤ 100 MB",
                f"{r['seconds']:.3f} s, {r['peak_rss_bytes'] / 1e6:.0f} MB",
                r["seconds"] <= 1 and r["peak_rss_bytes"] <= 100e6)
    r = next((r for r in ours.get("store_scale", []) if r["case"] == "read-result (nodes)"), None)
    if r:
        add("1,000,000-task dispatch: result ≤ 0.5 s and ≤ 100 MB",
            f"{r['seconds']:.3f} s, {r['peak_rss_bytes'] / 1e6:.0f} MB",
            r["seconds"] <= 0.5 and r["peak_rss_bytes"] <= 100e6)
    r = next((r for r in ours.get("store_scale", []) if r["case"] == "read-page (nodes)"), None)
    if r:
        add("1,000,000-task dispatch: show's first page ≤ 1 s", f"{r['seconds']:.2f} s",
            r["seconds"] <= 1)
    return out


def store_scale_md(ours):
    """The store_scale rows (large values, large graphs) as a table."""
    rows = ours.get("store_scale") or []
    if not rows:
        return ""
    md = ["| case | size | recording | time | peak RSS | store | value files |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        writes = r["case"] in ("value", "nodes")
        rec = ("on" if r["record"] else "off") if writes else ""
        on_disk = writes and r["record"]
        store = f"{r['store_bytes'] / 1e6:.1f} MB" if on_disk else ""
        files = f"{r['value_file_bytes'] / 1e6:.1f} MB" if on_disk else ""
        md.append(f"| {r['case']} | {r['size']:,} | {rec} | {fmt_s(r['seconds'])} | "
                  f"{r['peak_rss_bytes'] / 1e6:.0f} MB | {store} | {files} |")
    return "\n".join(md)


def machine(ours_doc, vers):
    def cmd(*a):
        try:
            return subprocess.run(a, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return ""

    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, AttributeError):
        pass
    cpu = ""
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    osname = ""
    try:
        osname = re.search(r'PRETTY_NAME="(.*)"', Path("/etc/os-release").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    return {
        "cores": NCPU, "cpu": cpu, "memory": mem, "os": osname,
        "kernel": platform.release(), "rustc": cmd("rustc", "--version"),
        "python": platform.python_version(),
        "commit (our side measured at)": ours_doc.get("commit", ""),
        "engine sources modified then": ours_doc.get("engine_sources_modified", ""),
        "engine": f"covalent-rs {ours_doc.get('version')} ({ours_doc.get('profile')})",
        "peers": vers,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="W1, W2-100, W3-100, W4, W5 only, 3 repetitions, short cap")
    ap.add_argument("--only", default="ours,dask,prefect,covalent",
                    help="comma-separated: ours, dask, prefect, covalent, or engine/config; "
                         "with --reuse, `none` rebuilds the report from the earlier results")
    ap.add_argument("--cap", type=float, default=None,
                    help="seconds one run may take before it is cut (default 240; quick 60)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds of timed runs per workload before no new run starts "
                         "(default 60; quick 10)")
    ap.add_argument("--quiet-wait", type=float, default=120,
                    help="seconds to wait for the machine to go quiet before each config")
    ap.add_argument("--workloads", default=None,
                    help="comma-separated peer workloads to run (e.g. W3-100000), default all; "
                         "with --reuse, a peer keeps its earlier results for the others")
    ap.add_argument("--out", default=str(BENCH / "results"))
    ap.add_argument("--reuse", metavar="JSON",
                    help="an earlier compare.json: take from it every engine that --only does "
                         "not name (e.g. --only ours --reuse bench/results/compare.json "
                         "re-measures our side against the same peer runs)")
    args = ap.parse_args()
    args.cap = args.cap or (60 if args.quick else 240)
    args.budget = args.budget or (10 if args.quick else 60)
    only = set(args.only.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="covalent-compare-"))
    (work / "logs").mkdir()
    log(f"work dir (logs, peer homes): {work}")

    # Ctrl-C and SIGTERM unwind through the `finally`s that stop servers.
    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)

    workloads = SMALL if args.quick else FULL
    if args.workloads:
        wanted = args.workloads.split(",")
        unknown = [w for w in wanted if w not in workloads]
        if unknown:
            raise SystemExit(f"unknown workloads {unknown}; known: {', '.join(workloads)}")
        workloads = [w for w in workloads if w in wanted]
    started = time.time()
    old = json.loads(Path(args.reuse).read_text()) if args.reuse else None
    if "ours" in only:
        quiet = wait_quiet(args.quiet_wait)
        log(f"ours: machine {'quiet' if quiet['quiet'] else 'BUSY'} "
            f"(CPU {quiet['cpu_frac']:.0%} after {quiet['waited_s']} s)")
        ours = run_ours(work, args)
        ours["quiet_before"] = quiet
    else:
        ours = old["ours"] if old else {"rows": []}
    vers, installs, peers, notes = {}, {}, {}, {}
    if old:
        vers = dict(old["machine"].get("peers", {}))
        installs = dict(old["machine"].get("peer_installs", {}))
        for key, p in old["peers"].items():
            engine, config = key.split("/", 1)
            # Kept unless --only names it; with --workloads, a named peer keeps its results for
            # the workloads not re-measured below.
            if args.workloads or not ({engine, key} & only):
                peers[(engine, config)] = dict(p["workloads"])
                notes[key] = {**p["notes"], "reused_from": old["started"]}
    for engine, config, wl, what in CONFIGS:
        if not ({engine, f"{engine}/{config}"} & only):
            continue
        sel = [w for w in workloads if wl is None or w in wl]
        if not sel:
            continue
        path, how = venv(engine, work)
        installs[engine] = how
        if engine not in vers:
            names = {"dask": ["dask", "distributed"], "prefect": ["prefect", "fastapi"],
                     "covalent": ["covalent", "dask", "distributed", "fastapi"]}[engine]
            vers[engine] = versions(path / "bin" / "python", names)
        quiet = wait_quiet(args.quiet_wait)
        log(f"{engine}/{config}: {what}; machine {'quiet' if quiet['quiet'] else 'BUSY'} "
            f"(CPU {quiet['cpu_frac']:.0%} after {quiet['waited_s']} s)")
        res, note = run_peer(engine, config, sel, path, work, args)
        note["quiet_before"] = quiet
        note["what"] = what
        if args.workloads and (engine, config) in peers:
            peers[(engine, config)].update(res)
            rerun = {**note, "workloads": sel, "cap_s": args.cap,
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            notes[f"{engine}/{config}"].setdefault("reruns", []).append(rerun)
        else:
            peers[(engine, config)] = res
            notes[f"{engine}/{config}"] = note

    rows, md = build_report(ours, peers, args)
    srows, smd = scaling(ours) if ours["rows"] else ([], "")
    tg = targets(ours, rows) if ours["rows"] else []
    mach = machine(ours, vers)
    mach["peer_installs"] = installs
    now = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
           "duration_s": round(time.time() - started), "only": sorted(only),
           "cap_s": args.cap}
    if args.workloads:
        now["workloads"] = workloads
    first = old if old else now
    doc = {
        "started": first["started"],
        "duration_s": first["duration_s"],
        "reruns": (old.get("reruns", []) + ([] if only == {"none"} else [now])) if old else [],
        "quick": args.quick, "cap_s": first.get("cap_s", args.cap), "budget_s": args.budget,
        "machine": mach, "table": rows, "targets": tg, "ours": ours,
        "peers": {f"{e}/{c}": {"notes": notes[f"{e}/{c}"], "workloads": r}
                  for (e, c), r in peers.items()},
    }
    suffix = "-quick" if args.quick else ""
    (out / f"compare{suffix}.json").write_text(json.dumps(doc, indent=1) + "\n")
    tmd = ["| target | measured | met |", "|---|---|---|"] + [
        f"| {t['target']} | {t['measured']}{' (' + t['detail'] + ')' if t['detail'] else ''} | "
        f"{ {True: 'yes', False: '**no**', None: 'not determined'}[t['met']] } |" for t in tg]
    report = (f"# Side-by-side run{' (quick)' if args.quick else ''}\n\n"
              f"Run {doc['started']}, {doc['duration_s'] // 60} min"
              + "".join(f"; re-run of {', '.join(r['only'])}"
                        + (f" ({', '.join(r['workloads'])} only)" if r.get("workloads") else "")
                        + (f" with a cap of {r['cap_s']:.0f} s"
                           if r.get("cap_s") and r["cap_s"] != doc["cap_s"] else "")
                        + f" at {r['started']}"
                        for r in doc["reruns"])
              + f"; per-run cap "
              f"{doc['cap_s']:.0f} s, budget {args.budget:.0f} s of timed runs per workload. "
              f"Machine: {mach['cores']} cores, {mach['memory']}, {mach['os']}; "
              f"{mach['rustc']}; Python {mach['python']}.\n\n"
              f"## Workloads\n\n{md}\n\n## Scaling (ours)\n\n{smd}\n\n"
              f"## The store at scale (ours)\n\n{store_scale_md(ours)}\n\n## Targets\n\n"
              + "\n".join(tmd) + "\n")
    (out / f"compare{suffix}.md").write_text(report)
    if srows:
        (out / f"scaling{suffix}.md").write_text(f"# Scaling\n\n{smd}\n")
        svg = svg_plot(srows)
        if svg:
            (out / f"scaling{suffix}.svg").write_text(svg)
    (out / f"machine{suffix}.md").write_text(
        "# Machine\n\n" + "\n".join(f"- {k}: {v}" for k, v in mach.items()) + "\n")
    print(report)
    # Keep the logs; the peers' homes (Covalent's per-node files, Prefect's database) can go.
    for d in work.iterdir():
        if d.is_dir() and d.name != "logs":
            shutil.rmtree(d, ignore_errors=True)
    log(f"written under {out}; logs kept in {work}/logs")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); servers were stopped")
        sys.exit(130)
