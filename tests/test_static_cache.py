"""decoding.compile: the static KV cache (and the compiled step) give the dynamic cache's tokens and times."""

from __future__ import annotations

import inspect

import pytest

from asr_actor.config import AudioConfig, ConfigError, DecodingConfig, ModelConfig, TranscriberConfig
from conftest import GOOD, good_fixtures

CALL = GOOD.parent / "channels" / "overlap_stereo.flac"


def test_refusals_and_auto():
    with pytest.raises(ConfigError, match=r"^decoding.compile 'fast' is not one of"):
        DecodingConfig(compile="fast")
    with pytest.raises(ConfigError, match="^decoding.compile: static decodes greedily; use num_beams: 1 or compile: off$"):
        DecodingConfig(compile="static", num_beams=2)
    for mode in ("static", "on"):
        with pytest.raises(ConfigError, match=f"^decoding.compile: {mode} cannot give word timestamps; use compile: off$"):
            DecodingConfig(compile=mode, word_timestamps=True)
    assert DecodingConfig(num_beams=3).compile == DecodingConfig(word_timestamps=True).compile == "auto"
    from types import SimpleNamespace

    import torch

    from asr_actor.generation import compile_mode

    def on(device: str, **decoding) -> str:
        return compile_mode(SimpleNamespace(model=SimpleNamespace(device=torch.device(device))), DecodingConfig(**decoding))

    assert (on("cuda"), on("cpu"), on("cuda", num_beams=2), on("cuda", word_timestamps=True)) == ("on", "off", "off", "off")
    assert on("cuda", long_form="sequential") == "off"  # batches of whole files change shape: no graphs
    assert on("cpu", compile="static") == "static"


def test_the_transformers_internals_the_job_replaces_keep_their_shape():
    """An upgrade that renames or reshapes one of these must fail here, not change tokens quietly."""
    from transformers.generation.logits_process import WhisperNoSpeechDetection
    from transformers.models.whisper.generation_whisper import WhisperGenerationMixin as W

    def params(fn) -> list[str]:
        return [p for p in inspect.signature(fn).parameters if p != "self"]

    # asr_actor/guards.py: the judgement of each pass
    assert params(W._need_fallback) == ["seek_sequence", "seek_outputs", "index", "logits_processor",
                                        "generation_config", "vocab_size", "temperature"]
    # asr_actor/dummy.py: one pass per window
    assert {"seek_num_frames", "prev_idx"} <= set(params(W._retrieve_segment))
    assert "segments, segment_offset = self._retrieve_segment(" in inspect.getsource(W.generate)
    # asr_actor/no_speech.py: the detector's set-up, its state and its first step
    assert params(W._setup_no_speech_detection) == ["logits_processor", "segment_input", "decoder_input_ids", "kwargs"]
    assert "self._setup_no_speech_detection(" in inspect.getsource(W.generate_with_fallback)
    detector = WhisperNoSpeechDetection(no_speech_token=1, begin_index=3)
    assert (detector.start_of_trans_offset, detector.begin_index, detector.is_scores_logprobs) == (3, 3, False)
    # asr_actor/timestamp_rules.py: the processors come from one method; the rules read these settings
    assert params(W._retrieve_logit_processors) == ["generation_config", "logits_processor", "begin_index",
                                                    "num_beams", "device"]
    from transformers import GenerationConfig
    from transformers.generation.logits_process import WhisperTimeStampLogitsProcessor

    rules = WhisperTimeStampLogitsProcessor(GenerationConfig(no_timestamps_token_id=9, eos_token_id=5), begin_index=3)
    assert (rules.timestamp_begin, rules.no_timestamps_token_id, rules.eos_token_id, rules.begin_index) == (10, 9, 5, 3)
    assert rules._detect_timestamp_from_logprob is True and rules.max_initial_timestamp_index is None
    # asr_actor/generation.py: a static cache's fallback passes are padded back to the batch's size
    source = inspect.getsource(W.generate_with_fallback)
    assert 'generation_config.cache_implementation == "static" and cur_bsz < batch_size' in source


def _run(cfg: TranscriberConfig, paths):
    from asr_actor.transcriber import Transcriber

    t = Transcriber(cfg)
    return t({"id": [p.name for p in paths], "audio": [p.read_bytes() for p in paths]})


# float32: the two caches must agree to the last digit. In bfloat16 a padded batch's matrix
# products round differently (same words and times; avg_logprob moves in its third decimal).
EXACT = "float32"
CASES = {  # name: (decoding options, audio options, files)
    "padded batches, prompt": ({"batch_size": 4, "initial_prompt": "Help desk, printer, floor."}, {}, 5),
    "vad windows": ({"batch_size": 4}, {"vad": "silero"}, ["long_pauses.ogg", "silence_inside_speech.flac"]),
    "split channels": ({"batch_size": 4}, {"channels": "split"}, [CALL]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_the_static_cache_gives_the_dynamic_caches_tokens_and_times(offline_model_dir, case):
    decoding, audio, files = CASES[case]
    paths = good_fixtures()[:files] if isinstance(files, int) else [GOOD / f if isinstance(f, str) else f for f in files]

    def config(mode: str) -> TranscriberConfig:
        return TranscriberConfig(model=ModelConfig(id=str(offline_model_dir), dtype=EXACT),
                                 decoding=DecodingConfig(compile=mode, **decoding), audio=AudioConfig(**audio))

    dynamic, static = _run(config("off"), paths), _run(config("static"), paths)
    assert dynamic["error"] == static["error"] == [None] * len(paths)
    assert static["segments"] == dynamic["segments"] and static["text"] == dynamic["text"]


@pytest.mark.slow
def test_the_compiled_step_gives_the_same_tokens_on_cpu(offline_model_dir):
    paths = good_fixtures()[:3]
    model = ModelConfig(id=str(offline_model_dir), dtype=EXACT)
    dynamic = _run(TranscriberConfig(model=model, decoding=DecodingConfig(batch_size=4, compile="off")), paths)
    compiled = _run(TranscriberConfig(model=model, decoding=DecodingConfig(batch_size=4, compile="on")), paths)
    assert compiled["segments"] == dynamic["segments"] and compiled["error"] == [None] * 3
