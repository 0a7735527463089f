"""The root lock: one running job per output root, its heartbeat, and locks left by dead jobs (plain folders, no cluster)."""

from __future__ import annotations

import json
import time

import pytest

from asr_actor.storage import Store
from jobs.state.lock import RootLock, RootLocked


def test_the_root_lock_refuses_a_second_job_and_a_stale_lock_needs_break(tmp_path):
    first = RootLock(str(tmp_path), "night-1", ttl_s=60, store=Store(1))
    first.acquire()
    second = RootLock(str(tmp_path), "night-2", ttl_s=60, store=Store(1))
    with pytest.raises(RootLocked, match=r"_LOCK: run night-1 on .* is running on this output root \(heartbeat 0 s ago\)"):
        second.acquire()
    first.release()
    assert not (tmp_path / "_LOCK").exists()
    second.acquire()  # free again
    held = json.loads((tmp_path / "_LOCK").read_text())
    held["heartbeat"] = time.time() - 120  # its job died two minutes ago
    (tmp_path / "_LOCK").write_text(json.dumps(held))
    third = RootLock(str(tmp_path), "night-3", ttl_s=60, store=Store(1))
    with pytest.raises(RootLocked, match="a stale lock of run night-2 .* run again with --break-lock"):
        third.acquire()
    third.acquire(break_stale=True)
    assert json.loads((tmp_path / "_LOCK").read_text())["run_id"] == "night-3"
    third.release()


def test_the_heartbeat_keeps_a_long_run_lock_fresh(tmp_path):
    lock = RootLock(str(tmp_path), "long", ttl_s=0.6, store=Store(1))
    lock.acquire()
    first = json.loads((tmp_path / "_LOCK").read_text())["heartbeat"]
    time.sleep(1.0)
    assert json.loads((tmp_path / "_LOCK").read_text())["heartbeat"] > first
    with pytest.raises(RootLocked, match="is running"):
        RootLock(str(tmp_path), "other", ttl_s=0.6, store=Store(1)).acquire()
    lock.release()


def test_a_lock_left_by_a_killed_job_on_this_machine_is_taken_at_once(tmp_path):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    first = RootLock(str(tmp_path), "killed", ttl_s=600, store=Store(1))
    first.acquire()
    first._stop.set()
    held = json.loads((tmp_path / "_LOCK").read_text())
    (tmp_path / "_LOCK").write_text(json.dumps({**held, "pid": int(gone.stdout)}))  # a process that has exited
    again = RootLock(str(tmp_path), "resumed", ttl_s=600, store=Store(1))
    again.acquire()  # no --break-lock needed: the owner is certainly dead
    assert json.loads((tmp_path / "_LOCK").read_text())["run_id"] == "resumed"
    again.release()


def test_a_lock_the_store_will_not_let_go_is_left_with_a_warning_not_an_error(tmp_path, capsys):
    lock = RootLock(str(tmp_path), "r", ttl_s=600, store=Store(1))
    lock.acquire()
    (tmp_path / "_LOCK").unlink()
    (tmp_path / "_LOCK").mkdir()  # reading the lock now fails: the run's own outcome must still be what surfaces
    lock.release()
    err = capsys.readouterr().err
    assert "warning: could not remove the lock" in err and "goes stale" in err
