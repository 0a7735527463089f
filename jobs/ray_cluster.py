"""Connecting to Ray, and telling why Ray stopped the job in one line.

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

from asr_actor.errors import describe
from jobs.config import RayConfig

_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Z]\w*): (.+)$")
_LOCAL_DEFAULTS = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def init_ray(cfg: RayConfig) -> None:
    """Connect once: to ``cfg.address`` or ``RAY_ADDRESS``, else a local cluster on 127.0.0.1."""
    import ray

    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # A local cluster: loopback only, no usage reporting, room for actors plus Ray's helpers.
        for key, value in _LOCAL_DEFAULTS.items():
            os.environ.setdefault(key, value)
        ray.init(num_cpus=cfg.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    _quiet_ray_data_console()


def _quiet_ray_data_console() -> None:
    """Ray Data's console handler prints whole stack traces when a run fails; its log file keeps them."""
    import ray.data  # noqa: F401 - configures the "ray.data" logger

    for handler in logging.getLogger("ray.data").handlers:
        if not hasattr(handler, "baseFilename") and "File" not in type(handler).__name__:
            handler.setLevel(logging.CRITICAL)


def failure_cause(exc: BaseException) -> str:
    """``ExceptionType: message`` of the error that stopped a Ray job, from Ray's report.

    A chained report prints the innermost cause first, then each error raised from it,
    then Ray's wrappers (``ray.exceptions.*``): the last exception line from outside Ray
    is the one the job raised (``StoreUnavailable``, ``ModelLoadError``), which names the cause.
    """
    found = [m for ln in str(exc).splitlines() if (m := _EXCEPTION_LINE.match(ln.strip()))]
    ours = [m for m in found if not m[0].startswith("ray.")]
    if ours or found:
        m = (ours or found)[-1]
        return f"{m[1]}: {m[2]}"
    return f"{type(exc).__name__}: {describe(exc)}"
