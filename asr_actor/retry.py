"""Transient or permanent: which storage failures are retried, and for how long.

A storage call that fails for a transient cause (connection refused or reset, a
timeout, an HTTP 5xx or 429, throttling) is tried again with exponential backoff and
jitter until a time budget (``storage.retry_s``) is spent; then it raises
:class:`StoreUnavailable`. Any other failure (not found, access denied, bad data) is
permanent and raised at once. Clients wrap their errors (s3fs in botocore's, botocore in
aiohttp's, fsspec's HTTP in ``FileNotFoundError``), so the whole chain of causes is
looked at, by type for Python's own errors and by name for the libraries'.
"""

from __future__ import annotations

import errno
import logging
import random
import time
from typing import Callable, Iterator, TypeVar

from asr_actor.errors import AsrBatchError, describe, redact

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_RETRY_S = 120.0  # s a storage call may spend retrying transient errors
FIRST_DELAY_S = 0.5  # s before the first retry; doubled each time
MAX_DELAY_S = 15.0  # s, the longest wait between two tries
_TRANSIENT_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EHOSTUNREACH,
    errno.ENETUNREACH, errno.ENETDOWN, errno.EPIPE, errno.EAGAIN,
})
# Library errors that mean "the store did not answer", by class name (no import needed).
_TRANSIENT_NAMES = frozenset({
    "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
    "ClientConnectorError", "ServerDisconnectedError", "ClientPayloadError", "ServerTimeoutError",
    "IncompleteRead", "ResponseStreamingError", "FSTimeoutError",
})
_TRANSIENT_CODES = frozenset({  # S3 / GCS error codes of a store that is busy or failing
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
    "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
})


class StoreUnavailable(AsrBatchError):
    """A storage call kept failing for a transient cause until its retry budget was spent."""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)  # as Python shows the chain


def _transient_status(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)  # botocore ClientError
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = response.get("Error", {}).get("Code")
    else:
        status, code = getattr(exc, "status", None), getattr(exc, "code", None)  # aiohttp, google
    return (isinstance(status, int) and (status == 429 or status >= 500)) or code in _TRANSIENT_CODES


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or any error behind it) says the store was unreachable, slow or failing."""
    for e in _causes(exc):
        if isinstance(e, StoreUnavailable):
            return True
        if isinstance(e, (ConnectionError, TimeoutError)):
            return True
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return True
        if type(e).__name__ in _TRANSIENT_NAMES or _transient_status(e):
            return True
    return False


def root_cause(exc: BaseException) -> str:
    """``Type: message`` of the innermost error behind ``exc``."""
    last = list(_causes(exc))[-1]
    return f"{type(last).__name__}: {describe(last)}"


def retrying(call: Callable[[], T], what: str, budget_s: float = DEFAULT_RETRY_S) -> T:
    """``call()``, tried again on transient errors for up to ``budget_s`` seconds.

    ``what`` names the object for the log and for :class:`StoreUnavailable`'s message.
    """
    deadline = time.monotonic() + budget_s
    delay, tries = FIRST_DELAY_S, 1
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - sorted below: transient is retried, the rest raised
            if not is_transient(exc):
                raise
            wait = min(delay, MAX_DELAY_S) * random.uniform(0.5, 1.0)
            if time.monotonic() + wait > deadline:
                raise StoreUnavailable(
                    f"{redact(what)}: the store was unreachable through {tries} tries in {budget_s:g} s "
                    f"({root_cause(exc)})"
                ) from exc
            log.warning("%s: transient storage error, retrying in %.1f s (%s)", redact(what), wait, root_cause(exc))
            time.sleep(wait)
            delay, tries = delay * 2, tries + 1
