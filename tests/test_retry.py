"""Transient or permanent: the classification, the retry loop, and fetch's error rows (no cluster)."""

from __future__ import annotations

import errno
import time

import pytest

from asr_actor import storage
from asr_actor.storage import Store
from asr_actor.config import AudioConfig
from jobs.store.fetch import fetch_batch
from asr_actor.retry import StoreUnavailable, is_transient, retrying
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
    out = fetch_batch({"uri": [closed, "foo://bucket/a.wav", "memory://nothing/here.wav"]}, AudioConfig(), store=Store(1))
    assert out["error"][0].startswith(f"fetch: {closed}: the store was unreachable through ")
    assert out["error_kind"][0] == "transient"
    assert out["error"][1] == "fetch: foo://bucket/a.wav: unsupported URI scheme 'foo'"
    assert out["error"][2] == "fetch: object not found: memory://nothing/here.wav"
    assert out["error_kind"][1:] == ["permanent", "permanent"]


@pytest.fixture
def silent_s3(monkeypatch):
    """An S3 endpoint on loopback that accepts connections and reads requests but never answers."""
    import socket
    import threading

    import s3fs

    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)  # read by nobody, answered never

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "silent")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "silent")
    monkeypatch.setattr(storage, "ATTEMPT_TIMEOUT_S", 1.0)
    s3fs.S3FileSystem.clear_instance_cache()  # no client of another test's endpoint
    yield
    server.close()
    for conn in held:
        conn.close()
    s3fs.S3FileSystem.clear_instance_cache()


def test_a_store_that_never_answers_is_a_transient_failure_not_a_hang(silent_s3):
    # s3fs's own read timeout (15 s, then its retries) would take minutes; each attempt's deadline is what ends it.
    store = Store(retry_s=3)
    for call in (lambda: store.write_bytes("s3://bkt/part.parquet", b"x" * 1000),
                 lambda: store.read_bytes("s3://bkt/a.wav", expected_bytes=1000),
                 lambda: store.list_files("s3://bkt/data/")):
        with pytest.raises(StoreUnavailable, match=r"the store was unreachable through \d+ tries in 3 s \(TimeoutError: no answer in 1(\.\d+)? s\)"):
            call()
