"""Seeded sampling (asr_actor/sampling.py): the noise is a function of the window, never of its batch.

The units check the integer mixer against its Python reference, that the noise of a row
does not depend on its neighbours, that Gumbel-max draws follow the distribution, and the
sampler's bookkeeping. The transcriber tests decode real speech with tiny.en where every
pass samples (``temperatures: [1.0]``) or every pass falls back to sampling, in different
batch sizes, orders and global seeds, and compare every row.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from asr_actor.passes import Pass, PassLog
from asr_actor.sampling import SeededSampler, WindowKeys, gumbel, mix, mix_tensor, pass_key, window_key
from conftest import GOOD

torch = pytest.importorskip("torch")


def test_the_tensor_mixer_is_the_python_reference_on_every_int64() -> None:
    rng = random.Random(7)
    values = [0, 1, -1, 2**63 - 1, -(2**63)] + [rng.randrange(-(2**63), 2**63) for _ in range(500)]
    got = mix_tensor(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [mix(v) for v in values]
    assert len(set(got)) == len(values)


def test_a_rows_noise_is_the_same_in_any_batch_and_order() -> None:
    keys = torch.tensor([pass_key(k, 0, 1.0) for k in (11, 22, 33, 44)], dtype=torch.int64)
    alone = torch.cat([gumbel(keys[i : i + 1], 9, 300) for i in range(4)])
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.equal(gumbel(keys, 9, 300), alone)
    assert torch.equal(gumbel(keys[perm], 9, 300), alone[perm])
    assert not torch.equal(gumbel(keys, 10, 300), alone)  # another step, other noise


def test_pass_keys_differ_by_window_seek_and_temperature() -> None:
    keys = {pass_key(w, s, t) for w in (1, 2) for s in (0, 3000) for t in (0.2, 0.4, 1.0)}
    assert len(keys) == 12


def test_gumbel_max_draws_follow_the_distribution() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, float("-inf")])
    expected = torch.softmax(logits, dim=0).numpy()
    keys = torch.tensor([pass_key(k, 0, 1.0) for k in range(20_000)], dtype=torch.int64)
    picks = torch.argmax(logits[None, :] + gumbel(keys, 0, 5), dim=-1).numpy()
    freq = np.bincount(picks, minlength=5) / len(picks)
    assert freq[4] == 0.0  # a suppressed token is never drawn
    assert np.abs(freq - expected).max() < 0.015, (freq, expected)


def test_window_keys_name_the_features_and_are_lazy() -> None:
    a = np.random.default_rng(0).standard_normal((80, 3000)).astype(np.float32)
    b = a.copy()
    b[3, 7] += 1e-3
    keys = WindowKeys([a, b])
    assert keys[0] == window_key(a.copy()) != keys[1]
    assert keys[5] == 0  # a padding row
    assert set(keys._keys) == {0, 1, 5}


class _Config:
    do_sample = True
    temperature = 0.5


def _sampler(inputs: list[int], config) -> tuple[SeededSampler, PassLog]:
    log = PassLog()
    sampler = SeededSampler(log)
    sampler.window_keys = WindowKeys([np.full((2, 4), k, np.float32) for k in range(3)])
    log.begin(torch.tensor([0, 0, 0]), inputs, config)
    return sampler, log


def _judged(log: PassLog, fallbacks: list[bool]) -> None:
    for i, fallback in enumerate(fallbacks):
        log.judged(i, Pass(torch.tensor([1, 2]), {}, None, fallback, False))


def test_the_sampler_forces_its_pick_and_keeps_its_log_probability() -> None:
    sampler, log = _sampler([0, 1], _Config())
    scores = torch.log_softmax(torch.randn(2, 50), dim=-1)
    picks = []
    for step in range(3):
        forced = sampler(torch.zeros(2, 4 + step, dtype=torch.long), scores.clone())
        assert torch.isfinite(forced).sum(dim=-1).tolist() == [1, 1]
        picks.append(forced.argmax(dim=-1))
    picked = torch.stack(picks)
    for row in (0, 1):
        want = torch.log_softmax(scores[row], dim=-1)[picked[:, row]]
        assert torch.allclose(sampler.logprobs(row), want)
    _judged(log, [False, True])  # only input 1 goes on: the next pass's row 0 is input 1
    assert sampler.logprobs(0) is None  # the pass judged next has made no picks yet
    again = sampler(torch.zeros(1, 4, dtype=torch.long), scores[1:].clone())
    alone, _ = _sampler([1], _Config())
    assert torch.equal(alone(torch.zeros(1, 4, dtype=torch.long), scores[1:].clone()), again)


def test_a_greedy_pass_is_left_alone() -> None:
    config = _Config()
    config.do_sample = False
    sampler, _ = _sampler([0], config)
    scores = torch.randn(1, 9)
    assert sampler(torch.zeros(1, 3, dtype=torch.long), scores) is scores
    assert sampler.logprobs(0) is None


def _rows(offline_model_dir: Path, files: list[Path], seed: int, **decoding) -> dict[str, tuple]:
    from asr_actor.config import DecodingConfig, ModelConfig, TranscriberConfig
    from asr_actor.transcriber import Transcriber

    torch.manual_seed(seed)
    # float32: bfloat16's matrix kernels on this CPU differ between one row and several (README, Reproducible rows)
    model = ModelConfig(id=str(offline_model_dir), dtype="float32")
    t = Transcriber(TranscriberConfig(model=model, decoding=DecodingConfig(**decoding)))
    out = t({"id": [f.name for f in files], "audio": [f.read_bytes() for f in files]})
    assert out["error"] == [None] * len(files)
    # text and timings; a pass's averaged signals may differ in their last digits between batch sizes (bfloat16)
    return {i: (text, [(s["start"], s["end"], s["text"]) for s in segments])
            for i, text, segments in zip(out["id"], out["text"], out["segments"])}


@pytest.mark.parametrize("decoding", [
    {"temperatures": [1.0]},  # every pass sampled
    {"logprob_threshold": -0.2, "temperatures": [0.0, 0.5, 1.0]},  # a pass falls back and a hotter one is kept
    {"temperatures": [1.0], "long_form": "sequential"},
], ids=["sampled", "fallback", "sequential"])
def test_the_same_file_gives_the_same_row_in_any_batch_order_and_seed(offline_model_dir: Path, decoding) -> None:
    files = [GOOD / "wav16k_mono.wav", GOOD / "flac16k_mono.flac"]  # the first falls back at -0.2 with tiny.en
    first = _rows(offline_model_dir, files, 0, batch_size=8, **decoding)
    second = _rows(offline_model_dir, files[::-1], 1234, batch_size=1, **decoding)
    assert first == second
    greedy = _rows(offline_model_dir, files, 0, batch_size=8, temperatures=[0.0],
                   **{k: v for k, v in decoding.items() if k == "long_form"})
    assert any(first[k][0] != greedy[k][0] for k in first)  # it did sample
