#!/usr/bin/env python3
"""What makes the model fast on this CPU: dtype, attention, int8, a compiled step, batch size.

Each variant is the project's own transcriber on the embedded tiny.en (or ``--model``),
over every good fixture in one batch (their windows packed as the job packs them): a
warm-up, then ``--rounds`` rounds that run every variant once (interleaved, so a drifting
machine moves all alike). Prints one JSON document: per variant the median seconds, the
speed-up over float32 + SDPA, the pooled WER and the 199 s recording's WER, and how many
transcripts differ from float32's. int8 goes through torchao's maintained path
(``quantize_`` with ``Int8DynamicActivationInt8WeightConfig`` or ``Int8WeightOnlyConfig``,
what transformers' ``TorchAoConfig`` applies); without torchao installed those variants
are reported as skipped.

    .venv/bin/python scripts/bench_cpu.py                      # every variant
    .venv/bin/python scripts/bench_cpu.py --variants float32-sdpa,bfloat16-eager
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))  # the fixtures and their reference texts
LONG = "long_pauses.ogg"


@dataclasses.dataclass(frozen=True)
class Variant:
    dtype: str
    attention: str
    batch_size: int = 8
    compile: str = "off"
    int8: str | None = None  # torchao: "dynamic" (int8 weights and activations) or "weight_only"


VARIANTS = {
    "float32-sdpa": Variant("float32", "sdpa"),
    "float32-eager": Variant("float32", "eager"),
    "bfloat16-sdpa": Variant("bfloat16", "sdpa"),
    "bfloat16-eager": Variant("bfloat16", "eager"),
    "bfloat16-eager-batch16": Variant("bfloat16", "eager", batch_size=16),
    "bfloat16-sdpa-compiled-step": Variant("bfloat16", "sdpa", compile="on"),
    "int8-dynamic-float32": Variant("float32", "sdpa", int8="dynamic"),
    "int8-weights-bfloat16": Variant("bfloat16", "eager", int8="weight_only"),
}
BASELINE = "float32-sdpa"


def _quantize(model: Any, kind: str) -> None:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8DynamicActivationInt8WeightConfig() if kind == "dynamic" else Int8WeightOnlyConfig())


def build(model_id: str, v: Variant) -> tuple[Callable[[dict], dict] | None, str | None]:
    """(the variant's transcriber, None), or (None, why it cannot run here)."""
    from asr_actor.config import DecodingConfig, ModelConfig, TranscriberConfig
    from asr_actor.errors import AsrBatchError
    from asr_actor.transcriber import Transcriber

    if v.int8 and importlib.util.find_spec("torchao") is None:
        return None, "torchao not installed"
    try:
        t = Transcriber(TranscriberConfig(model=ModelConfig(id=model_id, dtype=v.dtype, attention=v.attention),
                                          decoding=DecodingConfig(batch_size=v.batch_size, compile=v.compile)))
    except AsrBatchError as exc:  # bfloat16 on a CPU without it
        return None, str(exc)
    if v.int8:
        _quantize(t.loaded.model, v.int8)
    return t, None


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="offline:tiny.en")
    parser.add_argument("--files", type=int, default=0, help="only the first N fixtures (0: all)")
    args = parser.parse_args()
    wanted = [name for name in args.variants.split(",") if name]
    unknown = sorted(set(wanted) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}")
    wanted = [BASELINE, *[name for name in wanted if name != BASELINE]]  # the ratios' reference runs too

    from asr_actor.wer import word_errors
    from bench_parts import machine_info
    from conftest import good_fixtures, reference_text

    paths = good_fixtures()[: args.files or None]
    batch = {"id": [p.name for p in paths], "audio": [p.read_bytes() for p in paths]}
    runners: dict[str, Any] = {}
    skipped = {}
    for name in wanted:
        runner, why = build(args.model, VARIANTS[name])
        if runner is None:
            skipped[name] = why
            continue
        runner({"id": batch["id"][:2], "audio": batch["audio"][:2]})  # warm-up (and compilation)
        runners[name] = runner
    times: dict[str, list[float]] = {name: [] for name in runners}
    texts: dict[str, dict[str, str]] = {}
    for round_ in range(args.rounds):
        for name, runner in runners.items():
            started = time.perf_counter()
            out = runner(batch)
            times[name].append(time.perf_counter() - started)
            texts[name] = dict(zip(out["id"], out["text"]))
            print(f"round {round_ + 1}/{args.rounds} {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)

    def wer(name: str, names: list[str]) -> float | None:
        found = [word_errors(reference_text(p), texts[name][p.name]) for p in paths if p.name in names]
        return round(sum(e.errors for e in found) / sum(e.reference_words for e in found), 4) if found else None

    base = statistics.median(times[BASELINE])
    results: dict[str, Any] = {
        name: {**dataclasses.asdict(VARIANTS[name]), "median_s": round(statistics.median(times[name]), 2),
               "speedup": round(base / statistics.median(times[name]), 2), "wer": wer(name, batch["id"]),
               "long_wer": wer(name, [LONG]),
               "differ_from_float32": sum(texts[name][k] != texts[BASELINE][k] for k in texts[name])}
        for name in runners
    }
    results.update({name: {"skipped": why} for name, why in skipped.items()})
    doc = {"machine": machine_info.collect(), "model": args.model, "files": len(paths),
           "audio_s": round(sum(_duration(p) for p in paths), 1), "rounds": args.rounds, "variants": results}
    print(json.dumps(doc, indent=2))
    return doc


def _duration(path: Path) -> float:
    from asr_actor.audio import decode_audio

    return decode_audio(path.read_bytes()).duration_s


if __name__ == "__main__":
    main()
