"""Language detection with its probability, and more of the file when the first window is unsure.

Whisper reads a window's language from one decoder step after ``<|startoftranscript|>``:
the probabilities of the language tokens alone (every other token masked, as OpenAI and
transformers do). A row keeps the most likely language and its probability. When that
probability is under ``decoding.language_detection_threshold`` (a file that opens with
music, noise or another language), up to ``decoding.language_detection_windows`` windows
of the file are read and their distributions averaged, as faster-whisper's
``language_detection_segments`` looks at more of a file before deciding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class Detected:
    """A language decision: the code and its probability."""

    language: str
    probability: float


def language_tokens(loaded: Any) -> tuple[list[str], list[int]]:
    """The model's language codes (``"en"``, ``"de"``…) and their token ids, in token order."""
    items = sorted(loaded.model.generation_config.lang_to_id.items(), key=lambda kv: kv[1])
    return [k.strip("<|>") for k, _ in items], [v for _, v in items]


def distributions(loaded: Any, encoder_outputs: Any = None, input_features: Any = None) -> np.ndarray:
    """``[rows, languages]`` probabilities of each row's language tokens (:func:`language_tokens` order)."""
    import torch

    model = loaded.model
    inputs = {"encoder_outputs": encoder_outputs} if encoder_outputs is not None else {"input_features": input_features}
    rows = (encoder_outputs[0] if encoder_outputs is not None else input_features).shape[0]
    start = torch.full((rows, 1), model.generation_config.decoder_start_token_id, device=model.device, dtype=torch.long)
    with torch.no_grad():
        logits = model(**inputs, decoder_input_ids=start, use_cache=False).logits[:, -1]
    _, ids = language_tokens(loaded)
    return torch.softmax(logits[:, ids].float(), dim=-1).cpu().numpy()


def decide(codes: Sequence[str], dists: Sequence[np.ndarray]) -> Detected:
    """The language of windows ``dists`` (one or more): their mean distribution's most likely language."""
    mean = np.mean(np.stack(dists), axis=0)
    best = int(np.argmax(mean))
    return Detected(codes[best], float(mean[best]))


def unsure(detected: Detected, threshold: float) -> bool:
    """Whether a first window's decision is to be checked against more of the file."""
    return detected.probability < threshold
