"""What every peer script shares: the workload table, the expected values, the timing loop and
the line protocol the driver (bench/compare.py) reads.

A peer script defines, for its engine, one function per workload family (W1 ... W5) that builds
the workflow, runs it and returns the final value; `main` here times them. Each run is timed
from the start of building the workflow until its final value is in the caller's hands.

Protocol: one JSON object per line on stdout, flushed at once:
  {"event": "begin", "workload": "W3-1000", "kind": "warmup" | "timed", "run": i}
  {"event": "end",   "workload": ..., "kind": ..., "run": i, "seconds": s, "value": v, "ok": b}
  {"event": "done",  "workload": ..., "reps": n}
  {"event": "error", "workload": ..., "message": "..."}
The driver times each run from "begin"; a run that passes the cap is cut by killing the
process (the driver then starts a fresh one for the workloads left).
"""

import argparse
import json
import resource
import sys
import time
import traceback

# workload id -> (family, size, user tasks as counted for per-task figures)
WORKLOADS = {
    "W1": ("W1", 2, 2),
    "W2-100": ("W2", 100, 100),
    "W2-10000": ("W2", 10_000, 10_000),
    "W3-100": ("W3", 100, 101),
    "W3-1000": ("W3", 1_000, 1_001),
    "W3-100000": ("W3", 100_000, 100_001),
    "W4": ("W4", 8, 9),
    "W5": ("W5", 10, 101),
}

W5_LAYERS = 10
W5_WIDTH = 10


def expected(workload):
    family, n, _ = WORKLOADS[workload]
    if family == "W1":
        return 28
    if family == "W2":
        return n
    if family == "W3":
        return n * (n + 1) // 2
    if family == "W4":
        return 8
    # W5: the first layer sums to 0 + ... + (width - 1); each later cell adds its index to the
    # previous layer's sum, and the join sums the last layer.
    indices = W5_WIDTH * (W5_WIDTH - 1) // 2
    s = indices
    for _ in range(1, W5_LAYERS):
        s = W5_WIDTH * s + indices
    return s


def emit(**obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(engine, runners, setup=None, teardown=None):
    """`runners`: family -> callable(size, ctx) -> value, where `ctx` is what `setup(config)`
    returned (None without a setup); `teardown(ctx)` runs at the end, also after a failure."""
    ap = argparse.ArgumentParser(description=f"{engine} workloads for bench/compare.py")
    ap.add_argument("--config", required=True)
    ap.add_argument("--workloads", required=True, help="comma-separated ids, e.g. W1,W3-1000")
    ap.add_argument("--reps", required=True, help="comma-separated id=count")
    ap.add_argument("--no-warmup", default="", help="comma-separated ids run without warm-up")
    ap.add_argument("--budget", type=float, default=90.0,
                    help="seconds of timed runs per workload after which no new run starts")
    args = ap.parse_args()
    reps = {k: int(v) for k, v in (p.split("=") for p in args.reps.split(",") if p)}
    cold = {w for w in args.no_warmup.split(",") if w}

    ctx = setup(args.config) if setup else None
    try:
        for workload in [w for w in args.workloads.split(",") if w]:
            family, n, _ = WORKLOADS[workload]
            want = expected(workload)
            run = runners[family]
            timed = 0
            try:
                def once(kind, i):
                    emit(event="begin", workload=workload, kind=kind, run=i)
                    t0 = time.perf_counter()
                    value = run(n, ctx)
                    dt = time.perf_counter() - t0
                    ok = value == want
                    emit(event="end", workload=workload, kind=kind, run=i, seconds=dt,
                         value=value if isinstance(value, (int, float)) else repr(value), ok=ok,
                         client_maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
                    if not ok:
                        raise AssertionError(f"{workload}: got {value!r}, expected {want}")

                if workload not in cold:
                    once("warmup", 0)
                started = time.perf_counter()
                count = reps.get(workload, 5)
                while timed < count and (timed == 0 or time.perf_counter() - started < args.budget):
                    once("timed", timed)
                    timed += 1
                emit(event="done", workload=workload, reps=timed)
            except Exception as e:  # report and go on with the next workload
                emit(event="error", workload=workload, message=f"{type(e).__name__}: {e}",
                     trace=traceback.format_exc()[-2000:])
    finally:
        if teardown:
            teardown(ctx)
