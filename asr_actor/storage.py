"""Object storage through fsspec: ``s3://``, ``gs://``, ``file://`` and local paths alike.

Credentials and endpoints come from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, …) as boto3, s3fs and pyarrow read
them; nothing here prints or stores them. Writes are whole-or-absent: a local file is
written under a temporary name and renamed, an object-store PUT is atomic already.
All reads and writes go through a :class:`Store`, which retries transient failures for its
``retry_s`` seconds (:mod:`asr_actor.retry`): the job's files, its lock, its manifests and
audio, and model folders. A URI whose scheme no installed filesystem serves is an
:class:`UnsupportedUri`. The path helpers here (``join``, ``parent``…) touch no store.

An attempt on an asynchronous store (s3fs, gcsfs) that neither answers nor fails (a
connection dropped without a word on the way) is given up after a deadline, its client
dropped, and tried again like any transient failure: no store call holds a run forever.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor.retry import DEFAULT_RETRY_S, retrying

T = TypeVar("T")


ATTEMPT_TIMEOUT_S = 60.0  # s one attempt on an asynchronous store may take, besides its transfer
SLOWEST_BYTES_PER_S = 2**20  # a transfer slower than 1 MiB/s is taken for a dead connection


class UnsupportedUri(AsrBatchError):
    """No installed fsspec filesystem serves this URI's scheme."""


def fs_and_path(uri: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError as exc:  # a known scheme whose package is missing (gs:// without gcsfs)
        raise UnsupportedUri(f"{redact(uri)}: {describe(exc)}") from exc
    except ValueError as exc:  # "Protocol not known"
        scheme = uri.split("://", 1)[0]
        raise UnsupportedUri(f"{redact(uri)}: unsupported URI scheme {scheme!r}") from exc


def _attempts(uri: str, op: Callable[[Any, str, dict[str, float]], T], retry_s: float, nbytes: int = 0) -> T:
    """``op(fs, path, deadline)`` retried for ``retry_s``; ``deadline`` is fsspec's ``timeout``
    keyword for one attempt on an asynchronous store (empty for a blocking one).

    An attempt past its deadline drops the filesystem's cached clients, so the next one
    starts on new connections rather than on the one that went silent.
    """
    from fsspec.asyn import AsyncFileSystem
    from fsspec.exceptions import FSTimeoutError

    def attempt() -> T:
        fs, path = fs_and_path(uri)
        if not isinstance(fs, AsyncFileSystem):
            return op(fs, path, {})
        timeout = ATTEMPT_TIMEOUT_S + nbytes / SLOWEST_BYTES_PER_S
        try:
            return op(fs, path, {"timeout": timeout})
        except FSTimeoutError:
            type(fs).clear_instance_cache()
            raise TimeoutError(f"no answer in {timeout:g} s") from None  # transient; its cause is a bare cancellation

    return retrying(attempt, uri, retry_s)


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def join(base: str, *parts: str) -> str:
    """Join path parts onto a local path or URL."""
    if "://" in base:
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{posixpath.join(rest, *parts)}"
    return os.path.join(base, *parts)


def parent(uri: str) -> str:
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest.rstrip('/'))}"
    return os.path.dirname(os.path.abspath(uri))


def absolute(uri: str, base_dir: str) -> str:
    """``uri`` if it is a URL or absolute path, else resolved against ``base_dir``."""
    if "://" in uri or os.path.isabs(uri):
        return uri
    return join(base_dir, uri) if "://" in base_dir else os.path.normpath(os.path.join(base_dir, uri))


def anchored(uri: str) -> str:
    """A local path made absolute (against the current folder); URLs as they are."""
    return uri if "://" in uri else os.path.abspath(os.path.expanduser(uri))


def _write_local(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _create_local(path: str, data: bytes) -> bool:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return True


def _full_uri(uri: str, path: str) -> str:
    """fsspec lists paths without the scheme: give ``path`` back the one of ``uri`` (local paths stay paths)."""
    prefix = uri.split("://", 1)[0] + "://" if "://" in uri and not uri.startswith("file://") else ""
    return prefix + path if prefix and "://" not in path else path


def _full_uris(uri: str, paths: list[str]) -> list[str]:
    return sorted(_full_uri(uri, p) for p in paths)


def listed_uri(uri: str) -> str:
    """``uri`` as :class:`Store`'s listings name what is under it (``memory://b`` -> ``memory:///b``, a local
    folder as its absolute path), so a listed URI's part below ``uri`` is what follows it."""
    return _full_uri(uri, fs_and_path(uri)[1]).rstrip("/")


def listed_tag(info: dict[str, Any]) -> Any:
    """What tells a changed object from the same one, as an fsspec or S3 listing entry gives it:
    its ETag, else its modification time (None when it has neither)."""
    return info.get("ETag") or info.get("etag") or info.get("mtime")


def object_tag(info: dict[str, Any]) -> str | None:
    """:func:`listed_tag` as the job records it: a string, without the quotes S3 puts around an ETag."""
    tag = listed_tag(info)
    return str(tag).strip('"') if tag is not None and tag != "" else None


@dataclass(frozen=True)
class Store:
    """Every read and write of the job and of model folders: each call is retried on transient
    failures for ``retry_s`` seconds (``storage.retry_s`` of the job config), each attempt on an
    asynchronous store under its deadline. Frozen and small: it travels to Ray workers as it is."""

    retry_s: float = DEFAULT_RETRY_S

    def run(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` (a store client's own call, e.g. boto3's) under this store's retries; ``what`` names the object."""
        return retrying(call, what, self.retry_s)

    def on(self, uri: str, op: Callable[[Any, str, dict[str, float]], T], nbytes: int = 0) -> T:
        """``op(fs, path, deadline)`` on the filesystem serving ``uri``, retried (see :func:`_attempts`)."""
        return _attempts(uri, op, self.retry_s, nbytes)

    def exists(self, uri: str) -> bool:
        def check(fs: Any, path: str, deadline: dict[str, float]) -> bool:
            fs.invalidate_cache(path)
            return fs.exists(path, **deadline)

        return self.on(uri, check)

    def size(self, uri: str) -> int | None:
        """Bytes of the object at ``uri`` (None when the store does not say)."""
        return self.on(uri, lambda fs, path, deadline: fs.size(path, **deadline))

    def read_bytes(self, uri: str, expected_bytes: int | None = None) -> bytes:
        """The whole object; ``expected_bytes`` (its size, when known) lengthens the deadline of each attempt."""
        return self.on(uri, lambda fs, path, deadline: fs.cat_file(path, **deadline), expected_bytes or 0)

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write ``data`` so that ``uri`` is either absent or complete, never partial.

        Retrying is safe: the same object is written again whole (a single PUT).
        """
        if is_local(uri):
            _write_local(fs_and_path(uri)[1], data)
            return
        self.on(uri, lambda fs, path, deadline: fs.pipe_file(path, data, **deadline), len(data))

    def create_exclusive(self, uri: str, data: bytes) -> bool:
        """Write ``data`` at ``uri`` only if nothing is there; whether this call created it.

        ``O_EXCL`` on a local disk, a conditional PUT (``If-None-Match: *``) on S3; other
        stores check and then write, which leaves a small window. A retried PUT whose first
        try landed finds the object there: the caller tells its own content from another's.
        """
        if is_local(uri):
            return _create_local(fs_and_path(uri)[1], data)
        if uri.startswith("s3://"):
            return self.run(uri, lambda: _put_if_absent(uri, data))
        if self.exists(uri):
            return False
        self.write_bytes(uri, data)
        return True

    def list_files(self, uri: str, suffix: str = "") -> list[str]:
        """Full URIs of the files directly under ``uri`` that end with ``suffix`` (none if absent)."""
        def listing(fs: Any, path: str, deadline: dict[str, float]) -> list[str]:
            fs.invalidate_cache(path)
            if not fs.exists(path, **deadline):
                return []
            return [p for p in fs.ls(path, detail=False, **deadline) if p.endswith(suffix)]

        return _full_uris(uri, self.on(uri, listing))

    def list_dirs(self, uri: str) -> list[str]:
        """Full URIs of the folders (prefixes) directly under ``uri`` (none if absent)."""
        def listing(fs: Any, path: str, deadline: dict[str, float]) -> list[str]:
            fs.invalidate_cache(path)
            if not fs.exists(path, **deadline):
                return []
            return [e["name"] for e in fs.ls(path, detail=True, **deadline) if e.get("type") == "directory"]

        return _full_uris(uri, self.on(uri, listing))

    def find(self, uri: str) -> dict[str, dict[str, Any]]:
        """Every file under ``uri`` at any depth: its full URI -> its listing entry, sorted."""
        found = self.on(uri, lambda fs, path, deadline: fs.find(path, detail=True, **deadline))
        return {_full_uri(uri, p): found[p] for p in sorted(found)}

    def is_dir(self, uri: str) -> bool:
        return self.on(uri, lambda fs, path, deadline: fs.isdir(path, **deadline))

    def source_info(self, uri: str) -> tuple[int | None, str | None]:
        """(size, :func:`object_tag`) of the object at ``uri``: what tells a changed source from the same one."""
        info = self.on(uri, lambda fs, path, deadline: fs.info(path, **deadline))
        return info.get("size"), object_tag(info)

    def download(self, uri: str, local_path: str, nbytes: int = 0) -> None:
        """Copy the object at ``uri`` to a local file."""
        self.on(uri, lambda fs, path, deadline: fs.get_file(path, local_path, **deadline), nbytes)

    def remove(self, uri: str) -> None:
        def rm(fs: Any, path: str, deadline: dict[str, float]) -> None:
            if fs.exists(path, **deadline):  # a retry after a lost answer finds it gone already
                fs.rm(path, **deadline)

        self.on(uri, rm)


def _put_if_absent(uri: str, data: bytes) -> bool:
    import boto3
    from botocore.exceptions import ClientError

    bucket, _, key = uri[len("s3://"):].partition("/")
    try:
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
