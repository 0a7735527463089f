"""The sequential long-form option: transformers' own ``generate`` over whole files.

OpenAI's algorithm as transformers implements it: decode 30 s, move the window to the
last complete segment's end, repeat. Files advance together in a batch, but a file's
windows are decoded one after another, so batches thin out as short files finish.
Kept as an option and as the accuracy reference for the default chunked mode.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from asr_actor.audio import SAMPLE_RATE
from asr_actor.config import DecodingConfig
from asr_actor.generation import generate_kwargs, generate_segments, run_in_batches
from asr_actor.model import LoadedModel
from asr_actor.segments import RawSegment
from asr_actor.windows import WINDOW_SAMPLES


def _generate_files(
    loaded: LoadedModel, items: list[tuple[np.ndarray, str, str | None, str | None]], cfg: DecodingConfig
) -> list[list[RawSegment]]:
    import torch

    feats = loaded.processor.feature_extractor(
        [w for w, _, _, _ in items], sampling_rate=SAMPLE_RATE, return_tensors="np",
        truncation=False, padding="longest", return_attention_mask=True,
    )
    kwargs = generate_kwargs(loaded, cfg, items[0][1], [lang for _, _, lang, _ in items], items[0][3])
    kwargs["attention_mask"] = torch.from_numpy(feats["attention_mask"]).to(loaded.model.device)
    frames = feats["attention_mask"].sum(axis=-1)  # each file's own, whatever the longest file in the batch
    keys = [f[:, :n] for f, n in zip(feats["input_features"], frames)]
    return generate_segments(loaded, feats["input_features"], kwargs, keys=keys)


def transcribe_sequential(
    loaded: LoadedModel,
    waveforms: Sequence[np.ndarray],
    tasks: Sequence[str],
    languages: Sequence[str | None],
    prompts: Sequence[str | None],
    cfg: DecodingConfig,
    on_windows: Callable[[int], None] | None = None,
) -> list[list[RawSegment] | str]:
    """Segments per file (or an error string), ``cfg.batch_size`` files per ``generate``;
    ``on_windows(n)`` after each, ``n`` the 30 s windows those files span."""
    return run_in_batches(
        len(waveforms),
        lambda i: (tasks[i], prompts[i] or ""),
        lambda i: len(waveforms[i]),
        cfg.batch_size,
        lambda idx: _generate_files(loaded, [(waveforms[i], tasks[i], languages[i], prompts[i]) for i in idx], cfg),
        None if on_windows is None else lambda idx: on_windows(sum(-(-len(waveforms[i]) // WINDOW_SAMPLES) for i in idx)),
    )
