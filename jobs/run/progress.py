"""Progress on stderr while a run or a ``transcribe`` works: files, audio, RTFx, errors, ETA.

Two sources feed one :class:`Progress`: the rows that land (files with a row, failed
ones among them, their audio: exact, and what ``_SUCCESS`` adds up) and the windows
the model has decoded, reported after every ``generate`` call (so a long model call
over a few long files still moves). On a terminal it is one ``tqdm`` bar, redrawn in
place; elsewhere (cron, ``ray job logs``, a pipe) a plain ``progress: ...`` line every
``interval_s`` seconds while something changed, and a last one at the end.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass
class Counts:
    """What has happened so far; ``files`` etc. count this command's rows only."""

    files: int = 0
    failed: int = 0
    audio_s: float = 0.0
    windows: int = 0  # 30 s windows decoded by the model


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """Counts plus a display; thread-safe (the job's window reports arrive on a thread of their own)."""

    def __init__(self, total: int, done_before: int = 0, interval_s: float = 10.0, stream: TextIO | None = None,
                 tty: bool | None = None) -> None:
        self.total, self.done_before, self.interval_s = total, done_before, interval_s
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.counts = Counts()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._last_line = float("-inf")
        self._shown: tuple | None = None
        self._bar: Any = None
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done_before, unit="file", file=self.stream, dynamic_ncols=True,
                             smoothing=0.1, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")

    @property
    def done(self) -> int:
        return self.done_before + self.counts.files

    def rows(self, files: int, failed: int, audio_s: float) -> None:
        """Rows landed (written, or returned by the transcriber)."""
        with self._lock:
            self.counts.files += files
            self.counts.failed += failed
            self.counts.audio_s += audio_s
            self._show()

    def windows(self, count: int) -> None:
        """The model decoded ``count`` more windows."""
        with self._lock:
            self.counts.windows += count
            self._show()

    def restart(self, done: int) -> None:
        """A new attempt after a loss: ``done`` files have a row; this attempt's rows count from there."""
        with self._lock:
            self.done_before, self.counts.files = done, 0

    def line(self) -> str:
        c, wall = self.counts, time.monotonic() - self.started
        parts = [f"{self.done}/{self.total} files" + (f" ({c.failed} failed)" if c.failed else ""),
                 f"{c.audio_s / 3600:.2f} h audio", f"{c.windows} windows"]
        if c.audio_s and wall:
            parts.append(f"RTFx {c.audio_s / wall:.1f}")
        parts.append(f"ETA {self.eta()}")
        return "progress: " + ", ".join(parts)

    def eta(self) -> str:
        """Remaining files at this command's rate so far; ``?`` until its first row."""
        left, wall = self.total - self.done, time.monotonic() - self.started
        if left <= 0:
            return "0m00s"
        return _clock(left * wall / self.counts.files) if self.counts.files else "?"

    def _show(self) -> None:
        c = self.counts
        if self._bar is not None:
            self._bar.n = self.done
            failed = f", {c.failed} failed" if c.failed else ""
            wall = time.monotonic() - self.started
            rtfx = f", RTFx {c.audio_s / wall:.1f}" if c.audio_s and wall else ""
            self._bar.set_postfix_str(f"{c.audio_s / 3600:.2f} h audio, {c.windows} windows{rtfx}{failed}", refresh=False)
            self._bar.refresh()
            return
        state = (self.done, c.failed, c.windows)
        now = time.monotonic()
        if state != self._shown and now - self._last_line >= self.interval_s:
            self._emit(now, state)

    def _emit(self, now: float, state: tuple) -> None:
        print(self.line(), file=self.stream, flush=True)
        self._last_line, self._shown = now, state

    def close(self) -> None:
        """The last state, shown once."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            elif self._shown != (self.done, self.counts.failed, self.counts.windows):
                self._emit(time.monotonic(), (self.done, self.counts.failed, self.counts.windows))


class WindowTally:
    """The model actors' window counts for the driver: a Ray actor with no CPU, read and reset by the driver."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, count: int) -> None:
        self.count += count

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


class TallyReader:
    """A driver thread that moves the current tally's counts into ``progress`` every ``poll_s`` seconds."""

    def __init__(self, progress: Progress, poll_s: float = 1.0) -> None:
        self.tally: Any = None
        self.progress, self.poll_s = progress, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="asr-batch-progress", daemon=True)
        self._thread.start()

    def follow(self, tally: Any) -> Any:
        """Read ``tally`` from now on (a new attempt's), after what the previous one still holds; return it."""
        self._drain()
        self.tally = tally
        return tally

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._drain()

    def _drain(self) -> None:
        import ray

        if self.tally is None:
            return
        try:
            count = ray.get(self.tally.take.remote(), timeout=max(self.poll_s * 5, 5.0))
        except Exception:  # noqa: BLE001 - a lost tally only costs the window count, never the run
            return
        if count:
            self.progress.windows(count)

    def stop(self) -> None:
        """Stop polling, after taking what the last model calls reported."""
        self._stop.set()
        self._thread.join()
        self._drain()
