"""``export``'s Ray engine (:mod:`jobs.report.current_table`): the same table as the in-process fold, bucket by bucket.

A synthetic root (the benchmark's: a full run, three incremental nights with changed,
failed and deleted inputs) is exported by both engines; with a small bucket size the
Ray engine writes several parts, which together must be the local engine's table, in
id order, for every kind of destination.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench_parts import synthetic_root  # noqa: E402
from jobs.report import current_table  # noqa: E402
from jobs.report.export import export  # noqa: E402
from jobs.state.run_folder import PUBLISHED  # noqa: E402

IDS = 3_000  # inputs of the synthetic root's full run; ~3,900 rows over its four runs
BUCKET_ROWS = 1_000  # so that the Ray engine cuts the ids into four ranges


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("root")
    synthetic_root.build(str(path), IDS, rows_per_part=250, text_bytes=200, error_share=0.05)
    return path


@pytest.fixture
def small_buckets(monkeypatch):
    monkeypatch.setattr(current_table, "BUCKET_ROWS", BUCKET_ROWS)


def _parts(folder: Path, fmt: str = "parquet") -> list[Path]:
    return sorted(folder.glob(f"part-*.{fmt}"))


@pytest.mark.slow
def test_the_ray_engine_writes_the_local_table_in_id_ordered_parts(root, tmp_path, local_ray, small_buckets):
    local = export(str(root), str(tmp_path / "local"), engine="local")
    stale = tmp_path / "ray" / "part-00099.parquet"  # a part of an earlier, larger export
    stale.parent.mkdir()
    pq.write_table(pa.table({"id": ["zz"]}), stale)
    figures = export(str(root), str(tmp_path / "ray"), engine="ray")
    expected = pq.read_table(tmp_path / "local")
    got = pa.concat_tables([pq.read_table(p) for p in _parts(tmp_path / "ray")])
    assert figures["engine"] == "ray" and local["engine"] == "local"
    assert figures["rows"] == local["rows"] == expected.num_rows > IDS * 0.99  # a few inputs were deleted
    assert figures["parts"] == len(_parts(tmp_path / "ray")) >= 3 and not stale.exists()
    assert got.equals(expected)  # the same rows, columns and types, in id order across the parts
    assert got.schema.equals(expected.schema)


@pytest.mark.slow
def test_the_ray_engine_streams_the_same_rows_to_stdout(root, local_ray, small_buckets, capsysbinary):
    export(str(root), "-", "jsonl", ("id", "run_id", "error"), engine="local")
    local = capsysbinary.readouterr().out.decode().splitlines()
    figures = export(str(root), "-", "jsonl", ("id", "run_id", "error"), engine="ray")
    ray_lines = capsysbinary.readouterr().out.decode().splitlines()
    assert ray_lines == local and figures["rows"] == len(local)
    assert {json.loads(line)["run_id"] for line in local} == {"full", "nightly-1", "nightly-2", "nightly-3"}


@pytest.mark.slow
def test_the_ray_engine_writes_the_same_files_per_row_and_a_run_folder_alone(root, tmp_path, local_ray, small_buckets):
    local = export(str(root), str(tmp_path / "local"), "srt", engine="local")
    figures = export(str(root), str(tmp_path / "ray"), "srt", engine="ray")
    assert {k: figures[k] for k in ("rows", "files", "skipped_errors")} == \
        {k: local[k] for k in ("rows", "files", "skipped_errors")}
    assert local["skipped_errors"] > 0  # error rows that no later ok row replaced
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "ray").iterdir()) and len(names) == local["files"]
    assert all((tmp_path / "ray" / n).read_bytes() == (tmp_path / "local" / n).read_bytes() for n in names[::97])
    night = root / "nightly-2"  # a run folder: its own rows, no listing to keep them by
    export(str(night), str(tmp_path / "night-local"), engine="local")
    export(str(night), str(tmp_path / "night-ray"), engine="ray")
    assert pa.concat_tables([pq.read_table(p) for p in _parts(tmp_path / "night-ray")]).equals(
        pq.read_table(tmp_path / "night-local"))


def test_auto_folds_a_small_root_in_this_process(root, tmp_path):
    from jobs.report.engines import LOCAL_MAX_ROWS, choose

    assert export(str(root), str(tmp_path / "out"), engine="auto")["engine"] == "local"  # ~3,900 rows: no Ray
    assert choose("auto", LOCAL_MAX_ROWS) == "local" and choose("auto", LOCAL_MAX_ROWS + 1) == "ray"
    assert choose("local", 10 ** 9) == "local"
    with pytest.raises(ValueError, match=r"^engine 'spark': one of auto, local, ray$"):
        choose("spark", 1)


@pytest.mark.slow
def test_the_benchmark_reports_both_engines_on_a_root(root, tmp_path):
    import subprocess

    bench = Path(__file__).resolve().parents[1] / "scripts" / "bench_export.py"
    proc = subprocess.run([sys.executable, str(bench), "--ids", str(IDS), "--root", str(root), "--engines", "ray,local",
                           "--publish"], capture_output=True, text=True, timeout=600, check=True)
    report = json.loads(proc.stdout)
    expected = export(str(root), str(tmp_path / "out"), engine="local")["rows"]
    assert set(report["export"]) == {"ray", "local"} and report["ids"] == IDS
    for engine, figures in report["export"].items():
        assert figures["returncode"] == 0 and figures["rows"] == expected, engine
        assert 0 < figures["driver_peak_heap_gib"] <= figures["max_process_peak_heap_gib"], engine
        assert figures["wall_s"] >= figures["export_wall_s"] > 0, engine
    assert report["export"]["ray"]["processes_seen"] > report["export"]["local"]["processes_seen"] == 1
    published = report["publish"]
    assert list(published["runs"]) == ["full", "nightly-1", "nightly-2", "nightly-3"]  # oldest first, one table
    assert published["runs"]["full"]["rows_upserted"] == IDS and published["table_rows"] == expected
    listed = {run: pq.read_metadata(root / run / name).num_rows
              for run, name in (("full", "manifest.parquet"), ("nightly-1", "listing.parquet"),
                                ("nightly-2", "listing.parquet"), ("nightly-3", "listing.parquet"))}
    for before, night in (("full", "nightly-1"), ("nightly-1", "nightly-2"), ("nightly-2", "nightly-3")):
        figures = published["runs"][night]
        taken = pq.read_metadata(root / night / "manifest.parquet").num_rows
        assert figures["returncode"] == 0 and 0 < figures["rows_upserted"] <= taken, night
        assert figures["ids_deleted"] == listed[before] - listed[night] > 0, night  # a deleted id is never listed again
    assert report["root_bytes"] == sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != PUBLISHED)
