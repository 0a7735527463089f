"""A two-node Ray cluster on this machine, for the node-loss tests: ``python cluster_host.py HEAD_CPUS WORKER_CPUS``.

Ray's own multi-node harness (``ray.cluster_utils.Cluster``): a head node and a worker
node, each with its own raylet, object store and ports. It prints ``{"address": …}``
once both are up, then takes commands on stdin: ``hold-head`` takes every CPU of the
head with an idle actor pinned there (so that a job's actors all land on the worker
node) and prints ``held``; ``kill-worker [CLASS ...]`` waits until the worker node runs
an actor of each CLASS named, lets the head's CPUs go, then SIGKILLs every process of
the worker node (its workers and actors first, then its raylet and helpers) and prints
``killed N: CLASS, ...`` with the job actors it held; ``quit`` (or the end of stdin)
shuts the cluster down.
"""

from __future__ import annotations

import json
import sys


JOB_ACTORS = ("PrepareWorker", "TranscribeWorker", "WriteWorker")


def _actors_on(raylet) -> tuple[list, list[str]]:
    """The processes under ``raylet`` and the job actor classes among them."""
    import psutil

    procs, held = raylet.children(recursive=True), []
    for proc in procs:
        try:
            held += [name for name in JOB_ACTORS if name in " ".join(proc.cmdline())]
        except psutil.Error:
            pass
    return procs, held


def _kill_worker_node(cluster, node, wanted: list[str], holder, wait_s: float = 180.0) -> str:
    import time

    import psutil
    import ray
    from ray._private import ray_constants

    raylet = psutil.Process(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)
    deadline = time.monotonic() + wait_s
    procs, held = _actors_on(raylet)
    while not set(wanted) <= set(held) and time.monotonic() < deadline:
        time.sleep(0.2)
        procs, held = _actors_on(raylet)
    if holder is not None:
        ray.kill(holder)  # the head's CPUs are the survivors' room
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    cluster.remove_node(node, allow_graceful=False)
    return f"killed {len(procs) + 1}: {', '.join(sorted(held))}"


def _hold_head(cluster, cpus: float):
    """An idle actor holding ``cpus`` CPUs of the head node (this process joins the cluster as a driver)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not ray.is_initialized():
        ray.init(address=cluster.address, log_to_driver=False)
    head = NodeAffinitySchedulingStrategy(cluster.head_node.node_id, soft=False)
    holder = ray.remote(num_cpus=cpus, scheduling_strategy=head)(_Idle).remote()
    ray.get(holder.ready.remote())
    return holder


class _Idle:
    def ready(self) -> bool:
        return True


def _answers():
    """stdout for the answers alone: whatever Ray prints (node-death notices, logs) goes to stderr."""
    import os

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return answers


def main() -> None:
    from ray.cluster_utils import Cluster

    out = _answers()
    head_cpus, worker_cpus = (float(a) for a in sys.argv[1:3])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=worker_cpus)
    cluster.wait_for_nodes()
    print(json.dumps({"address": cluster.address}), file=out, flush=True)
    holder = None
    for line in sys.stdin:
        if line.strip() == "hold-head":
            holder = _hold_head(cluster, head_cpus)
            print("held", file=out, flush=True)
        elif line.split()[:1] == ["kill-worker"]:
            print(_kill_worker_node(cluster, worker, line.split()[1:], holder), file=out, flush=True)
        elif line.strip() == "quit":
            break
    cluster.shutdown()


if __name__ == "__main__":
    main()
