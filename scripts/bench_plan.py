#!/usr/bin/env python3
"""Plan time and driver memory for a big manifest (default 1,000,000 rows); prints one JSON document.

Writes a manifest of ``--rows`` rows (ids, ``s3://`` URIs that are never read, one
pass-through column) in ``--format`` to a temporary folder, then, in this process,
times each step the driver takes before the first file is fetched and reads the
process's resident memory after it:

1. preflight (the offline model planned from its small files);
2. plan a new run: read and check the manifest, freeze ``manifest.parquet`` and ``run.json``;
3. write 20% of the ids as Parquet parts (as if a run had been killed), then plan the
   resume: done ids from ``data/``, the rows still to do;
4. start: the Ray Data input blocks of those rows (a local Ray, started beforehand).

With ``--incremental`` it times a nightly run instead: the root holds one complete run
that transcribed every object (synthetic rows), the listing has 2% new objects and 1%
changed ones, and the step is planning the incremental run (reading the earlier run,
selecting what to take, freezing manifest and listing).

    .venv/bin/python scripts/bench_plan.py --rows 1000000 --format parquet
    .venv/bin/python scripts/bench_plan.py --rows 100000 --incremental
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DONE_FRACTION = 0.2  # of the ids already written when the resume is planned
PART_ROWS = 10_000  # rows per Parquet part written to stand for the killed run


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _write_manifest(folder: Path, rows: int, fmt: str) -> Path:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pa.table({
        "id": pa.array([f"rec-{i:07d}" for i in range(rows)]),
        "uri": pa.array([f"s3://bucket/audio/{i % 1000:03d}/call-{i:07d}.wav" for i in range(rows)]),
        "speaker": pa.array([f"agent-{i % 97}" for i in range(rows)]),
    })
    path = folder / f"manifest.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        pcsv.write_csv(table, path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    return path


NEW_FRACTION, CHANGED_FRACTION = 0.02, 0.01  # of the listing, for --incremental


def _earlier_night(root: Path, manifest, fingerprint: str) -> None:
    """A complete run under ``root`` whose rows cover every object of ``manifest`` (ok, this fingerprint)."""
    from datetime import datetime, timezone

    import pyarrow as pa

    from jobs.state.run_folder import RunFolder

    folder = RunFolder(str(root / "night-1"))
    n = manifest.num_rows
    rows = manifest.select(["id", "uri", "size", "etag"]).append_column("error", pa.nulls(n, pa.string()))
    rows = rows.append_column("config_fingerprint", pa.array([fingerprint] * n))
    rows = rows.append_column("transcribed_at", pa.array([datetime.now(timezone.utc)] * n, pa.timestamp("us", tz="UTC")))
    for lo in range(0, n, PART_ROWS):
        folder.write_part(rows.slice(lo, PART_ROWS))
    folder.create({"run_id": "night-1", "started_at": "2026-01-01T00:00:00+00:00"}, manifest)
    folder.mark_complete({"rows": n})


def _incremental(args, tmp: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.config import load_config
    from jobs.run.planning import plan
    from jobs.run.preflight import preflight

    n = args.rows
    ids = [f"s3://bucket/audio/call-{i:07d}.wav" for i in range(n)]
    night1 = pa.table({"id": ids, "uri": ids, "size": pa.array([1000 + i for i in range(n)], pa.int64()),
                       "etag": [f"etag-{i}" for i in range(n)]})
    root = tmp / "runs"
    cfg = load_config(ROOT / "configs" / "local.yaml", ["incremental.enabled=true"], input=str(tmp / "listing.parquet"),
                      output=str(root), run_id="night-2")
    checked = preflight(cfg)
    _earlier_night(root, night1, checked.fingerprint)
    changed = int(n * CHANGED_FRACTION)
    extra = [f"s3://bucket/audio/new-{i:07d}.wav" for i in range(int(n * NEW_FRACTION))]
    tags = [f"etag-{i}" + ("-v2" if i < changed else "") for i in range(n)] + ["new"] * len(extra)
    listing = pa.table({"id": ids + extra, "uri": ids + extra, "size": pa.array(list(range(1000, 1000 + n)) + [1] * len(extra),
                                                                                pa.int64()), "etag": tags})
    pq.write_table(listing, tmp / "listing.parquet")
    started = time.perf_counter()
    p = plan(cfg, checked, resume=False)
    seconds = round(time.perf_counter() - started, 2)
    return {"rows": n, "listing": listing.num_rows, "taken": p.todo.num_rows, "unchanged": p.unchanged,
            "plan_incremental_s": seconds, "rss_mb": _rss_mb(), "peak_rss_mb": _peak_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["parquet", "csv", "jsonl"], default="parquet")
    parser.add_argument("--incremental", action="store_true", help="time the planning of a nightly incremental run")
    args = parser.parse_args()
    if args.incremental:
        print(json.dumps(_incremental(args, Path(tempfile.mkdtemp(prefix="asr-bench-plan-"))), indent=2))
        return

    import pyarrow as pa

    from jobs.config import load_config
    from jobs.run.dataset import source
    from jobs.run.planning import plan
    from jobs.run.preflight import preflight
    from jobs.run.ray_cluster import init_ray

    tmp = Path(tempfile.mkdtemp(prefix="asr-bench-plan-"))
    manifest = _write_manifest(tmp, args.rows, args.format)
    cfg = load_config(ROOT / "configs" / "local.yaml", [], input=str(manifest), output=str(tmp / "runs"), run_id="big")
    init_ray(cfg.ray)
    steps: dict[str, dict] = {"start": {"rss_mb": _rss_mb()}}

    def step(name: str, fn):
        started = time.perf_counter()
        out = fn()
        steps[name] = {"s": round(time.perf_counter() - started, 2), "rss_mb": _rss_mb()}
        return out

    checked = step("preflight", lambda: preflight(cfg))
    p = step("plan_new_run", lambda: plan(cfg, checked, resume=False))
    done = int(args.rows * DONE_FRACTION)
    written = p.manifest.slice(0, done).select(["id"]).append_column("error", pa.nulls(done, pa.string()))
    for lo in range(0, done, PART_ROWS):
        p.folder.write_part(written.slice(lo, PART_ROWS))
    resumed = step("plan_resume", lambda: plan(cfg, checked, resume=True))
    ds = step("start_input_blocks", lambda: source(resumed.todo, cfg.stages.prepare.batch_size))
    print(json.dumps({
        "rows": args.rows, "format": args.format, "manifest_mb": round(manifest.stat().st_size / 2**20, 1),
        "done_before_resume": done, "todo_after_resume": resumed.todo.num_rows, "input_blocks": ds.num_blocks(),
        "steps": steps, "peak_rss_mb": _peak_mb(),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
    }, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
