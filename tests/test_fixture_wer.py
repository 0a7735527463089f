"""Real speech through the project's transcriber on the real converted tiny.en: every good fixture, WER against its table.

The table (tests/data/README.md) was measured with transformers' own ``generate``; the
project's path (PyAV decoding, numpy log-mel, packed windows) must stay within it.
"""

from __future__ import annotations

import math
import re

import pytest

from asr_actor.wer import word_errors
from conftest import DATA, good_fixtures, reference_text

_ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| [\d.]+ \| (?P<words>\d+) \| (?P<errors>\d+) \| [\d.]+ \|")


def measured() -> dict[str, tuple[int, int]]:
    """name -> (reference words, errors) as written in tests/data/README.md."""
    rows = {}
    for line in (DATA / "README.md").read_text(encoding="utf-8").splitlines():
        if m := _ROW.match(line):
            rows[m["name"]] = (int(m["words"]), int(m["errors"]))
    return rows


def test_table_covers_every_good_fixture():
    assert set(measured()) == {p.name for p in good_fixtures()}


@pytest.fixture(scope="module")
def project_transcripts(transcriber) -> dict[str, str]:
    """Every good fixture through the transcriber in one batch (their windows packed together)."""
    paths = good_fixtures()
    out = transcriber({"id": [p.name for p in paths], "audio": [p.read_bytes() for p in paths]})
    assert out["error"] == [None] * len(paths)
    return dict(zip(out["id"], out["text"]))


@pytest.mark.parametrize("audio", good_fixtures(), ids=lambda p: p.name)
def test_fixture_wer_within_measured(audio, project_transcripts):
    words, errors = measured()[audio.name]
    hypothesis = project_transcripts[audio.name]
    got = word_errors(reference_text(audio), hypothesis)
    assert got.reference_words == words
    allowed = errors + max(1, math.ceil(0.01 * words))
    assert got.errors <= allowed, f"{audio.name}: {got.errors} errors ({got.wer:.1%}), hypothesis: {hypothesis}"
