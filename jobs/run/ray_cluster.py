"""Connecting to Ray, knowing which nodes are really there, and telling why Ray stopped the job in one line.

``init_ray`` joins the cluster a submitted job runs in (``RAY_ADDRESS`` or
``ray.address``) or starts a local one on loopback. Ray reports a failure inside a
worker as an exception whose text is the worker's whole traceback (the worker's own
exception object does not cross back), so :func:`failure_cause` takes the last
exception line in it that is not Ray's own: what the user needs, without the traceback.
"""

from __future__ import annotations

import logging
import os
import re
import time

from asr_actor.errors import AsrBatchError, describe
from jobs.config import RayConfig

_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Z]\w*): (.+)$")
PROBE_S = 10.0  # s a node has to answer a probe task before it is taken for lost
_LOCAL_DEFAULTS = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


class LostActor(AsrBatchError):
    """An actor of one of the job's pools died (its process was killed, or its node was lost): see :mod:`jobs.run.actor_watch`."""


def cluster_address(cfg: RayConfig) -> str | None:
    """The cluster to join (``ray.address``, else ``RAY_ADDRESS`` as ``ray job submit`` sets it); None: start one."""
    return cfg.address or os.environ.get("RAY_ADDRESS")


def init_ray(cfg: RayConfig, verbose: bool = False) -> bool:
    """Connect once: to ``cfg.address`` or ``RAY_ADDRESS``, else a local cluster on 127.0.0.1.

    Unless ``verbose``, Ray's own INFO and WARNING lines stay out of the terminal (its
    log files under the session folder keep them). Returns whether the cluster is a
    local one of fixed size that this process started.
    """
    import ray

    address = cluster_address(cfg)
    if ray.is_initialized():
        return not address
    level = logging.INFO if verbose else logging.ERROR
    if address:
        ray.init(address=address, log_to_driver=verbose, logging_level=level)
    else:
        # A local cluster: loopback only, no usage reporting, room for actors plus Ray's helpers.
        for key, value in _LOCAL_DEFAULTS.items():
            os.environ.setdefault(key, value)
        ray.init(num_cpus=cfg.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=verbose,
                 logging_level=level)
    _quiet_ray_data_console(level)
    return not address


def _quiet_ray_data_console(level: int) -> None:
    """Ray Data's console handler prints its INFO and WARNING lines ("Progress bars disabled", the
    execution plan) and whole stack traces when a run fails; only its log file keeps them."""
    import ray.data  # noqa: F401 - configures the "ray.data" logger

    for handler in logging.getLogger("ray.data").handlers:
        if not hasattr(handler, "baseFilename") and "File" not in type(handler).__name__:
            handler.setLevel(logging.CRITICAL if level >= logging.ERROR else level)


def cluster_resources() -> dict[str, float]:
    """Total resources of the nodes alive now."""
    import ray

    return dict(ray.cluster_resources())


def alive_nodes() -> int:
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))


def _answer() -> bool:
    return True


def silent_nodes(timeout_s: float = PROBE_S) -> list[str]:
    """The nodes Ray lists as alive that do not run a probe task (no CPU, pinned there) within ``timeout_s``.

    A node that was just lost stays listed as alive until Ray's health checks give up on
    it (seconds to tens of seconds); work planned onto it meanwhile fails again.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(_answer)
    asked = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(): n["NodeID"]
             for n in ray.nodes() if n.get("Alive")}
    ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=timeout_s)
    answered = set()
    for ref in ready:
        try:
            ray.get(ref)
            answered.add(asked[ref])
        except Exception:  # noqa: BLE001 - a node that fails the probe has not answered
            pass
    return [node for node in asked.values() if node not in answered]


def wait_for_settled_nodes(wait_s: float, poll_s: float = 1.0) -> None:
    """Wait, at most ``wait_s``, until every node listed as alive answers (then fitting sees only real nodes)."""
    deadline = time.monotonic() + wait_s
    while silent_nodes() and time.monotonic() < deadline:
        time.sleep(poll_s)


def _exception_lines(exc: BaseException) -> list[re.Match]:
    return [m for ln in str(exc).splitlines() if (m := _EXCEPTION_LINE.match(ln.strip()))]


def is_lost_worker(exc: BaseException) -> bool:
    """Whether Ray stopped the job because a worker, an actor or a node went away.

    Such a report holds only Ray's own exceptions (an actor or node died, an object was
    lost); an error of the job's code (a model that cannot load, a store that stayed
    down) shows up in it as the job's own exception, and planning again would not help.
    """
    if isinstance(exc, LostActor):
        return True
    lines = _exception_lines(exc)
    return not [m for m in lines if not m[0].startswith("ray.")] and (
        bool(lines) or type(exc).__module__.startswith("ray."))


def failure_cause(exc: BaseException) -> str:
    """``ExceptionType: message`` of the error that stopped a Ray job, from Ray's report.

    A chained report prints the innermost cause first, then each error raised from it,
    then Ray's wrappers (``ray.exceptions.*``): the last exception line from outside Ray
    is the one the job raised (``StoreUnavailable``, ``ModelLoadError``), which names the cause.
    """
    found = _exception_lines(exc)
    ours = [m for m in found if not m[0].startswith("ray.")]
    if ours or found:
        m = (ours or found)[-1]
        return f"{m[1]}: {m[2]}"
    return f"{type(exc).__name__}: {describe(exc)}"
