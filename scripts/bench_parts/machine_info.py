"""What the figures were measured on: CPU, cores, GPU, package versions."""

from __future__ import annotations

import os
import platform


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

    from jobs.versions import installed, lock_state

    versions = {name: installed(name) for name in ("torch", "transformers", "ray", "ctranslate2", "faster-whisper",
                                                    "flash-attn", "av")}
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "gpu": gpu, "python": platform.python_version(), "versions": versions,
        "lock": lock_state(),
    }
