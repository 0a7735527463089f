"""No text from silence or noise: Whisper's own signals judge each decoding pass, as OpenAI's ``transcribe`` does.

transformers' Whisper ``generate`` runs OpenAI's loop in the short and the long form
alike: decode at temperature 0; if the pass looks wrong, decode it again at the next
temperature; if it looks like no speech, skip it. :func:`install` gives a loaded model
this module's judgement of a pass (it replaces the model's ``_need_fallback``, the one
place transformers asks), with three signals:

- ``no_speech_prob``: the ``<|nospeech|>`` probability at the start of the transcript
  (transformers' own ``WhisperNoSpeechDetection``);
- ``avg_logprob``: the mean log-probability of the pass's *text* tokens (of its end
  token when it has none). OpenAI averages the timestamp and end tokens in too, which
  Whisper's rules make near-certain: one hallucinated word between two timestamps then
  averages about -0.7 and slips past the -1.0 guard (measured with tiny.en: " you" on
  30 s of digital silence and on a 0.1 s clip, no-speech probability 0.95 both, -0.79
  with the end token, -1.5 without); on speech the two averages hardly differ;
- ``compression_ratio``: OpenAI's, the text's UTF-8 bytes over their zlib size
  (transformers compresses token ids, a ratio on another scale).

A pass is skipped when ``no_speech_prob > no_speech_threshold`` and ``avg_logprob <
logprob_threshold`` (or that threshold is off); it is decoded again at the next temperature when
``compression_ratio > compression_ratio_threshold`` or ``avg_logprob <
logprob_threshold``. The signals and token probabilities are kept on the pass's output,
so every segment reports them.
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from asr_actor.passes import Pass, PassLog
from asr_actor.sampling import SeededSampler

SIGNALS = "asr_batch_signals"  # key of a pass's Signals in transformers' per-pass output dict


@dataclass(frozen=True)
class Signals:
    """What one decoding pass of one window said about itself."""

    avg_logprob: float | None
    no_speech_prob: float | None
    compression_ratio: float
    temperature: float
    token_probs: tuple[float, ...]  # probability of each generated token of the pass, in order (empty for beams)
    first_index: int  # where the pass's generated tokens start in its sequence (after the decoder prompt)


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _token_logprobs(out: dict[str, Any], tokens: Any, temperature: float, sampled: Any = None) -> np.ndarray | None:
    """Log-probability of each of ``tokens`` under the pass's (processed) scores; None for beam search.
    ``sampled``: the sampler's own record of them (a sampled pass's scores hold only its picks)."""
    import torch

    if sampled is not None:
        return sampled[: min(len(sampled), tokens.shape[0])].float().cpu().numpy()
    scores = out.get("scores")
    if not scores or "sequences_scores" in out:
        return None
    steps = torch.stack(list(scores)).float()
    n = min(steps.shape[0], tokens.shape[0])
    logprobs = torch.log_softmax(steps[:n] * (temperature if temperature > 0 else 1.0), dim=-1)
    picked = logprobs.gather(-1, tokens[:n].to(logprobs.device).long().unsqueeze(-1)).squeeze(-1)
    return picked.cpu().numpy()


def judge(out: dict[str, Any], tokens: Any, no_speech_prob: float | None, temperature: float, end_token: int,
          timestamp_begin: int, decode_text, sampled: Any = None) -> Signals:
    """The signals of one pass (``tokens``: its generated tokens, end token included; ``sampled``:
    :meth:`asr_actor.sampling.SeededSampler.logprobs` of a sampled pass)."""
    logprobs = _token_logprobs(out, tokens, temperature, sampled)
    ids = tokens.tolist()
    text_ids = [t for t in ids if t < end_token]
    if logprobs is None:
        avg = float(out["sequences_scores"]) if "sequences_scores" in out else None
        probs: tuple[float, ...] = ()
    else:
        head = ids[: len(logprobs)]
        keep = np.array([t < end_token for t in head], dtype=bool)  # the words' tokens
        if not keep.any():  # no text: the end token alone, as OpenAI would average it
            keep = np.array([t < timestamp_begin for t in head], dtype=bool)
        avg = float(logprobs[keep].mean()) if keep.any() else 0.0
        probs = tuple(float(p) for p in np.exp(logprobs))
    first = int(out["sequences"].shape[-1]) - len(out["scores"]) if out.get("scores") is not None else 0
    return Signals(avg, no_speech_prob, compression_ratio(decode_text(text_ids)), float(temperature or 0.0), probs, first)


@contextlib.contextmanager
def padded(model: Any, real: int) -> Iterator[None]:
    """While a batch padded past its first ``real`` rows (a static cache's fixed shape) is decoded:
    every padding row's first pass is skipped, so it is never decoded again hotter."""
    model.asr_real_rows = real
    try:
        yield
    finally:
        model.asr_real_rows = None


def install(model: Any, tokenizer: Any, passes: PassLog, sampler: SeededSampler, judge_only: bool = False) -> None:
    """Make ``model.generate`` judge its passes with :func:`judge` (thresholds come from each call's options),
    a sampled pass by ``sampler``'s record of its picks, and report each judged row to ``passes``.

    ``judge_only`` (dummy weights): every pass is scored as usual (same work) but kept as it
    is, never redone or skipped, so each window costs exactly one fixed-length pass.
    """
    from transformers.generation.logits_process import WhisperNoSpeechDetection

    timestamp_begin = model.generation_config.no_timestamps_token_id + 1
    end_token = int(model.generation_config.eos_token_id)

    def decode_text(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True).strip()

    def need_fallback(seek_sequence, seek_outputs, index, logits_processor, generation_config, vocab_size, temperature):
        fallback, skip, signals = decide(seek_sequence, seek_outputs, index, logits_processor, generation_config,
                                         temperature)
        passes.judged(index, Pass(seek_sequence, seek_outputs[index], signals, fallback, skip))
        return fallback, skip

    def decide(seek_sequence, seek_outputs, index, logits_processor, generation_config, temperature):
        real = getattr(model, "asr_real_rows", None)
        if real is not None and index >= real:  # padding: a later pass only ever holds real rows
            return False, True, None
        out = seek_outputs[index]
        detector = next((p for p in logits_processor or () if isinstance(p, WhisperNoSpeechDetection)), None)
        nsp = float(detector.no_speech_prob[index]) if detector is not None else None
        signals = judge(out, seek_sequence, nsp, temperature or 0.0, end_token, timestamp_begin, decode_text,
                        sampler.logprobs(index))
        out[SIGNALS] = signals
        avg, low = signals.avg_logprob, False
        if generation_config.logprob_threshold is not None and avg is not None:
            low = avg < generation_config.logprob_threshold
        ratio_limit = generation_config.compression_ratio_threshold
        fallback = low or (ratio_limit is not None and signals.compression_ratio > ratio_limit)
        quiet = generation_config.no_speech_threshold is not None and nsp is not None \
            and nsp > generation_config.no_speech_threshold
        skip = quiet and (low or generation_config.logprob_threshold is None)  # OpenAI: confident text overrides
        if judge_only:
            return False, False, signals
        return (False, True, signals) if skip else (fallback, False, signals)

    model._need_fallback = need_fallback
