"""What each per-file output is called (the formats are :mod:`jobs.report.formats`).

``transcribe``: openai-whisper's rule, the audio file's name without its extension
(``a/x.wav`` -> ``x``). Two inputs with the same such name would write the same file:
that stops the command before any work, naming both (:class:`NameClash`).

``export``: a row's id made a safe file name. A URL scheme (``s3://``) is dropped,
every run of characters outside ``[A-Za-z0-9._-]`` becomes one ``_``, and leading or
trailing ``.``/``_`` go (``s3://bucket/a/b.wav`` -> ``bucket_a_b.wav``,
``calls/2026/x.wav`` -> ``calls_2026_x.wav``). Only where that leaves two ids with
the same name (compared case-insensitively, for case-insensitive file systems), a name
that is empty, or one longer than ``MAX_NAME_CHARS``, the name gets ``~`` and the first
``HASH_CHARS`` hex digits of the id's SHA-256 (``a_b~3f2c9e01d4``). ``~`` is not in the
plain names' alphabet, so a hashed name never equals a plain one.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from asr_actor.errors import AsrBatchError, redact
from asr_actor.storage import join

MAX_NAME_CHARS = 200  # of a name before its suffix: file systems allow 255 bytes
HASH_CHARS = 10  # hex digits of SHA-256 that tell apart ids whose safe names clash
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class NameClash(AsrBatchError):
    """Two inputs would write the same output file."""


def audio_names(paths: Sequence[Path], dest: str) -> list[str]:
    """whisper's output names (the file name without its extension), one per path; a clash is a :class:`NameClash`."""
    names = [p.stem for p in paths]
    first: dict[str, Path] = {}
    for path, name in zip(paths, names):
        if name in first:
            raise NameClash(f"{redact(str(first[name]))} and {redact(str(path))} would both write {redact(join(dest, name))}.*; "
                            "transcribe them into separate --output-dir folders")
        first[name] = path
    return names


def _plain(row_id: str) -> str:
    return _UNSAFE.sub("_", _SCHEME.sub("", row_id)).strip("._")


def _hashed(row_id: str, plain: str) -> str:
    return f"{plain[:MAX_NAME_CHARS]}~{hashlib.sha256(row_id.encode()).hexdigest()[:HASH_CHARS]}"


def id_names(ids: Sequence[str]) -> list[str]:
    """A safe, readable file name for each id (unique among ``ids``, which are unique); see the module's rule."""
    plain = [_plain(i) for i in ids]
    holders: dict[str, int] = defaultdict(int)
    for name in plain:
        holders[name.casefold()] += 1
    return [name if name and len(name) <= MAX_NAME_CHARS and holders[name.casefold()] == 1 else _hashed(i, name)
            for i, name in zip(ids, plain)]
