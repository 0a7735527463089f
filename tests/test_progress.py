"""The progress display: plain lines off a terminal, a tqdm bar on one, the ETA (pure logic, real clock);
and a real job's stderr off a terminal (a real local Ray, the real tiny.en)."""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from conftest import GOOD
from jobs.run.progress import Progress
from servers import run_local_job


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_off_a_terminal_are_paced_and_end_with_the_last_state():
    out = io.StringIO()
    p = Progress(total=40, done_before=4, interval_s=3600, stream=out)
    p.windows(8)  # the first change shows at once
    p.rows(files=6, failed=2, audio_s=36.0)  # paced: inside the interval nothing more is printed
    p.windows(8)
    assert out.getvalue().splitlines() == ["progress: 4/40 files, 0.00 h audio, 8 windows, ETA ?"]
    p.close()
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("progress: 10/40 files (2 failed), 0.01 h audio, 16 windows, RTFx ") and "ETA " in last
    p.close()
    assert len(out.getvalue().splitlines()) == 2  # nothing new: nothing printed again


def test_the_eta_follows_this_commands_rate_and_a_restart_keeps_the_audio():
    p = Progress(total=10, stream=io.StringIO(), interval_s=0)
    p.started = time.monotonic() - 60  # one minute in
    p.rows(files=2, failed=0, audio_s=20.0)
    assert p.eta() == "4m00s"  # 8 left at 2 a minute
    p.restart(done=3)  # after a lost node: 3 files have a row
    assert p.done == 3 and p.counts.audio_s == 20.0
    p.rows(files=7, failed=0, audio_s=1.0)
    assert p.done == 10 and p.eta() == "0m00s"


def test_a_terminal_gets_one_bar_redrawn_in_place():
    out = _Tty()
    p = Progress(total=5, stream=out)
    p.rows(files=2, failed=1, audio_s=7200.0)
    p.windows(3)
    p.close()
    text = out.getvalue()
    assert "\r" in text and "2/5" in text and "2.00 h audio, 3 windows, RTFx " in text and ", 1 failed" in text
    assert "progress:" not in text


@pytest.mark.slow
def test_a_run_off_a_terminal_shows_progress_before_it_ends_and_no_ray_chatter(asr_cache, offline_model_dir, tmp_path):
    from asr_actor.audio import decode_audio
    from asr_actor.windows import plan_windows

    files = [GOOD / "long_pauses.ogg", GOOD / "wav8k_mono.wav"]  # 8 + 1 windows, 2 per generate call: 5 calls
    total = sum(len(plan_windows(decode_audio(p.read_bytes()).waveform, 20.0)) for p in files)
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"id": p.stem, "uri": str(p)}) + "\n" for p in files))
    proc = run_local_job(asr_cache, tmp_path / "m.jsonl", tmp_path / "runs", "p", "decoding.batch_size=2", "progress_s=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    progress = [line for line in lines if line.startswith("progress: ")]
    windows = [int(re.search(r", (\d+) windows", line).group(1)) for line in progress]
    assert progress[0].startswith("progress: 0/2 files") and 0 < windows[0] < total  # the model is still at work
    assert windows == sorted(windows) and progress[-1].startswith("progress: 2/2 files") and windows[-1] == total
    assert lines[0].startswith("run ") and lines[-1].startswith("summary: ") and lines[-2] == progress[-1]
    assert len(lines) == len(progress) + 2, lines  # Ray's own lines (INFO, warnings, its bars) stay out of the terminal
