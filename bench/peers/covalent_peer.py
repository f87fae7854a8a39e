"""Covalent peer: each workload is a `@ct.lattice` of `@ct.electron`s dispatched to a Covalent
server that the driver started (`covalent start`, with or without its Dask cluster).

A run is timed from building and dispatching the lattice until the value is in hand: the
client dispatches, polls the dispatch's status every 20 ms, then fetches the result without
intermediate outputs. (`ct.get_result(id, wait=True)` polls once per second and downloads every
node's output, which would add up to a second of latency.)

The electrons are defined here, in the script itself, so that the server and its workers get
them by value (a helper module would not be importable there).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import covalent as ct  # noqa: E402


@ct.electron
def add(x, y):
    return x + y


@ct.electron
def multiply(x, y):
    return x * y


@ct.electron
def inc(x):
    return x + 1


@ct.electron
def total(xs):
    return sum(xs)


@ct.electron
def sleeper(i):
    import time as t

    t.sleep(0.5)
    return 1


@ct.electron
def seed(j):
    return j


@ct.electron
def cell(j, prev):
    return sum(prev) + j


@ct.lattice
def w1(n):
    r1 = add(3, 4)
    return multiply(4, r1)


@ct.lattice
def w2(n):
    x = inc(0)
    for _ in range(1, n):
        x = inc(x)
    return x


@ct.lattice
def w3(n):
    return total([inc(i) for i in range(n)])


@ct.lattice
def w4(n):
    return total([sleeper(i) for i in range(n)])


@ct.lattice
def w5(width):
    layer = [seed(j) for j in range(width)]
    for _ in range(1, 10):
        layer = [cell(j, layer) for j in range(width)]
    return total(layer)


LATTICES = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5}
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "POSTPROCESSING_FAILED", "PENDING_POSTPROCESSING"}


def runner(family):
    lattice = LATTICES[family]

    def run(n, _ctx):
        dispatch_id = ct.dispatch(lattice)(n)
        # The driver reads this line to cancel the dispatch if the run is cut.
        common.emit(event="dispatched", id=dispatch_id)
        while True:
            status = ct.get_result(dispatch_id, status_only=True)["status"]
            if str(status) in TERMINAL:
                break
            time.sleep(0.02)
        result = ct.get_result(dispatch_id, intermediate_outputs=False)
        if str(result.status) != "COMPLETED":
            raise RuntimeError(f"dispatch {dispatch_id} ended {result.status}: {result.error}")
        return result.result

    return run


if __name__ == "__main__":
    assert common.W5_LAYERS == 10  # the lattice body above spells the layer count out
    common.main("covalent", {k: runner(k) for k in LATTICES})
