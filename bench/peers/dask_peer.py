"""Dask peer: the workloads as `dask.delayed` graphs.

Configs:
  threads     x.compute(scheduler="threads"), the default pool (one thread per core)
  threads8    the same with num_workers=8 (W4 only: 8 slots for 8 sleepers)
  threads-graph  the same scheduler (dask.threaded.get) on a task graph written as a dict: no
              dask.delayed objects, whose graph building grows faster than linearly (a 10,000
              chain of delayed takes ~14 s to build and run, the dict ~1.2 s)
  dist        distributed LocalCluster on 127.0.0.1: 2 worker processes x 1 thread
  dist-t4     the same with 4 threads per worker (W4 only: 8 slots)
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from dask import delayed  # noqa: E402


def add(x, y):
    return x + y


def multiply(x, y):
    return x * y


def inc(x):
    return x + 1


def total(xs):
    return sum(xs)


def sleeper(_i):
    time.sleep(0.5)
    return 1


def seed(j):
    return j


def cell(j, prev):
    return sum(prev) + j


def w1(_n):
    r1 = delayed(add)(3, 4)
    return delayed(multiply)(4, r1)


def w2(n):
    x = delayed(inc)(0)
    for _ in range(1, n):
        x = delayed(inc)(x)
    return x


def w3(n):
    return delayed(total)([delayed(inc)(i) for i in range(n)])


def w4(n):
    return delayed(total)([delayed(sleeper)(i) for i in range(n)])


def w5(width):
    layer = [delayed(seed)(j) for j in range(width)]
    for _ in range(1, common.W5_LAYERS):
        # One list task per layer, shared by the layer's cells: passing the list of Delayed to
        # every cell instead makes building the graph ten times slower (0.4 s against 0.04 s).
        prev = delayed(list)(layer)
        layer = [delayed(cell)(j, prev) for j in range(width)]
    return delayed(total)(layer)


BUILD = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5}


# The same workflows as plain task graphs: key -> (function, *arguments), where an argument
# that is a key (or a list of keys) stands for that task's output.


def g1(_n):
    return {"r1": (add, 3, 4), "out": (multiply, 4, "r1")}, "out"


def g2(n):
    dsk = {("inc", 0): (inc, 0)}
    for i in range(1, n):
        dsk[("inc", i)] = (inc, ("inc", i - 1))
    return dsk, ("inc", n - 1)


def g3(n):
    dsk = {("inc", i): (inc, i) for i in range(n)}
    dsk["total"] = (total, [("inc", i) for i in range(n)])
    return dsk, "total"


def g4(n):
    dsk = {("sleep", i): (sleeper, i) for i in range(n)}
    dsk["total"] = (total, [("sleep", i) for i in range(n)])
    return dsk, "total"


def g5(width):
    dsk = {("c", 0, j): (seed, j) for j in range(width)}
    for layer in range(1, common.W5_LAYERS):
        prev = [("c", layer - 1, k) for k in range(width)]
        for j in range(width):
            dsk[("c", layer, j)] = (cell, j, prev)
    dsk["total"] = (total, [("c", common.W5_LAYERS - 1, k) for k in range(width)])
    return dsk, "total"


GRAPH = {"W1": g1, "W2": g2, "W3": g3, "W4": g4, "W5": g5}


def setup(config):
    if config == "threads-graph":
        return {"graph": True}
    if config in ("threads", "threads8"):
        return {"compute": {"scheduler": "threads",
                            **({"num_workers": 8} if config == "threads8" else {})}}
    from distributed import Client, LocalCluster

    cluster = LocalCluster(processes=True, n_workers=2,
                           threads_per_worker=4 if config == "dist-t4" else 1,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    return {"compute": {}, "client": client, "cluster": cluster}


def teardown(ctx):
    if ctx and "client" in ctx:
        ctx["client"].close()
        ctx["cluster"].close()


def runner(family):
    build, graph = BUILD[family], GRAPH[family]

    def run(n, ctx):
        if ctx.get("graph"):
            from dask.threaded import get

            dsk, key = graph(n)
            return get(dsk, key)
        # With a distributed Client active, plain compute() goes to it.
        return build(n).compute(**ctx["compute"])

    return run


if __name__ == "__main__":
    common.main("dask", {f: runner(f) for f in BUILD}, setup, teardown)
