#!/usr/bin/env python3
"""The device check's figures: the whole job and the bare model on one GPU, dummy weights, one JSON document.

For each model and ``decoding.compile`` (dummy weights, ``model.dummy_tokens`` per
window, ``decoding.language: en`` so neither side detects languages) it runs ``scripts/bench.py``'s ``bare`` and
``job`` modes on the same corpus at the same decoding batch, and prints one JSON
document: the card and versions, then per model the bare ``generate`` rate, the whole
job's rate, its start-up, its rate after start-up, job / bare and the GPU's busy
fraction while the job ran. ``--dry`` runs the same code on this machine's CPU with
dummy tiny and a short corpus, so the suite proves the device run still works.

    python scripts/bench_gpu_job.py                # GPU: dummy large-v3 and large-v3-turbo
    python scripts/bench_gpu_job.py --dry          # CPU: dummy tiny, 45 s of audio
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402

GPU = {"models": "large-v3,large-v3-turbo", "compiles": "off,on", "batch": 64, "minutes": 120.0, "repeats": 2,
       "config": "configs/gpu.yaml", "set": ["stages.prepare.concurrency=12"]}
DRY = {"models": "tiny", "compiles": "static", "batch": 4, "minutes": 0.75, "repeats": 1, "config": "configs/local.yaml",
       "set": ["model.dummy_tokens=20"]}


def point(model: str, compile_mode: str, doc: dict) -> dict:
    """One model's figures with one decoding.compile from a bench document."""
    results, ratios = doc["results"], doc["ratios"]
    return {
        "model": model, "compile": compile_mode, "batch": doc["batch_size"], "audio_s": doc["corpus"]["audio_s"],
        "bare_rtfx": results["bare"]["rtfx"], "job_rtfx": results["job"]["rtfx"],
        "job_startup_s": results["job_startup"]["median_s"],
        "job_throughput_rtfx": results.get("job_throughput", {}).get("rtfx"),
        "job/bare": ratios.get("job/bare"), "job_throughput/bare": ratios.get("job_throughput/bare"),
        "gpu_busy": results["job"].get("gpu_busy"),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry", action="store_true", help="CPU, dummy tiny, a short corpus: the same code path")
    parser.add_argument("--models", help="comma-separated openai-whisper names")
    parser.add_argument("--compiles", help="comma-separated decoding.compile values (off, static, on)")
    parser.add_argument("--batch", type=int, help="decoding.batch_size (and files per model call)")
    parser.add_argument("--minutes", type=float, help="corpus length")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    plan = DRY if args.dry else GPU
    models, compiles = (args.models or plan["models"]).split(","), (args.compiles or plan["compiles"]).split(",")
    batch, minutes, repeats = args.batch or plan["batch"], args.minutes or plan["minutes"], args.repeats or plan["repeats"]
    started = datetime.now(timezone.utc)
    summary = {"date": started.isoformat(timespec="seconds"), "dry": args.dry, "machine": None,
               "config": plan["config"], "tokens_per_window": None, "points": []}
    for model in models:
        for compile_mode in compiles:
            sets = [f"model.id={model}", "model.load_format=dummy", "decoding.language=en",
                    f"decoding.compile={compile_mode}", f"stages.transcribe.batch_size={batch}", *plan["set"]]
            try:
                doc = bench.main(["--config", str(ROOT / plan["config"]), *(x for s in sets for x in ("--set", s)),
                                  "--modes", "bare,job", "--minutes", str(minutes), "--repeats", str(repeats),
                                  "--batch-size", str(batch), "--out", str(args.out / "parts")], quiet=True)
            except Exception as exc:  # noqa: BLE001 - one failed point (out of memory, a compiler missing) is a result
                bench.modes.shutdown()
                summary["points"].append({"model": model, "compile": compile_mode, "batch": batch,
                                          "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            else:
                summary["machine"] = doc["machine"]
                summary["points"].append(point(model, compile_mode, doc))
            summary["tokens_per_window"] = bench.modes.job_config(1).model.dummy_tokens
            print(json.dumps(summary["points"][-1]), file=sys.stderr, flush=True)
            _write(summary, args.out, started)  # after every point: a call cut short still brings back the rest
    print(json.dumps(summary, indent=2))
    return summary


def _write(summary: dict, out: Path, started: datetime) -> None:
    card = (summary["machine"] or {}).get("gpu") or "cpu"
    name = f"{started:%Y-%m-%d}-gpu-check-{'dry-' if summary['dry'] else ''}{card}.json".replace(" ", "_")
    folders = [out, *([Path(os.environ["OUT"])] if os.environ.get("OUT") else [])]  # the device tool returns $OUT
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
