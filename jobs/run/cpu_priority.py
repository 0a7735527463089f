"""Run CPU-stage work only on CPU time nothing else wants (``stages.prepare.idle_priority``)."""

from __future__ import annotations

import os


def lower_cpu_priority() -> None:
    """Put the calling thread at the lowest CPU priority.

    Linux ``SCHED_IDLE`` (any user may lower a thread's priority); elsewhere nice 19.
    Both are per thread on Linux, so the thread that does the work must call this.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19 - os.nice(0))
