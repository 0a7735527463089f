"""What the stages need from the cluster, and the pools that fit what is left of it.

After a node is lost the job plans its remaining files again; the model pool's
``min_actors`` is lowered to what the surviving nodes can hold beside one CPU worker
and the writer (``max_actors`` stays: the pool grows again when nodes come back). When
not even one model actor fits, the job waits ``ray.capacity_wait_s`` for the cluster
to grow, then stops with one line.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Mapping

from jobs.config import StagesConfig

Resources = Mapping[str, float]  # Ray's resource names: "CPU", "GPU", ...


def model_actors_that_fit(stages: StagesConfig, resources: Resources) -> int:
    """How many model actors ``resources`` hold beside one CPU worker and the writer."""
    m = stages.transcribe
    cpus = resources.get("CPU", 0.0) - stages.prepare.num_cpus - stages.write.num_cpus
    fit = m.max_actors
    if m.num_cpus > 0:
        fit = min(fit, math.floor(cpus / m.num_cpus + 1e-9))
    if m.num_gpus > 0:
        fit = min(fit, math.floor(resources.get("GPU", 0.0) / m.num_gpus + 1e-9))
    return max(fit, 0)


def fitted(stages: StagesConfig, resources: Resources) -> StagesConfig | None:
    """``stages`` with ``min_actors`` lowered to what fits, or None when no model actor fits."""
    fit = model_actors_that_fit(stages, resources)
    if fit < 1:
        return None
    model = dataclasses.replace(stages.transcribe, min_actors=min(stages.transcribe.min_actors, fit))
    return dataclasses.replace(stages, transcribe=model)


def describe_need(stages: StagesConfig, resources: Resources) -> str:
    m = stages.transcribe
    need_cpu = m.num_cpus + stages.prepare.num_cpus + stages.write.num_cpus
    have = ", ".join(f"{resources.get(k, 0.0):g} {k}" for k in ("CPU", "GPU"))
    need = f"{need_cpu:g} CPU" + (f", {m.num_gpus:g} GPU" if m.num_gpus else "")
    return f"one model actor with the other stages needs {need}; the cluster has {have}"


def wait_for_room(
    stages: StagesConfig, resources: Callable[[], Resources], wait_s: float, poll_s: float = 2.0,
) -> tuple[StagesConfig | None, Resources]:
    """Poll ``resources()`` until the fitted stages exist or ``wait_s`` passes; return them (or None) and the last reading."""
    deadline = time.monotonic() + wait_s
    while True:
        have = resources()
        if (stages_now := fitted(stages, have)) is not None or time.monotonic() >= deadline:
            return stages_now, have
        time.sleep(poll_s)
