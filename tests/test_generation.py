"""Batching the model's calls: one task and prompt per call, and a failed batch split down to its bad item (no model)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("failing", [set(), {3}, {0, 5}])
def test_failed_batches_are_split_down_to_the_bad_item(failing):
    from asr_actor.generation import run_in_batches

    calls = []

    def fn(idx):
        calls.append(list(idx))
        if failing & set(idx):
            raise RuntimeError("CUDA out of memory")
        return [f"ok{i}" for i in idx]

    out = run_in_batches(6, lambda i: ("transcribe", ""), lambda i: float(i), 6, fn)
    for i, r in enumerate(out):
        assert r == ("transcribe: RuntimeError: CUDA out of memory" if i in failing else f"ok{i}")


def test_one_task_and_prompt_per_call_longest_first():
    from asr_actor.generation import run_in_batches

    groups = [("transcribe", ""), ("transcribe", "Acme"), ("transcribe", ""), ("translate", ""), ("transcribe", "Acme")]
    calls = []
    out = run_in_batches(5, lambda i: groups[i], lambda i: float(i), 8, lambda idx: calls.append(list(idx)) or idx)
    assert out == [0, 1, 2, 3, 4] and sorted(map(tuple, calls)) == [(2, 0), (3,), (4, 1)]
