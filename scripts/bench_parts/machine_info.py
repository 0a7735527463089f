"""What the figures were measured on: CPU, cores, GPU, package versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect() -> dict:
    import torch

    from asr_actor.model import cpu_flags, cpu_half_dtypes
    from jobs.run.versions import installed, lock_state

    versions = {name: installed(name) for name in ("torch", "transformers", "ray", "ctranslate2", "faster-whisper",
                                                    "flash-attn", "av")}
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        # The matrix extensions that decide CPU speed, and the half dtypes they make native (model.dtype auto).
        "cpu_flags": sorted(f for f in cpu_flags() if f.startswith(("avx", "amx"))), "cpu_native_half": list(cpu_half_dtypes()),
        "gpu": gpu, **({"gpu_detail": _gpu_detail(), "cuda": torch.version.cuda} if gpu else {}),
        "python": platform.python_version(), "versions": versions, "lock": lock_state(),
    }


def _gpu_detail() -> str | None:
    """``name, driver, memory`` of the first GPU as ``nvidia-smi`` reports them."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    query = [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader", "-i", "0"]
    out = subprocess.run(query, capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or None
