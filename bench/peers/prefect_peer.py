"""Prefect 3 peer: each workload is a `@flow` that submits `@task`s to the default task runner
(a thread pool) and returns the final value; the first flow call starts Prefect's ephemeral
local API server (SQLite) in this process.

Configs:
  default        Prefect's defaults
  no-heartbeat   the setting PREFECT_FLOWS_HEARTBEAT_FREQUENCY set to None for the whole run (an
                 environment variable cannot say None): no flow heartbeat thread, whose join
                 costs ~1 s per flow call with the defaults
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from prefect import flow, task  # noqa: E402


@task
def add(x, y):
    return x + y


@task
def multiply(x, y):
    return x * y


@task
def inc(x):
    return x + 1


@task
def total(xs):
    return sum(xs)


@task
def sleeper(i):  # noqa: ARG001
    time.sleep(0.5)
    return 1


@task
def seed(j):
    return j


@task
def cell(j, prev):
    return sum(prev) + j


@flow
def w1(n):  # noqa: ARG001 (every flow takes the size)
    r1 = add.submit(3, 4)
    return multiply.submit(4, r1).result()


@flow
def w2(n):
    x = inc.submit(0)
    for _ in range(1, n):
        x = inc.submit(x)
    return x.result()


@flow
def w3(n):
    return total.submit([inc.submit(i) for i in range(n)]).result()


@flow
def w4(n):
    return total.submit([sleeper.submit(i) for i in range(n)]).result()


@flow
def w5(width):
    layer = [seed.submit(j) for j in range(width)]
    for _ in range(1, common.W5_LAYERS):
        layer = [cell.submit(j, layer) for j in range(width)]
    return total.submit(layer).result()


FLOWS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5}


def setup(config):
    if config == "no-heartbeat":
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        cm = temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
        cm.__enter__()
        return cm
    if config != "default":
        raise SystemExit(f"unknown prefect config {config!r}")
    return None


def teardown(cm):
    if cm is not None:
        cm.__exit__(None, None, None)


def runner(family):
    f = FLOWS[family]
    return lambda n, _ctx: f(n)


if __name__ == "__main__":
    common.main("prefect", {k: runner(k) for k in FLOWS}, setup, teardown)
