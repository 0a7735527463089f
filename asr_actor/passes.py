"""A window batch's passes through the temperature fallback: which window each row holds, which pass each keeps.

transformers' ``generate_with_fallback`` decodes a batch of windows at the first
temperature, then decodes again, hotter, the rows the guards (:mod:`asr_actor.guards`)
send on, until none is left or the temperatures run out. :class:`PassLog` follows it:
the guards report every row of every pass (:meth:`PassLog.judged`), so the sampler
(:mod:`asr_actor.sampling`) knows which window a row of a fallback pass holds, and two
things transformers' loop does otherwise than OpenAI's and faster-whisper's are set right
when it returns (:meth:`PassLog.kept`):

- When every temperature fails, transformers keeps the last pass: a sample at the hottest
  temperature, the least likely text of all (on near-silence "Thank you.", after speech a
  sign-off, in translation unrelated words). A window keeps instead the most likely of its
  passes (highest average log-probability) among those under the compression-ratio limit,
  else among all, as faster-whisper does; that pass's own no-speech decision then applies.
- transformers files the skip decision of row ``i`` of a fallback pass (a subset of the
  batch) under row ``i`` of the batch, so one window could be skipped, or kept, for
  another; each window here gets the decision of the pass it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from asr_actor.guards import Signals


@dataclass(frozen=True)
class Pass:
    """One row of one pass, as the guards judged it."""

    sequence: Any  # its generated tokens as judged (end token included)
    output: Any  # transformers' per-row output of the pass (scores, and the signals under guards.SIGNALS)
    signals: Signals | None
    fallback: bool  # decoded again, hotter
    skip: bool  # no speech: the window is skipped


def best(passes: Sequence[Pass], ratio_limit: float | None) -> Pass:
    """The pass a window keeps when all of them failed: the most likely among those that do not loop, else of all."""
    scored = [p for p in passes if p.signals is not None and p.signals.avg_logprob is not None]
    if not scored:
        return passes[-1]
    calm = [p for p in scored if ratio_limit is None or p.signals.compression_ratio <= ratio_limit]
    return max(calm or scored, key=lambda p: p.signals.avg_logprob)


class PassLog:
    """The passes of the window batch under way (one ``generate_with_fallback`` call)."""

    def __init__(self) -> None:
        self.config: Any = None  # transformers' generation config: it sets temperature and do_sample per pass
        self.number = 0  # passes begun since the model was loaded: a pass's identity
        self._inputs: list[int] = []  # the batch's rows: the input each holds
        self._seek: Any = None
        self._positions: list[int] = []  # each row of the pass under way: its row in the batch's first pass
        self._next: list[int] = []
        self._judged = 0
        self._passes: dict[int, list[Pass]] = {}  # each window's candidates: its best pass so far and its last

    def begin(self, seek: Any, batch_idx_map: Sequence[int], generation_config: Any) -> None:
        """A window batch starts: row ``i`` of its first pass is input ``batch_idx_map[i]``, from frame ``seek[i]``."""
        self.config = generation_config
        self._seek = seek.clone() if hasattr(seek, "clone") else list(seek)
        self._inputs = list(batch_idx_map)
        self._positions, self._next, self._judged, self._passes = list(range(len(self._inputs))), [], 0, {}
        self.number += 1

    def input_of(self, row: int) -> tuple[int, int] | None:
        """The input row ``row`` of the pass under way holds and its seek frame; None past them (a static cache's padding)."""
        if row >= len(self._positions):
            return None
        j = self._inputs[self._positions[row]]
        return j, int(self._seek[j])

    def judged(self, index: int, decided: Pass) -> None:
        """Row ``index`` of the pass under way was judged; after its last row, the next pass holds the rows sent on."""
        position = self._positions[index]
        passes = self._passes.setdefault(position, [])
        passes.append(decided)
        if len(passes) > 2:  # only the best so far can still be kept: the others' outputs (scores) are let go
            passes[:] = [best(passes[:-1], getattr(self.config, "compression_ratio_threshold", None)), decided]
        if decided.fallback:
            self._next.append(position)
        self._judged += 1
        if self._judged == len(self._positions):
            self._positions, self._next, self._judged = self._next, [], 0
            self.number += 1

    def kept(self, result: tuple) -> tuple:
        """``generate_with_fallback``'s result with each window's kept pass and its own skip decision."""
        sequences, outputs, should_skip, *rest = result
        sequences, outputs, should_skip = list(sequences), list(outputs), list(should_skip)
        limit = getattr(self.config, "compression_ratio_threshold", None)
        end = getattr(self.config, "eos_token_id", None)
        ends = set(end) if isinstance(end, (list, tuple)) else {end}
        for position, passes in self._passes.items():
            if position >= len(sequences):
                continue
            last = passes[-1]
            keep = best(passes, limit) if last.fallback else last
            if keep is not last:
                sequence = keep.sequence
                sequences[position] = sequence[:-1] if len(sequence) and int(sequence[-1]) in ends else sequence
                outputs[position] = keep.output
            should_skip[position] = keep.skip
        return (sequences, outputs, should_skip, *rest)


def install(model: Any) -> PassLog:
    """Give ``model`` a :class:`PassLog` (``model.asr_passes``) that follows every window batch of its ``generate``."""
    log = PassLog()
    original = model.generate_with_fallback

    def generate_with_fallback(*args: Any, **kwargs: Any):
        log.begin(kwargs["seek"], kwargs["batch_idx_map"], kwargs["generation_config"])
        return log.kept(original(*args, **kwargs))

    model.generate_with_fallback = generate_with_fallback
    model.asr_passes = log
    return log
