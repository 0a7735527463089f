"""The batch timestamp rules give transformers' per-row rules' scores, without a host copy per step."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import GenerationConfig
from transformers.generation.logits_process import WhisperTimeStampLogitsProcessor

from asr_actor.timestamp_rules import _processor_class

VOCAB, TIMESTAMP_BEGIN, EOS, BEGIN = 120, 100, 90, 3  # ids: text < 90 = end < ... < 99 = <|notimestamps|> < timestamps


def _processors(**config):
    cfg = GenerationConfig(no_timestamps_token_id=TIMESTAMP_BEGIN - 1, eos_token_id=EOS, max_initial_timestamp_index=5,
                           **config)
    theirs = WhisperTimeStampLogitsProcessor(cfg, begin_index=BEGIN)
    ours = WhisperTimeStampLogitsProcessor(cfg, begin_index=BEGIN)
    ours.__class__ = _processor_class()
    return theirs, ours


@pytest.mark.parametrize("detect", [True, False])
@pytest.mark.parametrize("generated", [0, 1, 2, 3, 7])
def test_the_same_scores_as_transformers_rules(generated, detect):
    theirs, ours = _processors(_detect_timestamp_from_logprob=detect)
    g = torch.Generator().manual_seed(generated * 2 + detect)
    rows = 64
    prompt = torch.full((rows, BEGIN), 95)
    # every mix of text and timestamp tokens, timestamps often repeated or going back
    is_ts = torch.rand(rows, generated, generator=g) < 0.5
    tokens = torch.where(is_ts, torch.randint(TIMESTAMP_BEGIN, VOCAB, (rows, generated), generator=g),
                         torch.randint(0, EOS, (rows, generated), generator=g))
    input_ids = torch.cat([prompt, tokens], dim=1)
    scores = torch.randn(rows, VOCAB, generator=g) * 3
    scores[:8, TIMESTAMP_BEGIN:] += 6  # rows whose timestamps are likelier than any text
    expected = theirs(input_ids, scores)
    assert torch.equal(ours(input_ids, scores), expected)
    assert torch.isinf(expected).any()  # the rules did mask something: the comparison is not vacuous


def test_install_swaps_only_the_timestamp_processor(offline_model_dir):
    from asr_actor.config import ModelConfig
    from asr_actor.model import load_model

    model = load_model(ModelConfig(id=str(offline_model_dir))).model
    cfg = copy.deepcopy(model.generation_config)
    cfg.return_timestamps, cfg.no_speech_threshold = True, 0.6
    processors = model._retrieve_logit_processors(cfg, None, BEGIN, 1, "cpu")
    names = [type(p).__name__ for p in processors]
    assert "BatchTimestampRules" in names and "WhisperTimeStampLogitsProcessor" not in names


def test_no_step_copies_anything_to_the_host(monkeypatch):
    theirs, ours = _processors()
    input_ids = torch.cat([torch.full((16, BEGIN), 95), torch.randint(0, VOCAB, (16, 5))], dim=1)
    scores = torch.randn(16, VOCAB)
    copies: list[str] = []
    for name in ("tolist", "item", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__"):
        real = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _real=real, **kwargs):
            copies.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    ours(input_ids, scores)
    assert copies == []
    theirs(input_ids, scores)
    assert "tolist" in copies  # transformers' rules read every row's tokens on the host, every step
