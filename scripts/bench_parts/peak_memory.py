"""The peak memory of every process of a command's tree (Ray's workers are grandchildren of a local driver).

Sampled every ``INTERVAL_S`` from ``/proc/PID/smaps_rollup`` (Linux): ``Anonymous``, the
process's own heap (Python objects, Arrow buffers), and ``Rss``, which also counts the
pages of Ray's object store (shared memory, one store per node, capped and spilled to
disk by Ray) that the process has mapped. The first is the memory a process needs.
"""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any, Sequence

INTERVAL_S = 0.25  # s between samples
FIELDS = ("Anonymous", "Rss")  # of smaps_rollup, kB
GIB = 1024 ** 3


def _rollup(pid: int) -> dict[str, int]:
    """``FIELDS`` of one process, in bytes; empty when it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            lines = [line.split() for line in f]
    except OSError:
        return {}
    return {parts[0].rstrip(":"): int(parts[1]) * 1024 for parts in lines if parts and parts[0].rstrip(":") in FIELDS}


class _Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop, self.peaks, self.names = pid, threading.Event(), {}, {}

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self.stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for p in procs:
                now = _rollup(p.pid)
                if now:
                    seen = self.peaks.setdefault(p.pid, dict.fromkeys(FIELDS, 0))
                    for field in FIELDS:
                        seen[field] = max(seen[field], now.get(field, 0))
                    if p.pid not in self.names:
                        try:
                            self.names[p.pid] = " ".join(p.cmdline()[:3])[:80]
                        except psutil.Error:
                            self.names[p.pid] = "?"
            time.sleep(INTERVAL_S)


def run_measured(argv: Sequence[str], **popen: Any) -> dict[str, Any]:
    """Run ``argv`` to its end: its exit status, wall seconds, stdout, and the peaks of its process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, **popen)
    sampler = _Sampler(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    sampler.stop.set()
    sampler.join()
    peaks = sampler.peaks or {proc.pid: dict.fromkeys(FIELDS, 0)}
    top_anon = max(peaks, key=lambda pid: peaks[pid]["Anonymous"])
    top_rss = max(peaks, key=lambda pid: peaks[pid]["Rss"])
    return {
        "returncode": proc.returncode, "wall_s": round(time.perf_counter() - started, 2), "stdout": out,
        "processes_seen": len(peaks),
        "driver_peak_heap_gib": round(peaks.get(proc.pid, {}).get("Anonymous", 0) / GIB, 3),
        "max_process_peak_heap_gib": round(peaks[top_anon]["Anonymous"] / GIB, 3),
        "max_heap_process": sampler.names.get(top_anon, "?"),
        "max_process_peak_rss_gib": round(peaks[top_rss]["Rss"] / GIB, 3),
        "max_rss_process": sampler.names.get(top_rss, "?"),
    }
