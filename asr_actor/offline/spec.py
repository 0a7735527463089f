"""Map a CTranslate2 ``WhisperSpec`` onto ``WhisperForConditionalGeneration`` weights.

The layouts agree on orientation (both store ``[out, in]`` linear weights and
``[out, in, kernel]`` convolutions), so the mapping is only renames plus splits along
dim 0 of CTranslate2's fused projections. Every variable of the spec is consumed:
tensors become parameters, scalars are checked against what the transformers
architecture implements, and anything left over is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from asr_actor.offline.reader import ModelBin, ModelBinError

SPEC_NAME = "WhisperSpec"
GELU_EXACT = 3  # CTranslate2 ActivationType code for erf-based GELU

# Scalars whose value the transformers Whisper architecture hard-wires.
_FIXED_SCALARS: Mapping[str, int] = {
    "activation": GELU_EXACT,
    "pre_norm": 1,
    "alibi": 0,
    "scale_embeddings": 0,
    "start_from_zero_embedding": 0,
}
# CTranslate2's own cross-attention alignment settings; transformers reads alignment
# heads from generation_config instead (taken from the package's config.json).
_IGNORED_SCALARS = frozenset({"alignment_heads", "alignment_layer"})

_LAYER_RE = re.compile(r"^(encoder|decoder)/layer_(\d+)/")


@dataclass(frozen=True)
class ConvertedWhisper:
    """Transformers-named float32 weights plus the architecture read from the spec."""

    state_dict: Mapping[str, np.ndarray]
    architecture: Mapping[str, Any]  # WhisperConfig keyword arguments
    consumed: frozenset[str]  # every model.bin variable and alias name that was used


class _Taker:
    """Hands out spec variables by name and remembers which were taken."""

    def __init__(self, mb: ModelBin) -> None:
        self._mb = mb
        self.taken: set[str] = set()

    def __call__(self, name: str) -> np.ndarray:
        if name not in self._mb.variables and name not in self._mb.aliases:
            raise ModelBinError(f"{SPEC_NAME}: variable {name!r} is missing")
        self.taken.add(name)
        return self._mb.resolve(name)

    def scalar(self, name: str) -> int:
        value = self(name)
        if value.shape != ():
            raise ModelBinError(f"{SPEC_NAME}: {name!r} should be a scalar, has shape {value.shape}")
        return int(value)


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _split_rows(a: np.ndarray, parts: int, name: str) -> list[np.ndarray]:
    if a.shape[0] % parts:
        raise ModelBinError(f"{name}: dim 0 of {a.shape} does not split into {parts}")
    return [_f32(p) for p in np.split(a, parts, axis=0)]


def _zero_bias(bias: np.ndarray, name: str) -> None:
    # transformers' k_proj has no bias; a non-zero one here would be silently lost.
    if np.any(bias != 0):
        raise ModelBinError(f"{name}: key bias is not zero, transformers' k_proj has none")


def _linear(take: _Taker, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = _f32(take(f"{src}/weight"))
    out[f"{dst}.bias"] = _f32(take(f"{src}/bias"))


def _norm(take: _Taker, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = _f32(take(f"{src}/gamma"))
    out[f"{dst}.bias"] = _f32(take(f"{src}/beta"))


def _self_attention(take: _Taker, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    q_w, k_w, v_w = _split_rows(take(f"{src}/linear_0/weight"), 3, f"{src}/linear_0/weight")
    q_b, k_b, v_b = _split_rows(take(f"{src}/linear_0/bias"), 3, f"{src}/linear_0/bias")
    _zero_bias(k_b, f"{src}/linear_0/bias")
    out |= {f"{dst}.q_proj.weight": q_w, f"{dst}.q_proj.bias": q_b, f"{dst}.k_proj.weight": k_w}
    out |= {f"{dst}.v_proj.weight": v_w, f"{dst}.v_proj.bias": v_b}
    _linear(take, f"{src}/linear_1", f"{dst}.out_proj", out)


def _cross_attention(take: _Taker, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    _linear(take, f"{src}/linear_0", f"{dst}.q_proj", out)
    k_w, v_w = _split_rows(take(f"{src}/linear_1/weight"), 2, f"{src}/linear_1/weight")
    k_b, v_b = _split_rows(take(f"{src}/linear_1/bias"), 2, f"{src}/linear_1/bias")
    _zero_bias(k_b, f"{src}/linear_1/bias")
    out |= {f"{dst}.k_proj.weight": k_w, f"{dst}.v_proj.weight": v_w, f"{dst}.v_proj.bias": v_b}
    _linear(take, f"{src}/linear_2", f"{dst}.out_proj", out)


def _layer(take: _Taker, side: str, i: int, out: dict[str, np.ndarray]) -> None:
    src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
    _self_attention(take, f"{src}/self_attention", f"{dst}.self_attn", out)
    _norm(take, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", out)
    if side == "decoder":
        _cross_attention(take, f"{src}/attention", f"{dst}.encoder_attn", out)
        _norm(take, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm", out)
    _linear(take, f"{src}/ffn/linear_0", f"{dst}.fc1", out)
    _linear(take, f"{src}/ffn/linear_1", f"{dst}.fc2", out)
    _norm(take, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", out)


def _layer_count(mb: ModelBin, side: str) -> int:
    indices = {int(m.group(2)) for n in mb.variables if (m := _LAYER_RE.match(n)) and m.group(1) == side}
    if not indices or indices != set(range(len(indices))):
        raise ModelBinError(f"{SPEC_NAME}: {side} layers are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def _check_scalars(take: _Taker, mb: ModelBin) -> dict[str, int]:
    heads: dict[str, int] = {}
    for name in sorted(n for n in mb.variables if mb.variables[n].shape == ()):
        side, key = name.split("/", 1)
        if key == "num_heads":
            heads[side] = take.scalar(name)
        elif key in _FIXED_SCALARS:
            if (value := take.scalar(name)) != _FIXED_SCALARS[key]:
                raise ModelBinError(f"{name} = {value}, transformers' Whisper needs {_FIXED_SCALARS[key]}")
        elif key in _IGNORED_SCALARS:
            take(name)
    if set(heads) != {"encoder", "decoder"}:
        raise ModelBinError(f"{SPEC_NAME}: num_heads missing for {sorted({'encoder', 'decoder'} - set(heads))}")
    return heads


def convert_whisper_spec(mb: ModelBin) -> ConvertedWhisper:
    """Turn a parsed ``WhisperSpec`` into transformers weights; fail on any unused variable."""
    if mb.spec_name != SPEC_NAME:
        raise ModelBinError(f"spec {mb.spec_name!r} is not {SPEC_NAME}")
    take = _Taker(mb)
    heads = _check_scalars(take, mb)
    out: dict[str, np.ndarray] = {}
    for side in ("encoder", "decoder"):
        for i in range(_layer_count(mb, side)):
            _layer(take, side, i, out)
        out[f"model.{side}.embed_positions.weight"] = _f32(take(f"{side}/position_encodings/encodings"))
        _norm(take, f"{side}/layer_norm", f"model.{side}.layer_norm", out)
    for conv in ("conv1", "conv2"):
        _linear(take, f"encoder/{conv}", f"model.encoder.{conv}", out)
    out["model.decoder.embed_tokens.weight"] = _f32(take("decoder/embeddings/weight"))
    if mb.aliases.get("decoder/projection/weight") != "decoder/embeddings/weight":
        raise ModelBinError(f"{SPEC_NAME}: output projection is not tied to the embeddings")
    take("decoder/projection/weight")  # proj_out is tied to embed_tokens in transformers

    unused = (set(mb.variables) | set(mb.aliases)) - take.taken
    if unused:
        raise ModelBinError(f"{SPEC_NAME}: variables not mapped: {sorted(unused)}")
    return ConvertedWhisper(
        state_dict=out,
        architecture=_architecture(out, heads, mb),
        consumed=frozenset(take.taken),
    )


def _architecture(sd: Mapping[str, np.ndarray], heads: Mapping[str, int], mb: ModelBin) -> dict[str, Any]:
    vocab_size, d_model = sd["model.decoder.embed_tokens.weight"].shape
    return {
        "vocab_size": int(vocab_size),
        "d_model": int(d_model),
        "num_mel_bins": int(sd["model.encoder.conv1.weight"].shape[1]),
        "encoder_layers": _layer_count(mb, "encoder"),
        "decoder_layers": _layer_count(mb, "decoder"),
        "encoder_attention_heads": heads["encoder"],
        "decoder_attention_heads": heads["decoder"],
        "encoder_ffn_dim": int(sd["model.encoder.layers.0.fc1.weight"].shape[0]),
        "decoder_ffn_dim": int(sd["model.decoder.layers.0.fc1.weight"].shape[0]),
        "max_source_positions": int(sd["model.encoder.embed_positions.weight"].shape[0]),
        "max_target_positions": int(sd["model.decoder.embed_positions.weight"].shape[0]),
        "activation_function": "gelu",
        "tie_word_embeddings": True,
    }
