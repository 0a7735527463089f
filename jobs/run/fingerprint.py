"""The config fingerprint: a hash of everything that changes a transcript.

Its inputs come from the planned model, not from the config's requests: the weights'
identity, the device, dtype and attention the actors will load (so a CPU float32 run
and a GPU float16 run differ), the feature settings, and every decoding and audio
option except batch sizes and resources, which change speed only. ``run.json``
records both the inputs and the hash; every row carries the hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from asr_actor.config import DecodingConfig, TranscriberConfig
from asr_actor.model_plan import ModelPlan

_SPEED_ONLY = {"batch_size", "compile"}  # decoding options that do not change a transcript
# decoding options hashed only when not at their default: runs that never set them keep their hash
_UNLESS_DEFAULT = {"initial_prompt", "language_detection_threshold", "language_detection_windows"}
_DEFAULT_DECODING = dataclasses.asdict(DecodingConfig())
_VAD = ("vad", "vad_threshold", "vad_min_silence_s", "vad_pad_s")  # hashed only when on: runs without keep their hash
_DUMMY = ("load_format", "dummy_tokens")  # hashed only for dummy weights: real runs keep their hash
_SPLIT = ("channels",)  # hashed only when split: mixed runs keep their hash


def fingerprint_inputs(cfg: TranscriberConfig, plan: ModelPlan) -> dict[str, Any]:
    """What the fingerprint hashes, as a nested mapping in its JSON form (as run.json records it: lists, not tuples)."""
    return json.loads(json.dumps({
        "model": {k: getattr(plan, k) for k in ("model_id", "weights_id", "device", "dtype", "attention",
                                                *(_DUMMY if plan.load_format != "auto" else ()))},
        "features": dataclasses.asdict(plan.log_mel),
        "decoding": {k: v for k, v in dataclasses.asdict(cfg.decoding).items()
                     if k not in _SPEED_ONLY and not (k in _UNLESS_DEFAULT and v == _DEFAULT_DECODING[k])},
        "audio": {k: getattr(cfg.audio, k) for k in ("min_window_s", "max_duration_s",
                                                     *(_VAD if cfg.audio.vad != "off" else ()),
                                                     *(_SPLIT if cfg.audio.channels != "mix" else ()))},
    }))


def fingerprint(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def changed(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs between two fingerprint inputs."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out
