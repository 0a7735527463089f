"""Run the model: full batches of 30 s windows through ``generate``, and language detection.

Windows from many files share each batch. A batch that fails (out of memory, a
kernel error) is split in halves and retried, so one bad window costs only itself: it
comes back as an error string naming the stage, never as an exception. (Named for
``generate``: "decode" in this project is the audio's, :mod:`asr_actor.audio`; the
options keep Whisper's word, ``decoding:`` and :class:`asr_actor.config.DecodingConfig`.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from asr_actor.config import DecodingConfig
from asr_actor.encoder_once import encoder_once
from asr_actor.errors import describe
from asr_actor.model import LoadedModel
from asr_actor.guards import SIGNALS, Signals, padded
from asr_actor.language import distributions, language_tokens
from asr_actor.sampling import keyed
from asr_actor.segments import RawSegment

STAGE = "transcribe"
FRAMES_PER_S = 100  # log-mel frames per second of audio (hop 160 at 16 kHz)
T = TypeVar("T")


@dataclass(frozen=True)
class Decoded:
    """One decoded window: its segments, and when its language was detected, the distribution the language
    was read from (:func:`asr_actor.language.language_tokens` order; None when the window had a language)."""

    segments: list[RawSegment]
    languages: np.ndarray | None


@dataclass(frozen=True)
class WindowRequest:
    """One window to decode."""

    features: np.ndarray  # [n_mels, 3000] float32 log-mel
    task: str
    language: str | None  # None: detect it (multilingual models), from the encoder pass the decoding uses
    prompt: str | None  # Whisper's prompt (the row's, else decoding.initial_prompt); None = none
    duration_s: float  # audio in the window, for sorting similar windows together


def to_model_input(loaded: LoadedModel, features: np.ndarray):
    """Features on the model's device in its dtype: cast on the host (a float16 model's copy is half
    the bytes), from page-locked memory on a GPU so the copy is asynchronous and never stalls the host."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(features)).to(loaded.model.dtype)
    if loaded.model.device.type == "cuda":
        x = x.pin_memory()
    return x.to(loaded.model.device, non_blocking=True)


def compile_mode(loaded: LoadedModel, cfg: DecodingConfig) -> str:
    """``decoding.compile`` resolved for this model: "off", "static" or "on"."""
    if cfg.compile != "auto":
        return cfg.compile
    fits = cfg.num_beams == 1 and not cfg.word_timestamps and cfg.long_form == "chunked"  # fixed-shape batches
    return "on" if loaded.model.device.type == "cuda" and fits else "off"


def _cache_kwargs(loaded: LoadedModel, mode: str) -> dict[str, Any]:
    """``generate`` options for a static cache; with "on", transformers compiles the decoder step itself
    (on a GPU with CUDA graphs); on a CPU it has to be told to."""
    if mode == "off":
        return {}
    if mode == "static":
        return {"cache_implementation": "static", "disable_compile": True}
    from transformers import CompileConfig

    config = CompileConfig()
    config._compile_all_devices = loaded.model.device.type != "cuda" or None
    return {"cache_implementation": "static", "compile_config": config}


def _padded(features: np.ndarray, kwargs: dict[str, Any], rows: int) -> tuple[np.ndarray, dict[str, Any]]:
    """``features`` and the per-row options grown to ``rows`` with silent-valued windows (a static cache's shape)."""
    extra = rows - len(features)
    features = np.concatenate([features, np.zeros((extra, *features.shape[1:]), features.dtype)])
    kwargs = dict(kwargs)
    if isinstance(kwargs.get("language"), list):
        kwargs["language"] = kwargs["language"] + kwargs["language"][-1:] * extra
    if "attention_mask" in kwargs:
        import torch

        mask = kwargs["attention_mask"]
        kwargs["attention_mask"] = torch.cat([mask, mask[-1:].expand(extra, -1)])
    return features, kwargs


def generate_segments(
    loaded: LoadedModel, features: np.ndarray, kwargs: dict[str, Any], batch_size: int | None = None,
    keys: Sequence[np.ndarray] | None = None,
) -> list[list[RawSegment]]:
    """``generate`` with timestamps; each input's segments, in seconds of that input.

    Within one input transformers runs OpenAI's seek loop: when a pass ends inside speech it
    decodes again from the last timestamp, so no trailing words are dropped (a single pass
    per window measured 4.3% WER on the long fixture against 2.8% with the loop). Each pass
    is judged by :mod:`asr_actor.guards` (skipped as no speech, or redone hotter). With a
    static cache a smaller batch is padded to ``batch_size`` rows, so every call has one
    shape (one cache, one set of CUDA graphs); the padding rows are skipped after one pass.
    A pass redone hotter samples seeded by its input (:mod:`asr_actor.sampling`): ``keys``, the
    host features that identify each input (default: ``features``).
    """
    x, padded_kwargs, real = _model_input(loaded, features, kwargs, batch_size)
    return _generate_on(loaded, x, padded_kwargs, real, features if keys is None else keys)


def generate_detecting(
    loaded: LoadedModel, features: np.ndarray, kwargs: dict[str, Any], batch_size: int | None = None,
) -> tuple[np.ndarray, list[list[RawSegment]]]:
    """Each window's language distribution, then its segments decoded in its most likely language:
    :func:`generate_segments` with one encoder pass serving both (:mod:`asr_actor.encoder_once`)."""
    import torch

    x, padded_kwargs, real = _model_input(loaded, features, kwargs, batch_size)
    codes, _ = language_tokens(loaded)
    with torch.inference_mode(), encoder_once(loaded.model, x) as encoded:
        dists = distributions(loaded, encoder_outputs=encoded)
        likely = [codes[int(k)] for k in dists.argmax(axis=-1)]
        return dists[:real], _generate_on(loaded, x, {**padded_kwargs, "language": likely}, real, features)


def _model_input(loaded: LoadedModel, features: np.ndarray, kwargs: dict[str, Any], batch_size: int | None):
    real = len(features)
    if kwargs.get("cache_implementation") == "static" and batch_size and real < batch_size:
        features, kwargs = _padded(features, kwargs, batch_size)
    return to_model_input(loaded, features), kwargs, real


def _generate_on(loaded: LoadedModel, x, kwargs: dict[str, Any], real: int,
                 keys: Sequence[np.ndarray]) -> list[list[RawSegment]]:
    import torch

    with torch.inference_mode(), padded(loaded.model, real), keyed(loaded.model, keys):
        out = loaded.model.generate(x, return_timestamps=True, return_segments=True, **kwargs)
    return _raw_segments(out["segments"][:real])


def _raw_segments(per_input: list[list[dict[str, Any]]]) -> list[list[RawSegment]]:
    """transformers' segments of every input, with their passes' signals, token probabilities and times.

    Their tokens, bounds and token times are tensors on the model's device: each kind is
    joined there and copied to the host once for the whole batch, not once per segment.
    """
    import torch

    flat = [seg for segments in per_input for seg in segments]
    if not flat:
        return [[] for _ in per_input]
    device = flat[0]["tokens"].device
    tokens = _split(torch.cat([seg["tokens"].reshape(-1) for seg in flat]).tolist(), [len(s["tokens"]) for s in flat])
    bounds = torch.stack([torch.as_tensor(seg[k], dtype=torch.float64).to(device) for seg in flat
                          for k in ("start", "end")]).tolist()
    times: list = [None] * len(flat)
    if all(seg.get("token_timestamps") is not None for seg in flat):
        joined = torch.cat([seg["token_timestamps"].reshape(-1).to(device) for seg in flat]).tolist()
        times = _split(joined, [len(seg["token_timestamps"]) for seg in flat])
    made = iter(_raw_segment(seg, toks, bounds[2 * k], bounds[2 * k + 1], times[k])
                for k, (seg, toks) in enumerate(zip(flat, tokens)))
    return [[next(made) for _ in segments] for segments in per_input]


def _split(values: list, lengths: list[int]) -> list[list]:
    out, at = [], 0
    for n in lengths:
        out.append(values[at : at + n])
        at += n
    return out


def _raw_segment(seg: dict[str, Any], tokens: list[int], start: float, end: float,
                 times: list[float] | None) -> RawSegment:
    result = seg.get("result")
    signals: Signals | None = result.get(SIGNALS) if isinstance(result, dict) else None
    lo, hi = (int(i) for i in seg["idxs"])
    probs = None
    if signals is not None and signals.token_probs:
        probs = list(signals.token_probs[lo - signals.first_index : hi - signals.first_index])
    return RawSegment(start, end, tokens, signals, probs, times)


def prompt_ids(loaded: LoadedModel, text: str):
    """``<|startofprev|>`` and the text's tokens, the last ``max_target_positions // 2 - 1`` of them
    when longer (as OpenAI keeps the end of an initial prompt), on the model's device."""
    ids = loaded.processor.tokenizer.get_prompt_ids(text, return_tensors="pt")
    keep = loaded.model.config.max_target_positions // 2 - 1
    if len(ids) > keep + 1:
        import torch

        ids = torch.cat([ids[:1], ids[-keep:]])
    return ids.to(loaded.model.device)


def generate_kwargs(
    loaded: LoadedModel, cfg: DecodingConfig, task: str, languages: Sequence[str | None], prompt: str | None = None,
) -> dict[str, Any]:
    """Decoding options shared by the chunked and the sequential paths: greedy unless beams are asked for,
    OpenAI's guards (temperature fallback, no-speech skip) as ``cfg`` sets them, and the batch's prompt."""
    kwargs: dict[str, Any] = {"num_beams": cfg.num_beams, "do_sample": False, "condition_on_prev_tokens": False,
                              "output_scores": True, "return_dict_in_generate": True,
                              "logits_processor": [loaded.model.asr_sampler]}
    kwargs["temperature"] = cfg.temperatures if len(cfg.temperatures) > 1 else cfg.temperatures[0]
    for name in ("no_speech_threshold", "logprob_threshold", "compression_ratio_threshold"):
        if getattr(cfg, name) is not None:
            kwargs[name] = getattr(cfg, name)
    if cfg.word_timestamps:
        kwargs["return_token_timestamps"] = True
    if loaded.info.multilingual:
        kwargs["language"] = list(languages)
        kwargs["task"] = task
    if cfg.max_new_tokens:
        kwargs["max_new_tokens"] = cfg.max_new_tokens
    if loaded.info.dummy_tokens:  # random weights: exactly this many tokens, whatever they are
        kwargs["min_new_tokens"] = kwargs["max_new_tokens"] = loaded.info.dummy_tokens
    if prompt:
        kwargs["prompt_ids"] = prompt_ids(loaded, prompt)
    kwargs.update(_cache_kwargs(loaded, compile_mode(loaded, cfg)))
    return kwargs


def _generate(loaded: LoadedModel, reqs: Sequence[WindowRequest], cfg: DecodingConfig) -> list[Decoded]:
    """One ``generate`` call over ``reqs`` (one task and prompt; all to detect, or none)."""
    kwargs = generate_kwargs(loaded, cfg, reqs[0].task, [r.language for r in reqs], reqs[0].prompt)
    if cfg.word_timestamps:  # the alignment looks only at each window's audio, not at its padding
        import torch

        frames = reqs[0].features.shape[-1]
        real = torch.tensor([min(frames, math.ceil(r.duration_s * FRAMES_PER_S)) for r in reqs])
        kwargs["attention_mask"] = (torch.arange(frames)[None, :] < real[:, None]).long().to(loaded.model.device)
    features = np.stack([r.features for r in reqs])
    if _detects(loaded, reqs[0]):
        dists, segments = generate_detecting(loaded, features, kwargs, cfg.batch_size)
        return [Decoded(s, d) for s, d in zip(segments, dists)]
    return [Decoded(s, None) for s in generate_segments(loaded, features, kwargs, cfg.batch_size)]


def _detects(loaded: LoadedModel, req: WindowRequest) -> bool:
    return req.language is None and loaded.info.multilingual


def _run_splitting(fn: Callable[[list[T]], list], items: list[T]) -> list:
    """``fn(items)``; on failure retry each half, down to single items that fail alone."""
    try:
        return fn(items)
    except Exception as exc:  # noqa: BLE001 - any model failure must stay inside its rows
        if len(items) == 1:
            return [f"{STAGE}: {type(exc).__name__}: {describe(exc)}"]
        mid = len(items) // 2
        return _run_splitting(fn, items[:mid]) + _run_splitting(fn, items[mid:])


def run_in_batches(
    n: int,
    group_of: Callable[[int], tuple],
    size_of: Callable[[int], float],
    batch_size: int,
    fn: Callable[[list[int]], list],
    on_batch: Callable[[list[int]], None] | None = None,
) -> list:
    """``fn`` over batches of item indices; one result (or error string) per item.

    Items are grouped by ``group_of`` (task, prompt...: one of each per ``generate`` call) and sorted
    longest first so items of similar length share a batch, then cut into batches of
    ``batch_size``. ``on_batch(indices)`` follows each call (progress).
    """
    results: list = [None] * n
    order = sorted(range(n), key=lambda i: (group_of(i), -size_of(i)))
    for lo in range(0, n, batch_size):
        chunk = order[lo : lo + batch_size]
        for group in sorted({group_of(i) for i in chunk}):
            idx = [i for i in chunk if group_of(i) == group]
            for i, out in zip(idx, _run_splitting(fn, idx)):
                results[i] = out
            if on_batch is not None:
                on_batch(idx)
    return results


def generate_windows(
    loaded: LoadedModel, reqs: Sequence[WindowRequest], cfg: DecodingConfig,
    on_windows: Callable[[int], None] | None = None,
) -> list[Decoded | str]:
    """Segments per request, in window time (and the language of those asking for detection),
    or an error string; ``on_windows(n)`` after each ``generate``."""
    return run_in_batches(
        len(reqs),
        lambda i: (reqs[i].task, reqs[i].prompt or "", _detects(loaded, reqs[i])),
        lambda i: reqs[i].duration_s,
        cfg.batch_size,
        lambda idx: _generate(loaded, [reqs[i] for i in idx], cfg),
        None if on_windows is None else lambda idx: on_windows(len(idx)),
    )


def detect_languages(loaded: LoadedModel, features: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray | str]:
    """The language distribution of each window (:mod:`asr_actor.language`), or an error string: windows
    read for their language only (sequential long form, whose files transformers' loop encodes again,
    and the further windows of a file whose first was unsure)."""
    import torch

    def detect(items: list[np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            return list(distributions(loaded, input_features=to_model_input(loaded, np.stack(items))))

    out: list[np.ndarray | str] = []
    for lo in range(0, len(features), batch_size):
        out += _run_splitting(detect, list(features[lo : lo + batch_size]))
    return out
