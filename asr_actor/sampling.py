"""Reproducible temperature fallback: every sampled pass seeded by the window it decodes.

A pass that fails a guard (:mod:`asr_actor.guards`) is decoded again at the next
temperature, by sampling. transformers samples with ``torch.multinomial`` on the global
random generator, over the whole batch at once: what a window gets depends on its batch
neighbours, their order and every draw made before, so the same file gave different text
from run to run. Here each sampled pass is drawn by the Gumbel-max trick with noise that
is a pure function of

- the window: a 64-bit BLAKE2b key of its float32 log-mel features (:func:`window_key`;
  for sequential long form, of the file's real frames), computed only when a pass samples;
- the seek offset inside it (transformers' loop may decode a window from a later timestamp);
- the temperature, the decoding step and the token id,

hashed by splitmix64's integer mixer on int64 tensors, so it is the same on every device and
in every batch. Sampling is from the full distribution at the pass's temperature, as
OpenAI's ``transcribe`` does. The same window, config and model then give the same text in
every run; a different device or dtype may still give different logits, so different text.

The sampler is the last logits processor of a sampled pass: it keeps the log-probability
of the token it picks (for the guards, :meth:`SeededSampler.logprobs`) and hands
transformers a distribution holding only that token, which ``multinomial`` must take.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Iterator, Sequence

import numpy as np

from asr_actor.passes import PassLog

SEEDING = "blake2b(window features)+seek+temperature+step -> splitmix64 Gumbel-max"  # run.json's record of it

_MASK = (1 << 64) - 1


def _int64(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN = _int64(0x9E3779B97F4A7C15)  # splitmix64's increment and multipliers
_MUL1 = _int64(0xBF58476D1CE4E5B9)
_MUL2 = _int64(0x94D049BB133111EB)
_UNIFORM_BITS = 24  # a float32 holds them exactly


def window_key(features: np.ndarray) -> int:
    """The key of one model input: a signed 64-bit BLAKE2b digest of its float32 features."""
    data = np.ascontiguousarray(features, dtype=np.float32).tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


class WindowKeys:
    """Each model input's :func:`window_key`, computed the first time a sampled pass asks for it."""

    def __init__(self, inputs: Sequence[np.ndarray]) -> None:
        self._inputs = inputs
        self._keys: dict[int, int] = {}

    def __getitem__(self, i: int) -> int:
        if i not in self._keys:
            self._keys[i] = window_key(self._inputs[i]) if i < len(self._inputs) else 0  # 0: a padding row
        return self._keys[i]


def mix(x: int) -> int:
    """splitmix64's finalizer on a Python int (the reference of :func:`mix_tensor`), as a signed int64."""
    x &= _MASK
    x = ((x ^ (x >> 30)) * (_MUL1 & _MASK)) & _MASK
    x = ((x ^ (x >> 27)) * (_MUL2 & _MASK)) & _MASK
    return _int64(x ^ (x >> 31))


def _shr(x, s: int):
    return (x >> s) & ((1 << (64 - s)) - 1)  # logical: torch shifts int64 arithmetically


def mix_tensor(x):
    """splitmix64's finalizer on an int64 tensor (products wrap, as on every torch device)."""
    x = (x ^ _shr(x, 30)) * _MUL1
    x = (x ^ _shr(x, 27)) * _MUL2
    return x ^ _shr(x, 31)


def pass_key(window: int, seek: int, temperature: float) -> int:
    """The key of one window's pass: its window key, seek offset (frames) and temperature."""
    return mix(mix(window + _GOLDEN * seek) + _GOLDEN * round(temperature * 1000))


def gumbel(keys, step: int, vocab: int):
    """Gumbel noise ``[rows, vocab]`` for decoding step ``step`` of passes ``keys`` (an int64 tensor)."""
    import torch

    base = mix_tensor(keys + _int64((_GOLDEN * step) & _MASK))[:, None]
    tokens = torch.arange(vocab, device=keys.device, dtype=torch.int64)[None, :]
    bits = _shr(mix_tensor(base + tokens * _MUL2), 64 - _UNIFORM_BITS)
    uniform = (bits.float() + 0.5) / (1 << _UNIFORM_BITS)
    return -torch.log(-torch.log(uniform))


class SeededSampler:
    """The last logits processor of every pass: picks a sampled pass's tokens by :func:`gumbel`,
    knowing from ``log`` (:class:`asr_actor.passes.PassLog`) which window and seek each row holds."""

    def __init__(self, log: PassLog) -> None:
        self.window_keys: WindowKeys | None = None  # the inputs' keys, set around each generate call
        self._log = log
        self._pass = -1  # the pass the picks below belong to (PassLog.number)
        self._picked: list[Any] = []  # per step of a sampled pass: each row's log-probability of its token
        self._stacked: Any = None
        self._keys: Any = None  # the sampled pass's keys, one per row

    def logprobs(self, index: int):
        """Log-probabilities (at temperature 1, as the guards want) of row ``index``'s tokens in the pass
        being judged, when it was sampled here; None for a greedy pass (its scores are intact)."""
        if self._pass != self._log.number or not self._picked:
            return None
        if self._stacked is None:
            import torch

            self._stacked = torch.stack(self._picked)
        return self._stacked[:, index]

    def __call__(self, input_ids, scores):
        if self._pass != self._log.number:  # a pass's first step
            self._pass, self._picked, self._stacked, self._keys = self._log.number, [], None, None
        config = self._log.config
        if config is None or not config.do_sample:
            return scores
        import torch

        if self._keys is None:
            self._keys = torch.tensor(self._pass_keys(scores.shape[0], float(config.temperature)), dtype=torch.int64,
                                      device=scores.device)
        logits = scores.float()
        noise = gumbel(self._keys, input_ids.shape[-1], scores.shape[-1])
        choice = torch.argmax(logits / float(config.temperature) + noise, dim=-1)
        self._picked.append(torch.log_softmax(logits, dim=-1).gather(-1, choice[:, None]).squeeze(-1))
        forced = torch.full_like(scores, float("-inf"))
        return forced.scatter_(-1, choice[:, None], 0.0)

    def _pass_keys(self, rows: int, temperature: float) -> list[int]:
        if self.window_keys is None:
            raise RuntimeError("a sampled pass outside asr_actor.sampling.keyed(): its windows have no keys")
        keys = []
        for i in range(rows):
            at = self._log.input_of(i)
            keys.append(0 if at is None else pass_key(self.window_keys[at[0]], at[1], temperature))  # 0: padding
        return keys


def install(model: Any, log: PassLog) -> SeededSampler:
    """Give ``model`` a :class:`SeededSampler` (``model.asr_sampler``), following its passes through ``log``."""
    model.asr_sampler = SeededSampler(log)
    return model.asr_sampler


@contextlib.contextmanager
def keyed(model: Any, inputs: Sequence[np.ndarray]) -> Iterator[None]:
    """While ``model`` decodes ``inputs`` (host features, one per batch row; padding rows after them):
    its sampled passes are keyed by those inputs."""
    sampler: SeededSampler = model.asr_sampler
    sampler.window_keys = WindowKeys(inputs)
    try:
        yield
    finally:
        sampler.window_keys = None
