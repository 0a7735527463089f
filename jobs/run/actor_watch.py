"""Fail an attempt at once when one of its pool actors dies, instead of letting Ray Data wait.

Ray Data 2.60 keeps a dead actor in its pool: an actor killed between two tasks (a CPU
worker, the writer after a part) is taken out of scheduling but still counts toward the
pool's size, so a pool of one is never replaced and the run waits, making no progress,
until the no-progress timeout (ray-project/ray#62746). With ``ray.actor_restarts: 0`` the
driver recovers from lost workers itself (:func:`jobs.run.pipeline._execute`), so it only
needs to hear of the death: :class:`ActorWatch` is a Ray Data execution callback that,
every ``POLL_S`` of the scheduling loop, asks Ray for the state of each pool's actors and
raises :class:`LostActor` for the first dead one. Ray Data ends the execution with it
and the driver plans the files still to do again. With restarts allowed, Ray reports a
killed actor as restarting, not dead, and Ray Data waits for it as before.
"""

from __future__ import annotations

import time
from typing import Any

from ray.data._internal.execution.execution_callback import ExecutionCallback

from jobs.run.ray_cluster import LostActor

POLL_S = 1.0  # s between two looks at the actors' states


def _dead_state() -> Any:
    from ray.core.generated import gcs_pb2

    return gcs_pb2.ActorTableData.ActorState.DEAD


def _pool_actors(executor: Any) -> list[tuple[str, Any]]:
    """(operator name, actor handle) for every running actor of every actor-pool operator."""
    found = []
    for op in list(executor._topology):
        pool = getattr(op, "_actor_pool", None)
        if pool is not None:
            found += [(op.name, actor) for actor in list(pool._running_actors)]
    return found


class ActorWatch(ExecutionCallback):
    """Raise :class:`LostActor` from Ray Data's scheduling loop when a pool actor is dead."""

    def __init__(self) -> None:
        self._last = 0.0
        self._dead = _dead_state()

    def on_execution_step(self, executor: Any) -> None:
        now = time.monotonic()
        if now - self._last < POLL_S:
            return
        self._last = now
        for name, actor in _pool_actors(executor):
            if actor._get_local_state() == self._dead:
                raise LostActor(f"an actor of {name} died (its process was killed or its node was lost)")
