#!/usr/bin/env python3
"""What ``audio.vad: silero`` saves on a recording that is half silence.

Builds one recording from the committed fixtures: the long fixture, a long stretch of
room tone, the short good fixtures one after another, room tone again, so that about
half of it is nobody speaking (a call put on hold, a meeting with a break). Transcribes
it with ``audio.vad`` off and silero (same model, same decoding), and prints one JSON
document: per setting the median wall time of ``--repeats`` calls after a warm-up (the
VAD and the features included), RTFx, the windows sent to the model and the WER
against the fixtures' own texts.

    .venv/bin/python scripts/bench_vad.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asr_actor.audio import SAMPLE_RATE, decode_audio  # noqa: E402
from asr_actor.config import AudioConfig, DecodingConfig, ModelConfig, TranscriberConfig  # noqa: E402
from asr_actor.transcriber import Transcriber  # noqa: E402
from asr_actor.wer import word_errors  # noqa: E402
from scripts.bench_parts.machine_info import collect  # noqa: E402

GOOD = ROOT / "tests/data/good"
ROOM_TONE = ROOT / "tests/data/nonspeech/room_tone_20s.flac"
PAUSE = np.zeros(SAMPLE_RATE, np.float32)  # 1 s between the short fixtures


def _wave(path: Path) -> np.ndarray:
    return decode_audio(path.read_bytes()).waveform


def half_silent() -> tuple[np.ndarray, str]:
    """The recording and its reference text."""
    long_file = GOOD / "long_pauses.ogg"
    shorts = [p for p in sorted(GOOD.iterdir()) if p.suffix not in (".txt", ".tsv") and p.with_suffix(".txt").exists()
              and p != long_file and decode_audio(p.read_bytes()).duration_s <= 30]
    speech = [_wave(long_file), np.concatenate([x for p in shorts for x in (_wave(p), PAUSE)])]
    tone = _wave(ROOM_TONE)
    parts = []
    for block in speech:
        parts += [block, np.resize(tone, int(len(block) * 1.05))]  # as much room tone as speech after each block
    text = " ".join(p.with_suffix(".txt").read_text(encoding="utf-8").strip() for p in [long_file, *shorts])
    return np.concatenate(parts).astype(np.float32), text


def measure(vad: str, waveform: np.ndarray, reference: str, model: str, repeats: int) -> dict:
    cfg = TranscriberConfig(model=ModelConfig(id=model), decoding=DecodingConfig(), audio=AudioConfig(vad=vad))
    transcriber = Transcriber(cfg)
    batch = {"id": ["half-silent"], "waveform": [waveform]}
    windows = len(transcriber.preprocess(batch)["windows"][0])
    transcriber(batch)  # warm-up
    times, text = [], ""
    for _ in range(repeats):
        started = time.perf_counter()
        text = transcriber(batch)["text"][0]
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    return {"median_s": round(median, 2), "spread_s": [round(min(times), 2), round(max(times), 2)],
            "rtfx": round(len(waveform) / SAMPLE_RATE / median, 1), "windows": windows,
            "wer": round(word_errors(reference, text).wer, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=ModelConfig().id)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    waveform, reference = half_silent()
    results = {vad: measure(vad, waveform, reference, args.model, args.repeats) for vad in ("off", "silero")}
    print(json.dumps({
        "audio_s": round(len(waveform) / SAMPLE_RATE, 1), "model": args.model, "results": results,
        "time_saved": round(1 - results["silero"]["median_s"] / results["off"]["median_s"], 3),
        "machine": collect(),
    }, indent=2))


if __name__ == "__main__":
    main()
