"""Which pass a window keeps (asr_actor/passes.py): pure logic on hand-made passes.

The real-speech side (near-silence and translation with every temperature failing) is in
tests/test_multilingual_real.py.
"""

from __future__ import annotations

import pytest

from asr_actor.guards import Signals
from asr_actor.passes import Pass, PassLog, best

torch = pytest.importorskip("torch")
END = 50257


def _pass(avg: float, ratio: float, fallback: bool = True, skip: bool = False, tokens=(1, 2, END)) -> Pass:
    signals = Signals(avg, 0.1, ratio, 0.0, (), 0)
    return Pass(torch.tensor(tokens), {"avg": avg}, signals, fallback, skip)


def test_the_most_likely_pass_that_does_not_loop_is_kept() -> None:
    passes = [_pass(-1.3, 1.5), _pass(-0.4, 3.1), _pass(-1.1, 2.0), _pass(-2.5, 1.2)]
    assert best(passes, 2.4) is passes[2]  # -0.4 loops (ratio 3.1 > 2.4)
    assert best(passes, None) is passes[1]
    looping = [_pass(-1.5, 3.0), _pass(-1.2, 2.9)]
    assert best(looping, 2.4) is looping[1]  # all loop: the most likely of all


class _Config:
    compression_ratio_threshold = 2.4
    eos_token_id = END


def test_a_window_whose_every_pass_failed_keeps_its_best_and_each_keeps_its_own_skip() -> None:
    log = PassLog()
    log.begin(torch.tensor([0, 0, 0]), [0, 1, 2], _Config())
    first = [_pass(-1.2, 1.0), _pass(-0.2, 1.0, fallback=False), _pass(-1.5, 1.0)]
    for i, p in enumerate(first):
        log.judged(i, p)
    assert log.input_of(0) == (0, 0) and log.input_of(1) == (2, 0) and log.input_of(2) is None
    second = [_pass(-3.0, 1.0, tokens=(7, END)), _pass(-0.5, 1.0, fallback=False, skip=True, tokens=(8, END))]
    for i, p in enumerate(second):
        log.judged(i, p)
    # transformers' own result: each row's last pass, and its skips filed by the subset's row numbers
    sequences = [torch.tensor([7]), torch.tensor([1, 2]), torch.tensor([8])]
    outputs = [second[0].output, first[1].output, second[1].output]
    kept = log.kept((sequences, outputs, [True, False, False], "rest"))
    assert kept[0][0].tolist() == [1, 2] and kept[1][0] is first[0].output  # row 0: its first pass, the most likely
    assert kept[0][1].tolist() == [1, 2] and kept[1][1] is first[1].output  # row 1 passed at once
    assert kept[0][2].tolist() == [8] and kept[1][2] is second[1].output  # row 2 passed when hotter
    assert kept[2] == [False, False, True] and kept[3] == "rest"  # the skip is row 2's, not row 0's
