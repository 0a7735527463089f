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
    """The last logits processor of every pass: picks a sampled pass's tokens by :func:`gumbel`.

    transformers tells it each window batch (:meth:`begin`, from ``generate_with_fallback``);
    the guards tell it after each pass which rows go on to the next temperature
    (:meth:`judged`), so it knows which window every row of a fallback pass holds.
    """

    def __init__(self) -> None:
        self.window_keys: WindowKeys | None = None  # the inputs' keys, set around each generate call
        self._config: Any = None
        self._seek: list[int] | Any = None
        self._rows: list[int] = []  # input index of each row of the pass under way
        self._next: list[int] = []
        self._ended = False
        self._picked: list[Any] = []  # per step of a sampled pass: each row's log-probability of its token
        self._stacked: Any = None
        self._keys: Any = None  # the sampled pass's keys, one per row

    def begin(self, seek: Any, batch_idx_map: Sequence[int], generation_config: Any) -> None:
        """A window batch starts: row ``i`` of its first pass is input ``batch_idx_map[i]`` at ``seek``."""
        self._config = generation_config  # transformers sets its temperature and do_sample before each pass
        self._seek = seek.clone() if hasattr(seek, "clone") else list(seek)
        self._rows, self._next, self._ended = list(batch_idx_map), [], False
        self._picked, self._stacked, self._keys = [], None, None

    def judged(self, index: int, fallback: bool) -> None:
        """Row ``index`` of the pass just made was judged; ``fallback``: it is decoded again, hotter."""
        self._ended = True
        if fallback:
            self._next.append(self._rows[index])

    def logprobs(self, index: int):
        """Log-probabilities (at temperature 1, as the guards want) of row ``index``'s tokens in the pass
        just made, when it was sampled here; None for a greedy pass (its scores are intact)."""
        if not self._picked:
            return None
        if self._stacked is None:
            import torch

            self._stacked = torch.stack(self._picked)
        return self._stacked[:, index]

    def __call__(self, input_ids, scores):
        if self._ended:  # the first step of a fallback pass: the rows the guards sent on
            self._rows, self._next, self._ended = self._next, [], False
            self._picked, self._stacked, self._keys = [], None, None
        config = self._config
        if config is None or not config.do_sample:
            return scores
        import torch

        if self._keys is None:
            self._keys = torch.tensor(self._pass_keys(scores.shape[0], float(config.temperature)), dtype=torch.int64,
                                      device=scores.device)
        logits = scores.float()
        choice = torch.argmax(logits / float(config.temperature) + gumbel(self._keys, input_ids.shape[-1], scores.shape[-1]),
                              dim=-1)
        self._picked.append(torch.log_softmax(logits, dim=-1).gather(-1, choice[:, None]).squeeze(-1))
        forced = torch.full_like(scores, float("-inf"))
        return forced.scatter_(-1, choice[:, None], 0.0)

    def _pass_keys(self, rows: int, temperature: float) -> list[int]:
        if self.window_keys is None:
            raise RuntimeError("a sampled pass outside asr_actor.sampling.keyed(): its windows have no keys")
        keys = []
        for i in range(rows):
            if i < len(self._rows):
                j = self._rows[i]
                keys.append(pass_key(self.window_keys[j], int(self._seek[j]), temperature))
            else:
                keys.append(0)  # a static cache's padding row
        return keys


def install(model: Any) -> SeededSampler:
    """Give ``model`` a :class:`SeededSampler` (``model.asr_sampler``) that each window batch tells where it starts."""
    sampler = SeededSampler()
    original = model.generate_with_fallback

    def generate_with_fallback(*args: Any, **kwargs: Any):
        sampler.begin(kwargs["seek"], kwargs["batch_idx_map"], kwargs["generation_config"])
        return original(*args, **kwargs)

    model.generate_with_fallback = generate_with_fallback
    model.asr_sampler = sampler
    return sampler


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
