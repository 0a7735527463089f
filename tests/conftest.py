"""Shared fixtures: the converted offline model and the committed speech fixtures."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
GOOD = DATA / "good"
BAD = DATA / "bad"
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".mp4"}


def good_fixtures() -> list[Path]:
    """Every good speech fixture (each has a ``.txt`` reference beside it)."""
    return sorted(p for p in GOOD.iterdir() if p.suffix in AUDIO_SUFFIXES)


def cpu_dtype() -> str:
    """The dtype ``model.dtype: auto`` picks on this machine's CPU (bfloat16 where it is native)."""
    from asr_actor.model import resolve_dtype

    return resolve_dtype("auto", "cpu")


def reference_text(audio: Path) -> str:
    return audio.with_suffix(".txt").read_text(encoding="utf-8").strip()


_ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| [\d.]+ \| (?P<words>\d+) \| (?P<errors>\d+) \| [\d.]+ \|")


def measured() -> dict[str, tuple[int, int]]:
    """name -> (reference words, errors) as written in tests/data/README.md."""
    rows = {}
    for line in (DATA / "README.md").read_text(encoding="utf-8").splitlines():
        if m := _ROW.match(line):
            rows[m["name"]] = (int(m["words"]), int(m["errors"]))
    return rows


def allowed_errors(name: str) -> int:
    """The most errors a transcript of good fixture ``name`` may have: as measured, plus one word or 1% of its words."""
    words, errors = measured()[name]
    return errors + max(1, math.ceil(0.01 * words))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of ``item``: may it start servers and Ray (tests/servers.py checks)."""
    import servers

    servers.IN_SLOW_TEST = item.get_closest_marker("slow") is not None


@pytest.fixture(scope="session", autouse=True)
def asr_cache(tmp_path_factory: pytest.TempPathFactory):
    """One model cache (``ASR_BATCH_CACHE``) for the whole session, this process and every job it starts."""
    cache = tmp_path_factory.mktemp("asr-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("ASR_BATCH_CACHE", str(cache))
    yield cache
    patch.undo()


@pytest.fixture(scope="session")
def offline_model_dir(asr_cache: Path) -> Path:
    """The packaged tiny.en, converted once per test session by the project's own code into the session cache."""
    from asr_actor.config import ModelConfig
    from asr_actor.model_source import offline_model_dir as cached_folder
    from asr_actor.offline.folder import prepare_offline_model

    return prepare_offline_model(cached_folder(ModelConfig()))


def _origin_load(folder: Path, dtype: str):
    """(model, processor) loaded the way the origin script does, on CPU in ``dtype``."""
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(
        folder, local_files_only=True, use_safetensors=True, attn_implementation="sdpa", dtype=getattr(torch, dtype)
    ).eval()
    return model, WhisperProcessor.from_pretrained(folder, local_files_only=True)


@pytest.fixture(scope="session")
def hf_whisper(offline_model_dir: Path):
    """transformers' tiny.en in float32: the converter's exactness is checked against it."""
    return _origin_load(offline_model_dir, "float32")


@pytest.fixture(scope="session")
def hf_whisper_auto(offline_model_dir: Path, hf_whisper):
    """transformers' tiny.en in the dtype ``auto`` picks on this CPU: the transcriber's parity reference."""
    dtype = cpu_dtype()
    return hf_whisper if dtype == "float32" else _origin_load(offline_model_dir, dtype)


def reference_transcribe(model, processor, waveform) -> str:
    """transformers' own way: one greedy window, or its sequential long-form past 30 s."""
    import torch

    long_form = len(waveform) > processor.feature_extractor.n_samples
    feats = processor.feature_extractor(
        waveform,
        sampling_rate=processor.feature_extractor.sampling_rate,
        return_tensors="pt",
        **({"truncation": False, "padding": "longest", "return_attention_mask": True} if long_form else {}),
    )
    kwargs = {"attention_mask": feats.attention_mask, "return_timestamps": True} if long_form else {}
    with torch.inference_mode():
        out = model.generate(feats.input_features.to(model.dtype), num_beams=1, do_sample=False, **kwargs)
    sequences = out if torch.is_tensor(out) else out["sequences"]
    return processor.batch_decode(sequences, skip_special_tokens=True)[0].strip()


@pytest.fixture(scope="session")
def transcriber(offline_model_dir: Path):
    """The project's transcriber on the converted tiny.en (chunked long-form, batch 8)."""
    from asr_actor.config import ModelConfig, TranscriberConfig
    from asr_actor.transcriber import Transcriber

    return Transcriber(TranscriberConfig(model=ModelConfig(id=str(offline_model_dir))))


@pytest.fixture(scope="session")
def reference_transcript(hf_whisper_auto):
    """``path -> transformers' own transcript`` in the transcriber's dtype (computed once per file per session)."""
    from asr_actor.audio import decode_audio

    model, processor = hf_whisper_auto
    cache: dict[Path, str] = {}

    def get(path: Path) -> str:
        if path not in cache:
            cache[path] = reference_transcribe(model, processor, decode_audio(path.read_bytes()).waveform)
        return cache[path]

    return get


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray in this process for the module's tests (Ray Data jobs the code starts in-process), shut down after it.

    Tests that stop every Ray of the machine (``servers.ray_stop``) must shut it down first.
    """
    import ray

    from jobs.config import RayConfig
    from jobs.run.ray_cluster import init_ray

    init_ray(RayConfig(num_cpus=2))
    yield
    ray.shutdown()
