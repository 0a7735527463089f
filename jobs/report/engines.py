"""How ``export`` computes its table: in this process, or as a Ray Data job (a light module: the CLI reads it).

``local`` folds the runs in this process: fastest for a small root, but its memory grows
with the ids times the row size (measured: ~19 KB per row read, 3.8 GB for 200,000 ids).
``ray`` runs :mod:`jobs.report.current_table`, whose memory per process stays flat.
``auto`` takes ``local`` up to ``LOCAL_MAX_ROWS`` rows over the runs read, else ``ray``.
"""

from __future__ import annotations

ENGINES = ("auto", "local", "ray")
LOCAL_MAX_ROWS = 50_000  # rows over the runs read up to which ``auto`` stays in this process (< 1 GB there)


def choose(engine: str, rows: int) -> str:
    """The engine that computes a table of ``rows`` rows read when ``engine`` was asked for."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    return "local" if rows <= LOCAL_MAX_ROWS else "ray"
