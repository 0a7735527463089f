"""The one error base class, and how an exception is told in one line.

Every problem a user can fix (a bad config, an unreadable manifest, a model that
cannot load, a missing package) raises a subclass of :class:`AsrBatchError` whose
message is the whole story; ``asr-batch`` catches this class once and prints the
message as one line with exit code 2. Problems of one input are not exceptions: they
are error rows (``describe`` turns a caught exception into their cause). Every URI in
a message goes through ``redact`` first, so no credential is ever printed.
"""

from __future__ import annotations

import re

MAX_CAUSE_CHARS = 300  # an error row's cause is one line of at most this many characters


class AsrBatchError(Exception):
    """The job, or a command, cannot do what was asked; the message says why and what to change."""


def describe(exc: BaseException, limit: int = MAX_CAUSE_CHARS) -> str:
    """``exc`` as one short line: its OS reason or first message line, else its type name; URIs redacted."""
    text = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    return redact(text.splitlines()[0])[:limit]


_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` (a URI, or a message holding some) without any ``user:secret@`` part."""
    return _USERINFO.sub(r"\1", text)
