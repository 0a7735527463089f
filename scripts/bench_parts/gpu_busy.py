"""How busy the GPU was while something ran: ``nvidia-smi``'s utilization, sampled every 100 ms.

``utilization.gpu`` is the share of the last sample period in which a kernel ran. The
fraction reported is its mean over the steady state: from the first sample that saw
the GPU work to the last, so Ray's start-up and the model build before the first
window, and the writer's tail after the last, do not count. Without ``nvidia-smi``
(a CPU machine) every figure is None.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from typing import Iterator

PERIOD_MS = 100


class Samples:
    def __init__(self) -> None:
        self.values: list[float] = []

    def fraction(self) -> float | None:
        busy = [i for i, v in enumerate(self.values) if v > 0]
        if not busy:
            return None
        steady = self.values[busy[0] : busy[-1] + 1]
        return round(sum(steady) / len(steady) / 100.0, 3)


@contextlib.contextmanager
def sampled() -> Iterator[Samples]:
    """Sample the first GPU's utilization while the ``with`` body runs."""
    samples = Samples()
    smi = shutil.which("nvidia-smi")
    if smi is None:
        yield samples
        return
    proc = subprocess.Popen([smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0",
                             f"-lms={PERIOD_MS}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def read() -> None:
        for line in proc.stdout or ():
            with contextlib.suppress(ValueError):
                samples.values.append(float(line.strip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield samples
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=10)
