"""The device check cannot rot: its pack, its staging and its whole-job figures run on every CI run (dry, CPU),
in a Python that has only the GPU image's packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench_parts.gpu_busy import Samples  # noqa: E402
from gpu_pack import IMAGE, wanted  # noqa: E402


def test_the_pack_holds_what_the_image_lacks_and_nothing_it_has():
    packages = wanted()
    assert {"ray", "av", "jsonschema", "pysubs2", "jiwer"} <= set(packages)
    assert not {"torch", "transformers", "numpy", "pyarrow", "tokenizers", "safetensors", "pyyaml"} & set(packages)
    assert not set(IMAGE) & set(packages) and "asr-batch" not in packages
    from jobs.run.versions import installed

    assert all(installed(name) == version for name, version in packages.items())  # the lock's versions, as installed


def test_the_busy_fraction_counts_the_steady_state_only():
    samples = Samples()
    assert samples.fraction() is None
    samples.values = [0, 0, 50, 100, 0, 90, 0, 0]  # start-up, work with one gap, then the writer's tail
    assert samples.fraction() == pytest.approx((50 + 100 + 0 + 90) / 4 / 100)


@pytest.mark.slow
def test_the_dry_device_check_packs_stages_and_measures_the_whole_job(asr_cache, tmp_path):
    from servers import job_env, ray_stop

    env = job_env({"ASR_GPU_SITE": str(tmp_path / "site")}, asr_cache)
    try:
        proc = subprocess.run(["bash", "scripts/gpu_check.sh", "dry", "--out", str(tmp_path / "out")], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=900)
    finally:
        ray_stop(env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)  # one JSON document, nothing else on stdout
    assert doc["dry"] is True and doc["machine"]["gpu"] is None and doc["tokens_per_window"] == 20
    # it ran in a Python holding only the image's packages and the pack: not in this .venv (which has ctranslate2)
    assert doc["machine"]["versions"]["ctranslate2"] is None and doc["machine"]["versions"]["ray"] == "2.60.0"
    assert [(p["model"], p["compile"]) for p in doc["points"]] == [("tiny", "static")]  # the device: off and on
    for p in doc["points"]:
        assert "error" not in p, p
        assert p["audio_s"] >= 45 and p["gpu_busy"] is None
        assert p["bare_rtfx"] > 0 and p["job_rtfx"] > 0 and p["job_startup_s"] > 0
        assert p["job/bare"] == pytest.approx(p["job_rtfx"] / p["bare_rtfx"], rel=0.01)
    assert [f.name for f in (tmp_path / "out").glob("*gpu-check-dry-cpu.json")]
    packed = json.loads((ROOT / ".gpu/site.json").read_text())["packages"]
    staged = {d.name.split("-")[0].lower() for d in (tmp_path / "site").glob("*.dist-info")}
    assert {"ray", "av"} <= staged and len(staged) == len(packed)
    assert not (tmp_path / "site/ray/jars").exists()  # ray's Java jars do not travel
