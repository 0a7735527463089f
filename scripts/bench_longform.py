#!/usr/bin/env python3
"""Long-form modes on the long fixture: WER and speed of "chunked" against "sequential".

Prints one JSON document: per mode the WER, the median wall time of ``--repeats`` runs
after a warm-up, and RTFx (audio seconds per wall second); plus the WER of
transformers' sequential long-form ``generate`` called directly, the reference.

    .venv/bin/python scripts/bench_longform.py [--audio tests/data/good/long_pauses.ogg]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

from asr_actor.audio import decode_audio
from asr_actor.config import DecodingConfig, ModelConfig, TranscriberConfig
from asr_actor.transcriber import Transcriber
from asr_actor.wer import word_errors

ROOT = Path(__file__).resolve().parent.parent


def measure(transcriber: Transcriber, waveform, reference: str, repeats: int) -> dict:
    batch = {"id": ["long"], "waveform": [waveform]}
    transcriber(batch)  # warm-up
    times, text = [], ""
    for _ in range(repeats):
        started = time.perf_counter()
        out = transcriber(batch)
        times.append(time.perf_counter() - started)
        text = out["text"][0]
    seconds = len(waveform) / 16_000
    median = statistics.median(times)
    return {
        "wer": round(word_errors(reference, text).wer, 4),
        "median_s": round(median, 3),
        "spread_s": [round(min(times), 3), round(max(times), 3)],
        "rtfx": round(seconds / median, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, default=ROOT / "tests/data/good/long_pauses.ogg")
    parser.add_argument("--model", default=ModelConfig().id)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    waveform = decode_audio(args.audio.read_bytes()).waveform
    reference = args.audio.with_suffix(".txt").read_text(encoding="utf-8")
    results = {}
    for mode in ("chunked", "sequential"):
        decoding = DecodingConfig(batch_size=args.batch_size, long_form=mode)
        transcriber = Transcriber(TranscriberConfig(model=ModelConfig(id=args.model), decoding=decoding))
        results[mode] = measure(transcriber, waveform, reference, args.repeats)
    print(json.dumps({
        "audio": str(args.audio.relative_to(ROOT) if args.audio.is_relative_to(ROOT) else args.audio),
        "audio_s": round(len(waveform) / 16_000, 2),
        "model": args.model, "batch_size": args.batch_size, "repeats": args.repeats,
        "device": dataclasses.asdict(transcriber.info),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "modes": results,
    }, indent=2))


if __name__ == "__main__":
    main()
