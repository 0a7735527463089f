#!/usr/bin/env python3
"""Side-by-side throughput in one process: the bare model, the job, the origin script's way, faster-whisper.

Builds a corpus from the committed fixtures (a mix of short files and the long
recording, at least ``--minutes`` of audio), then measures each figure with a warm-up
and ``--repeats`` runs, and prints one JSON document (also written under
``bench/results/``). Figures are RTFx: audio seconds per wall second.

- ``bare``: batched ``generate`` on the corpus's pre-computed windows, no I/O: the
  ceiling for this device and model.
- ``job_startup``: the job on the corpus's shortest file, the fixed cost of a run; and
  ``job_throughput``: the corpus over the job's time less that start-up, the rate a
  run over hours of audio approaches.
- ``job``: the whole Ray Data job (plan, fetch, decode, features, transcribe, write
  Parquet, finalize) on local files; ``job_s3``: the same over a local S3 server.
  Ray is started once, before the warm-up, as on a standing cluster.
- ``origin``: the origin script: a transformers ASR ``pipeline`` called per file.
- ``faster_whisper``: ``BatchedInferencePipeline`` (int8, greedy) on the same tiny.en
  CTranslate2 folder, when the ``faster-whisper`` package is installed.
- ``transcribe`` and ``translate``: the job's model actor in this process with every row
  given that task, and each one's decoding passes and generated tokens per temperature
  (where the time goes); with ``--corpus multilingual`` (the real non-English clips) and a
  multilingual model (``--set model.id=offline:base``).

    .venv/bin/python scripts/bench.py                      # CPU, tiny.en, all modes
    .venv/bin/python scripts/bench.py --synthetic large-v3 --sweep   # GPU: random large-v3 shapes
    .venv/bin/python scripts/bench.py --corpus multilingual --modes transcribe,translate --set model.id=offline:base
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


def summarize(times: list[float], audio: float) -> dict:
    median = statistics.median(times)
    return {
        "median_s": round(median, 3), "min_s": round(min(times), 3), "max_s": round(max(times), 3),
        "audio_s": round(audio, 2), "rtfx": round(audio / median, 2), "repeats": len(times),
    }


def measure(fns: dict[str, Callable[[list], modes.Outcome]], files: list, repeats: int) -> tuple[dict, dict]:
    """Warm every mode up on a few files, then ``repeats`` rounds that run each mode once.

    ``fn(files)`` transcribes ``files`` and returns the audio seconds it covered and each
    file's transcript. Rounds interleave the modes, so a machine that drifts (a noisy
    neighbour, a warm CPU) moves every figure alike instead of favouring whichever mode
    ran first. Returns the figures per mode and the last round's transcripts per mode.
    """
    for fn in fns.values():
        fn(files[:WARMUP_FILES])
    modes.gpu_busy_median(clear=True)  # the rounds' figure only
    times: dict[str, list[float]] = {mode: [] for mode in fns}
    audio: dict[str, float] = {}
    texts: dict[str, dict[str, str]] = {}
    for round_ in range(repeats):
        for mode, fn in fns.items():
            started = time.perf_counter()
            audio[mode], texts[mode] = fn(files)
            times[mode].append(time.perf_counter() - started)
            print(f"round {round_ + 1}/{repeats} {mode}: {times[mode][-1]:.2f} s", file=sys.stderr, flush=True)
    return {mode: summarize(times[mode], audio[mode]) for mode in fns}, texts


def job_startup(fn: Callable[[list], modes.Outcome], files: list, repeats: int) -> dict:
    """The job's fixed cost per run: the whole job on the corpus's shortest file.

    With it, ``job_throughput`` is the job's rate once running (corpus audio over the
    job's median time less this start-up): what a run over hours of audio approaches.
    """
    shortest = [min(files, key=lambda f: f[2])]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        audio = fn(shortest)[0]
        times.append(time.perf_counter() - started)
    return summarize(times, audio)


def derived(results: dict) -> None:
    job, start = results.get("job", {}), results.get("job_startup", {})
    if "median_s" in job and "median_s" in start and job["median_s"] > start["median_s"]:
        busy = job["median_s"] - start["median_s"]
        results["job_throughput"] = {"seconds_after_startup": round(busy, 3), "audio_s": job["audio_s"],
                                     "rtfx": round(job["audio_s"] / busy, 2)}


def ratios(results: dict) -> dict:
    out = {}
    pairs = (("job", "bare"), ("job", "origin"), ("job", "faster_whisper"), ("job_s3", "bare"),
             ("job_throughput", "bare"), ("job_throughput", "origin"), ("bare", "origin"), ("translate", "transcribe"))
    for a, b in pairs:
        if "rtfx" in results.get(a, {}) and "rtfx" in results.get(b, {}):
            out[f"{a}/{b}"] = round(results[a]["rtfx"] / results[b]["rtfx"], 3)
    return out


def main(argv: list[str] | None = None, quiet: bool = False) -> dict:
    """Measure as ``argv`` asks; write the JSON document and (unless ``quiet``) print it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=12.0, help="corpus length (default 12)")
    parser.add_argument("--corpus", choices=corpus.SOURCES, default="fixtures",
                        help="the clips: the English fixtures (default) or the real multilingual ones")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="decoding.batch_size for bare and job")
    parser.add_argument("--modes", default="bare,job,job_s3,origin,faster_whisper")
    parser.add_argument("--synthetic", choices=sorted(modes.SYNTHETIC), help="random weights with real shapes (GPU figures)")
    parser.add_argument("--sweep", action="store_true", help="with --synthetic: batch x attention x dtype")
    parser.add_argument("--batches", type=lambda v: [int(b) for b in v.split(",") if b],
                        help="with --synthetic: batch sizes, comma-separated (default 8,16,32,64 with --sweep)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "local.yaml",
                        help="the job config that bare and job run (its model, decoding and stages)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of --config, as asr-batch run --set (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    modes.configure(args.config, args.overrides)

    started = datetime.now(timezone.utc)
    doc: dict = {"date": started.isoformat(timespec="seconds"), "machine": machine_info.collect()}
    if args.synthetic:
        doc["synthetic"] = modes.synthetic_sweep(args.synthetic, args.sweep, args.repeats, args.batches)
    else:
        files = corpus.build(args.minutes, args.corpus)
        doc["corpus"] = corpus.describe(files)
        wanted = [m for m in args.modes.split(",") if m]
        modes.start(wanted)
        fns, results = {}, {}
        for mode in wanted:
            fn = modes.build(mode, files, args.batch_size)
            if fn is None:
                results[mode] = {"skipped": "not installed"}
            else:
                fns[mode] = fn
        figures, texts = measure(fns, files, args.repeats)
        results.update(figures)
        if "job" in fns:
            results["job"]["gpu_busy"] = modes.gpu_busy_median(clear=True)
        for task in (m for m in modes.TASKS if m in fns):
            results[task]["passes_by_temperature"] = modes.passes(task)
        probe = files[0][0]  # every mode's transcript of one file: the modes decode the same audio alike
        doc["probe"] = {"file": probe, "texts": {mode: texts[mode].get(probe) for mode in texts}}
        if "job" in fns:
            results["job_startup"] = job_startup(fns["job"], files, args.repeats)
            derived(results)
        modes.shutdown()
        doc["batch_size"] = args.batch_size
        doc["config"] = {"file": str(args.config.relative_to(ROOT)), "set": args.overrides}
        doc["results"] = results
        doc["ratios"] = ratios(results)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = doc["machine"].get("gpu") or "cpu"
    model = modes.job_config(1).model
    named = model.id.removeprefix("openai/whisper-").removeprefix("offline:")
    named = f"dummy-{named}" if model.dummy else named
    name = f"{started:%Y-%m-%d}-{'synthetic-' + args.synthetic if args.synthetic else named}-{tag}.json"
    (args.out / name.replace(" ", "_")).write_text(json.dumps(doc, indent=2) + "\n")
    if not quiet:
        print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
