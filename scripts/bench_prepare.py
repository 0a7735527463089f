#!/usr/bin/env python3
"""The CPU stage's cost per hour of audio: how many CPU workers keep one GPU fed.

Runs the job's own CPU worker (:class:`jobs.run.workers.PrepareWorker`: read the file, decode
and resample, cut windows, log-mel, pack for the model actor) in this one process over
the benchmark corpus, once per setting (80 and 128 mel bins, without and with the
VAD), after a warm-up, and prints one JSON document: CPU seconds per audio hour and
the audio seconds one CPU worker prepares per second (its RTFx). The README turns it
into the number of CPU workers per GPU.

    .venv/bin/python scripts/bench_prepare.py --minutes 12
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

SETTINGS = [(80, "off"), (128, "off"), (128, "silero")]  # (mel bins: tiny ... large-v2 / large-v3, turbo; audio.vad)


def measure(files: list, mels: int, vad: str, rounds: int) -> dict:
    """Median CPU and wall seconds of one CPU worker over ``files`` (written to a local folder first)."""
    import pyarrow as pa

    from asr_actor.config import AudioConfig
    from asr_actor.features import LogMel
    from jobs.run.workers import PrepareWorker

    worker = PrepareWorker(AudioConfig(vad=vad), LogMel(n_mels=mels), chunked=True)
    with tempfile.TemporaryDirectory(prefix="asr-prepare-") as folder:
        paths = []
        for name, data, _ in files:
            (Path(folder) / name).write_bytes(data)
            paths.append(str(Path(folder) / name))
        table = pa.table({"id": [n for n, _, _ in files], "uri": paths})
        worker(table.slice(0, 2))  # warm-up: the VAD's model, caches
        cpu, wall = [], []
        for _ in range(rounds):
            c0, w0 = time.process_time(), time.perf_counter()
            worker(table)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    audio_h = sum(s for _, _, s in files) / 3600
    best_cpu, best_wall = sorted(cpu)[len(cpu) // 2], sorted(wall)[len(wall) // 2]
    return {"mels": mels, "vad": vad, "cpu_s_per_audio_h": round(best_cpu / audio_h, 1),
            "wall_s_per_audio_h": round(best_wall / audio_h, 1), "rtfx_per_worker": round(audio_h * 3600 / best_wall, 1)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one CPU worker is one core: set before numpy loads
    from bench_parts import corpus, machine_info

    files = corpus.build(args.minutes)
    doc = {"machine": machine_info.collect(), "corpus": corpus.describe(files),
           "points": [measure(files, mels, vad, args.rounds) for mels, vad in SETTINGS]}
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
