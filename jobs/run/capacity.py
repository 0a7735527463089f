"""What the stages need from the cluster, and the pools that fit what is there.

One rule for a fresh local run and for a recovery after a lost node: the run needs
room for one CPU worker and one model actor; the rest is fitted to what is left. The
model pool's ``min_actors`` is lowered to what fits beside one CPU worker
(``max_actors`` stays: the pool grows again when nodes come back), the CPU pool to the
workers that fit beside those model actors, and the writer's CPU share to what is left
(down to 0: it only writes small Parquet parts). When not even one CPU worker and one
model actor fit, the job waits ``ray.capacity_wait_s`` for the cluster to grow, then
stops with one line.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Mapping

from jobs.config import StagesConfig

Resources = Mapping[str, float]  # Ray's resource names: "CPU", "GPU", "memory" (bytes), ...
_EPS = 1e-9  # resources are floats: 0.1 + 0.2 must still fit in 0.3


def _times(have: float, each: float) -> int:
    """How many ``each`` fit in ``have`` (any number when ``each`` is 0)."""
    return math.floor(have / each + _EPS) if each > 0 else 1 << 30


def model_actors_that_fit(stages: StagesConfig, resources: Resources) -> int:
    """How many model actors ``resources`` hold beside one CPU worker, at most ``max_actors``."""
    m = stages.transcribe
    cpus = resources.get("CPU", 0.0) - stages.prepare.num_cpus
    fit = min(m.max_actors, _times(cpus, m.num_cpus))
    if m.num_gpus > 0:
        fit = min(fit, _times(resources.get("GPU", 0.0), m.num_gpus))
    return max(fit, 0)


def fitted(stages: StagesConfig, resources: Resources) -> StagesConfig | None:
    """``stages`` fitted to ``resources`` (see the module's rule), or None when one CPU worker and one model actor do not fit."""
    fit = model_actors_that_fit(stages, resources)
    m, cpu_stage = stages.transcribe, stages.prepare
    memory = cpu_stage.ray_memory.get("memory", 0)  # bytes each CPU worker reserves (stages.prepare.memory_gib)
    if fit < 1 or resources.get("CPU", 0.0) + _EPS < cpu_stage.num_cpus or resources.get("memory", 0.0) + _EPS < memory:
        return None
    model = dataclasses.replace(m, min_actors=min(m.min_actors, fit))
    left = resources.get("CPU", 0.0) - model.min_actors * m.num_cpus
    workers = max(1, min(cpu_stage.concurrency, _times(left - stages.write.num_cpus, cpu_stage.num_cpus),
                         _times(resources.get("memory", 0.0), memory)))
    writer_share = min(stages.write.num_cpus, max(0.0, round(left - workers * cpu_stage.num_cpus, 6)))
    return dataclasses.replace(
        stages, transcribe=model, prepare=dataclasses.replace(cpu_stage, concurrency=workers),
        write=dataclasses.replace(stages.write, num_cpus=writer_share),
    )


def describe_need(stages: StagesConfig, resources: Resources) -> str:
    m, gib = stages.transcribe, stages.prepare.memory_gib
    need = f"{m.num_cpus + stages.prepare.num_cpus:g} CPU" + (f", {m.num_gpus:g} GPU" if m.num_gpus else "")
    have = ", ".join(f"{resources.get(k, 0.0):g} {k}" for k in ("CPU", "GPU"))
    if gib is not None:
        need += f", {gib:g} GiB memory"
        have += f", {resources.get('memory', 0.0) / 1024 ** 3:.1f} GiB memory"
    return f"one model actor and one CPU worker need {need}; the cluster has {have}"


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
