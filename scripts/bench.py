#!/usr/bin/env python3
"""Side-by-side throughput in one process: the bare model, the job, the origin script's way, faster-whisper.

Builds a corpus from the committed fixtures (a mix of short files and the long
recording, at least ``--minutes`` of audio), then measures each figure with a warm-up
and ``--repeats`` runs, and prints one JSON document (also written under
``bench/results/``). Figures are RTFx: audio seconds per wall second.

- ``bare``: batched ``generate`` on the corpus's pre-computed windows, no I/O: the
  ceiling for this device and model.
- ``job``: the whole Ray Data job (plan, fetch, decode, features, transcribe, write
  Parquet, finalize) on local files; ``job_s3``: the same over a local S3 server.
  Ray is started once, before the warm-up, as on a standing cluster.
- ``origin``: the origin script: a transformers ASR ``pipeline`` called per file.
- ``faster_whisper``: ``BatchedInferencePipeline`` (int8, greedy) on the same tiny.en
  CTranslate2 folder, when the ``faster-whisper`` package is installed.

    .venv/bin/python scripts/bench.py                      # CPU, tiny.en, all modes
    .venv/bin/python scripts/bench.py --synthetic large-v3 --sweep   # GPU: random large-v3 shapes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_parts import corpus, machine_info, modes  # noqa: E402


WARMUP_FILES = 3  # the warm-up transcribes the corpus's first files: loads, caches, first calls


def measure(fn: Callable[[list], float], files: list, repeats: int) -> dict:
    """Warm up on a few files, then ``repeats`` timed runs over the whole corpus.

    ``fn(files)`` transcribes ``files`` and returns the audio seconds it covered.
    """
    fn(files[:WARMUP_FILES])
    times, audio = [], 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        audio = fn(files)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    return {
        "median_s": round(median, 3), "min_s": round(min(times), 3), "max_s": round(max(times), 3),
        "audio_s": round(audio, 2), "rtfx": round(audio / median, 2), "repeats": repeats,
    }


def ratios(results: dict) -> dict:
    out = {}
    for a, b in (("job", "bare"), ("job", "origin"), ("job", "faster_whisper"), ("job_s3", "bare")):
        if a in results and b in results:
            out[f"{a}/{b}"] = round(results[a]["rtfx"] / results[b]["rtfx"], 3)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=12.0, help="corpus length (default 12)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="decoding.batch_size for bare and job")
    parser.add_argument("--modes", default="bare,job,job_s3,origin,faster_whisper")
    parser.add_argument("--synthetic", choices=sorted(modes.SYNTHETIC), help="random weights with real shapes (GPU figures)")
    parser.add_argument("--sweep", action="store_true", help="with --synthetic: batch x attention x dtype")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)

    started = datetime.now(timezone.utc)
    doc: dict = {"date": started.isoformat(timespec="seconds"), "machine": machine_info.collect()}
    if args.synthetic:
        doc["synthetic"] = modes.synthetic_sweep(args.synthetic, args.sweep, args.repeats)
    else:
        files = corpus.build(args.minutes)
        doc["corpus"] = corpus.describe(files)
        results = {}
        wanted = [m for m in args.modes.split(",") if m]
        modes.start(wanted)
        for mode in wanted:
            fn = modes.prepare(mode, files, args.batch_size)
            if fn is None:
                results[mode] = {"skipped": "not installed"}
                continue
            results[mode] = measure(fn, files, args.repeats)
            print(f"{mode}: {results[mode]}", file=sys.stderr, flush=True)
        modes.shutdown()
        doc["batch_size"] = args.batch_size
        doc["results"] = results
        doc["ratios"] = ratios({k: v for k, v in results.items() if "rtfx" in v})
    args.out.mkdir(parents=True, exist_ok=True)
    tag = doc["machine"].get("gpu") or "cpu"
    name = f"{started:%Y-%m-%d}-{'synthetic-' + args.synthetic if args.synthetic else 'tiny.en'}-{tag}.json"
    (args.out / name.replace(" ", "_")).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
