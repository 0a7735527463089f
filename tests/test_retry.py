"""Transient or permanent: the classification, the retry loop, and fetch's error rows (no cluster)."""

from __future__ import annotations

import errno
import time

import pytest

from asr_actor.config import AudioConfig
from jobs.fetch import fetch_batch
from jobs.retry import StoreUnavailable, is_transient, retrying
from servers import free_port


class ClientError(Exception):
    """Shaped like botocore's ClientError: what s3fs wraps when S3 answers with an error."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.response = {"ResponseMetadata": {"HTTPStatusCode": status}, "Error": {"Code": code}}


def _wrapped(inner: BaseException, outer: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ConnectionResetError(), TimeoutError(),
    OSError(errno.ETIMEDOUT, "timed out"), ClientError(503, "SlowDown"), ClientError(500, "InternalError"),
    ClientError(429, "TooManyRequests"), _wrapped(ConnectionRefusedError(), FileNotFoundError("http://h/x")),
    _wrapped(ClientError(503, "ServiceUnavailable"), OSError(errno.EIO, "wrapped by s3fs")),
])
def test_transient_causes(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    FileNotFoundError("gone"), PermissionError("denied"), ClientError(403, "AccessDenied"),
    ClientError(404, "NoSuchKey"), ValueError("bad data"), OSError(errno.ENOSPC, "disk full"),
])
def test_permanent_causes(exc):
    assert not is_transient(exc)


def test_retrying_rides_out_transient_errors_and_stops_at_its_budget():
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionResetError("reset by peer")
        return "ok"

    assert retrying(flaky, "s3://b/k", budget_s=30) == "ok" and len(calls) == 3

    def permanent():
        calls.append(0)
        raise FileNotFoundError("s3://b/k")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        retrying(permanent, "s3://b/k", budget_s=30)
    assert len(calls) == 1  # never retried

    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"s3://b/k: the store was unreachable through \d+ tries in 2 s \(ConnectionRefusedError"):
        retrying(lambda: (_ for _ in ()).throw(ConnectionRefusedError("refused")), "s3://AKIA:secret@b/k", budget_s=2)
    assert time.monotonic() - started < 4


def test_fetch_names_network_failures_and_schemes():
    closed = f"http://127.0.0.1:{free_port()}/a.wav"
    out = fetch_batch({"uri": [closed, "foo://bucket/a.wav", "memory://nothing/here.wav"]}, AudioConfig(), retry_s=1)
    assert out["error"][0].startswith(f"fetch: {closed}: the store was unreachable through ")
    assert out["error_kind"][0] == "transient"
    assert out["error"][1] == "fetch: foo://bucket/a.wav: unsupported URI scheme 'foo'"
    assert out["error"][2] == "fetch: object not found: memory://nothing/here.wav"
    assert out["error_kind"][1:] == ["permanent", "permanent"]
