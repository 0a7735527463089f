"""One running job per output root: a lock object with its owner and a heartbeat.

``<root>/_LOCK`` holds the owner (run id, host, pid, a random token) and the time of
its last heartbeat, which the driver renews every third of ``lock_ttl_s``. It is taken
with a create-if-absent write (:meth:`asr_actor.storage.Store.create_exclusive`). A second job finds it and stops with one line; a lock whose heartbeat is older
than ``lock_ttl_s`` is stale (its job died) and ``--break-lock`` takes it over. A lock
whose owner ran on this machine under a process id that no longer exists (a job killed
here) is taken over at once.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor import storage
from asr_actor.storage import Store

LOCK = "_LOCK"


class RootLocked(AsrBatchError):
    """Another job holds the output root's lock."""


def _now() -> float:
    return time.time()


def read_lock(root: str, store: Store) -> dict[str, Any] | None:
    """The record in ``root``'s lock (``run_id``, ``host``, ``pid``, ``token``, ``heartbeat`` in seconds
    since the epoch, ``heartbeat_utc``), or None when the root is not locked."""
    return _read_record(storage.join(root, LOCK), store)


def _read_record(uri: str, store: Store) -> dict[str, Any] | None:
    try:
        return json.loads(store.read_bytes(uri))
    except (FileNotFoundError, ValueError):
        return None


def owner_dead_here(held: dict[str, Any]) -> bool:
    """Whether the lock's owner ran on this machine and its process no longer exists."""
    if held.get("host") != socket.gethostname() or not isinstance(held.get("pid"), int):
        return False
    try:
        os.kill(held["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by someone else
        return False
    return False


class RootLock:
    """The lock on one output root, held by this process while its run runs."""

    def __init__(self, root: str, run_id: str, ttl_s: float, store: Store) -> None:
        self.uri, self.ttl_s, self.store = storage.join(root, LOCK), ttl_s, store
        self.owner = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _record(self) -> bytes:
        return json.dumps({**self.owner, "heartbeat": _now(),
                           "heartbeat_utc": datetime.now(timezone.utc).isoformat()}).encode()

    def _read(self) -> dict[str, Any] | None:
        return _read_record(self.uri, self.store)

    def acquire(self, break_stale: bool = False) -> None:
        """Take the lock, or raise :class:`RootLocked` saying who holds it."""
        while not self.store.create_exclusive(self.uri, self._record()):
            held = self._read()
            if held is None:
                continue  # released between our try and our read: try again
            if held.get("token") == self.owner["token"]:
                break  # our own write: its first try landed, its answer was lost, the retry found it
            age = _now() - float(held.get("heartbeat", 0))
            who = f"run {held.get('run_id')} on {held.get('host')} (pid {held.get('pid')})"
            if owner_dead_here(held):  # its process on this machine is gone (killed): no need to wait out the TTL
                self.store.remove(self.uri)
                continue
            if age < self.ttl_s:
                raise RootLocked(f"{redact(self.uri)}: {who} is running on this output root (heartbeat {age:.0f} s ago); "
                                 "one job per root at a time")
            if not break_stale:
                raise RootLocked(f"{redact(self.uri)}: a stale lock of {who}, heartbeat {age:.0f} s ago (lock_ttl_s "
                                 f"{self.ttl_s:g}); if that job is dead, run again with --break-lock")
            self.store.remove(self.uri)
        self._beat = threading.Thread(target=self._heartbeat, name="asr-batch-lock", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                held = self._read()
                if held is not None and held.get("token") == self.owner["token"]:
                    self.store.write_bytes(self.uri, self._record())
            except Exception as exc:  # noqa: BLE001 - the store is down: the run meets it too; beat again later
                print(f"asr-batch: warning: lock heartbeat missed: {describe(exc)}", file=sys.stderr, flush=True)

    def release(self) -> None:
        """Remove the lock if it is still ours. Never raises: a lock the store would not let us remove
        is left behind (one warning line) and goes stale, so it cannot hide the run's own outcome."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        try:
            held = self._read()
            if held is not None and held.get("token") == self.owner["token"]:
                self.store.remove(self.uri)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            print(f"asr-batch: warning: could not remove the lock {redact(self.uri)} ({describe(exc)}); it goes stale "
                  f"after lock_ttl_s {self.ttl_s:g} s, and a job on this machine takes it over at once",
                  file=sys.stderr, flush=True)
