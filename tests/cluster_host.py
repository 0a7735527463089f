"""A two-node Ray cluster on this machine, for the node-loss tests: ``python cluster_host.py HEAD_CPUS WORKER_CPUS``.

Ray's own multi-node harness (``ray.cluster_utils.Cluster``): a head node and a worker
node, each with its own raylet, object store and ports. It prints ``{"address": …}``
once both are up, then takes commands on stdin: ``kill-worker`` SIGKILLs every process
of the worker node (its workers and actors first, then its raylet and helpers) and
prints ``killed N``; ``quit`` (or the end of stdin) shuts the cluster down.
"""

from __future__ import annotations

import json
import sys


def _kill_worker_node(cluster, node) -> int:
    import psutil
    from ray._private import ray_constants

    raylet = psutil.Process(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)
    workers = raylet.children(recursive=True)
    for proc in workers:
        try:
            proc.kill()
        except psutil.Error:
            pass
    cluster.remove_node(node, allow_graceful=False)
    return len(workers) + 1


def main() -> None:
    from ray.cluster_utils import Cluster

    head_cpus, worker_cpus = (float(a) for a in sys.argv[1:3])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=worker_cpus)
    cluster.wait_for_nodes()
    print(json.dumps({"address": cluster.address}), flush=True)
    for line in sys.stdin:
        if line.strip() == "kill-worker":
            print(f"killed {_kill_worker_node(cluster, worker)}", flush=True)
        elif line.strip() == "quit":
            break
    cluster.shutdown()


if __name__ == "__main__":
    main()
