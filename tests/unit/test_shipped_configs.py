"""Every YAML the repository ships parses and validates the way its user would run it.

Job and sweep configs go through the same loaders as ``tuneforge train`` / ``tuneforge sweep`` (run from
the repository root, as the docs show), and every local file they name must exist: a config that points
at a moved dataset fails here, not at a user's first run. The VM cluster files go through what
``ray up`` does before launching (``prepare_config`` then ``validate_config``, against Ray's own
schema); the KubeRay manifests are validated against the operator's own CRD schemas (vendored in
tests/fixtures/kuberay), as strictly as ``kubectl apply`` validates fields; the MLflow manifest is
checked for what the Ray pods rely on (its Service's name and port, the Host header it accepts, secrets
by reference). All of them must name the one image docker/Dockerfile builds, at pyproject's version.
The file lists are globbed, so a new YAML is covered, or fails ``test_every_yaml``.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import ray
import yaml
from mlflow.server.security_utils import is_allowed_host_header
from ray.autoscaler._private.util import prepare_config, validate_config

from tuneforge.config import JobConfig, load_config
from tuneforge.models.gguf import PKG_SCHEME, resolve_package_file
from tuneforge.tune.config import load_sweep

REPO = Path(__file__).resolve().parents[2]
JOB_CONFIGS = sorted((REPO / "jobs/configs").glob("*/*.yaml"))
SWEEP_CONFIGS = [p for p in JOB_CONFIGS if p.parent.name == "sweep"]
RUN_CONFIGS = [p for p in JOB_CONFIGS if p.parent.name != "sweep"]
VM_CLUSTERS = sorted((REPO / "cluster/vm").glob("*.yaml"))
KUBE_DIR = REPO / "cluster/kubernetes"
KUBE_FILES = sorted(KUBE_DIR.glob("*.yaml"))
RAYCLUSTER, RAYJOB = KUBE_DIR / "raycluster.yaml", KUBE_DIR / "rayjob.yaml"
MLFLOW, STORAGE = KUBE_DIR / "mlflow.yaml", KUBE_DIR / "storage.yaml"
CRDS = REPO / "tests/fixtures/kuberay"
DOCKERFILE = REPO / "docker/Dockerfile"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"ghcr.io/tuneforge/tuneforge:{VERSION}"
# Images from elsewhere that a manifest may name (the database behind MLflow); everything else runs IMAGE.
THIRD_PARTY_IMAGES = {"postgres:17"}
# What cluster/kubernetes/ may contain; each kind is checked below (ray.io kinds against the CRDs).
KUBE_KINDS = {
    ("v1", "Namespace"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("ray.io/v1", "RayCluster"),
    ("ray.io/v1", "RayJob"),
}
SHARED = REPO.parent / "shared"


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


def _named_files(job: JobConfig) -> list[str]:
    """Every local file a job reads: data files, mode sources, a local model or tokenizer."""
    named = [spec.path for spec in (*job.data.train_files, *job.data.eval_files)]
    named += [src for mode in job.data.modes for src in mode.sources]
    named += [p for p in (job.model.name_or_path, job.model.tokenizer) if p is not None]
    return named


def _assert_files_exist(job: JobConfig, config: Path) -> None:
    for name in _named_files(job):
        if name.startswith(PKG_SCHEME):
            assert resolve_package_file(name).is_file(), f"{config}: {name} is not installed"
        elif "://" not in name:
            if _in_shared(name) and not SHARED.is_dir():
                continue  # the public datasets beside the repository are optional (the benches swap them)
            assert Path(name).exists(), f"{config}: names {name}, which does not exist"


RUNTIME_ENV = REPO / "jobs/runtime_env.yaml"


def test_runtime_env_is_valid_for_ray_and_ships_the_library() -> None:
    """``ray job submit --runtime-env jobs/runtime_env.yaml`` and ``tuneforge submit`` read this file:
    Ray's own ``RuntimeEnv`` accepts it, and its paths are the repository and the package."""
    from ray.runtime_env import RuntimeEnv

    from tuneforge.distributed.submit import load_runtime_env

    env = load_runtime_env(REPO)
    RuntimeEnv(**env)  # Ray's validation of every field (raises on an unknown plugin or bad value)
    assert Path(env["working_dir"]) == REPO
    assert [Path(m) for m in env["py_modules"]] == [REPO / "platform/tuneforge"]
    assert (Path(env["py_modules"][0]) / "__init__.py").is_file()
    assert env["env_vars"]["HF_HUB_OFFLINE"] == "1"
    assert "TUNEFORGE_HOME" not in env["env_vars"]  # the storage is the submitter's to name


def _in_shared(name: str) -> bool:
    """Whether ``name`` lies in ``../shared`` (the public datasets next to a checkout, not shipped)."""
    return Path(name).resolve().is_relative_to(SHARED.resolve())


def test_every_yaml_is_checked_here() -> None:
    """A YAML added anywhere under jobs/ or cluster/ must be one of the kinds this module checks."""
    shipped = {p for top in ("jobs", "cluster") for p in (REPO / top).rglob("*.y*ml")}
    checked = {*JOB_CONFIGS, *VM_CLUSTERS, *KUBE_FILES, RUNTIME_ENV}
    assert shipped == checked, f"unchecked YAML: {sorted(map(str, shipped - checked))}"
    assert RUN_CONFIGS and SWEEP_CONFIGS
    assert {p.name for p in VM_CLUSTERS} >= {"aws.yaml", "gcp.yaml", "onprem.yaml"}
    assert {RAYCLUSTER, RAYJOB, MLFLOW, STORAGE} <= set(KUBE_FILES)
    assert not (REPO / "cluster/k8s").exists(), "cluster/k8s moved to cluster/kubernetes"


@pytest.mark.parametrize("config", RUN_CONFIGS, ids=_ids(RUN_CONFIGS))
def test_job_config_loads_and_names_existing_files(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    job = load_config(config)
    assert job.trainer.max_steps is None or job.trainer.max_steps > 0
    _assert_files_exist(job, config)


@pytest.mark.parametrize("config", SWEEP_CONFIGS, ids=_ids(SWEEP_CONFIGS))
def test_sweep_config_loads_with_a_space_that_fits_its_job(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``load_sweep`` validates the base job, the search settings and the space against the job."""
    monkeypatch.chdir(REPO)
    job, sweep = load_sweep(config)
    assert sweep.num_samples >= 1 and sweep.space, f"{config}: an empty search"
    _assert_files_exist(job, config)


# --- VM clusters (`ray up`) ----------------------------------------------------------------------------


def _prepared(path: Path) -> dict[str, Any]:
    """What ``ray up`` validates: defaults filled in, then Ray's JSON schema.

    ``prepare_config`` for the aws and gcp providers only merges Ray's per-provider defaults.yaml (no
    boto3 / googleapiclient import, no credentials), so the real path runs offline; the cloud calls
    come later, in ``bootstrap_config``, which needs an account and is not run here.
    """
    prepared = prepare_config(yaml.safe_load(path.read_text()))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("path", VM_CLUSTERS, ids=_ids(VM_CLUSTERS))
def test_vm_cluster_file_passes_ray_up_validation(path: Path) -> None:
    """Ray's schema, plus what a tuneforge cluster needs: GPUs, the image, shared storage, tracking, auth."""
    prepared = _prepared(path)
    provider = prepared["provider"]["type"]
    workers = [t for t in prepared["available_node_types"].values() if t["max_workers"] > 0]
    assert workers, "the cluster file launches no worker"
    if provider != "local":  # the local provider's one node type is whatever the machines have
        assert any(t["resources"].get("GPU", 0) > 0 for t in workers), "no GPU worker type"
        head = prepared["available_node_types"][prepared["head_node_type"]]
        assert head["resources"].get("GPU", 0) == 0, "the head is a CPU node"
    assert prepared["docker"]["image"] == IMAGE
    assert "-v /mnt/tuneforge:/mnt/tuneforge" in prepared["docker"]["run_options"]
    assert any("/mnt/tuneforge" in c and "mount " in c for c in prepared["initialization_commands"])
    assert prepared["file_mounts"] == {"~/.ray/auth_token": "~/.ray/auth_token"}
    head_start, worker_start = prepared["head_start_ray_commands"], prepared["worker_start_ray_commands"]
    # Every node logs to the one MLflow server the head starts, on the head's address and port 5000.
    for commands, head_ip in ((head_start, "$HEAD_IP"), (worker_start, "$RAY_HEAD_IP")):
        start = next(c for c in commands if "ray start" in c)
        assert "RAY_AUTH_MODE=token" in start and "TUNEFORGE_HOME=/mnt/tuneforge" in start
        assert f"MLFLOW_TRACKING_URI=http://{head_ip}:5000 " in start, start
    ray_head = next(c for c in head_start if "ray start" in c)
    assert "--dashboard-host=127.0.0.1" in ray_head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in ray_head
    assert any('mlflow server --host "$HEAD_IP" --port 5000' in c for c in head_start)
    if provider in ("aws", "gcp"):  # the head's autoscaler calls the cloud API with these
        sdk = {"aws": "boto3", "gcp": "google-api-python-client"}[provider]
        assert any(sdk in c for c in prepared["head_setup_commands"])


def test_vm_cluster_validation_can_fail() -> None:
    """The schema check above rejects a wrong file (a misspelled key, a string count)."""
    raw = yaml.safe_load((REPO / "cluster/vm/aws.yaml").read_text())
    typo = {**raw, "max_worker": 2}
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        _prepared_raw(typo)
    bad = copy.deepcopy(raw)
    bad["available_node_types"]["gpu_worker"]["max_workers"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        _prepared_raw(bad)


def _prepared_raw(raw: dict[str, Any]) -> None:
    validate_config(prepare_config(raw))


# --- Kubernetes ----------------------------------------------------------------------------------------


# libyaml's loader when PyYAML has it: the CRDs are 1-1.4 MB, tens of seconds with the pure-Python one.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.load_all(path.read_text(), Loader=_Loader) if d is not None]


@functools.cache
def _crd_validator(plural: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_crd_schema(plural))


def _crd_schema(plural: str) -> dict[str, Any]:
    """The served ``ray.io/v1`` schema of a vendored KubeRay CRD, closed the way kubectl validates.

    The API server prunes unknown fields, and ``kubectl apply`` (strict field validation, its default)
    rejects them: a misspelled key must fail here too, so every object schema that lists its properties
    and neither allows extra ones nor preserves unknown fields gets ``additionalProperties: false``.
    """
    (crd,) = _docs(CRDS / f"ray.io_{plural}.yaml")
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert version["served"] and version["storage"]
    return _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))


def _closed(schema: Any) -> Any:
    if isinstance(schema, dict):
        for value in schema.values():
            _closed(value)
        open_ = schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
        if "properties" in schema and not open_:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        for item in schema:
            _closed(item)
    return schema


CRD_OF = {"RayCluster": "rayclusters", "RayJob": "rayjobs"}


def _validate_ray_doc(doc: dict[str, Any]) -> None:
    _crd_validator(CRD_OF[doc["kind"]]).validate(doc)


def _ray_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def _pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every pod template of a manifest document (Ray groups, Deployments, StatefulSets)."""
    if doc["kind"] in CRD_OF:
        spec = _ray_spec(doc)
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            yield group["template"]["spec"]
    elif doc["kind"] in ("Deployment", "StatefulSet"):
        yield doc["spec"]["template"]["spec"]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_every_kubernetes_document_is_a_known_kind_in_a_namespace() -> None:
    kinds = set()
    for path in KUBE_FILES:
        for doc in _docs(path):
            kind = (doc["apiVersion"], doc["kind"])
            assert kind in KUBE_KINDS, f"{path.name}: {kind} is not checked by this module"
            kinds.add(kind)
            assert doc["metadata"]["name"]
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace"), f"{path.name}: {doc['kind']} has no namespace"
    assert kinds == KUBE_KINDS


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB], ids=["raycluster", "rayjob"])
def test_kuberay_manifest_validates_against_the_crd(path: Path) -> None:
    """The operator's own schema (KubeRay v1.7.0), then what tuneforge needs of the cluster."""
    (doc,) = _docs(path)
    _validate_ray_doc(doc)
    spec = _ray_spec(doc)
    assert spec["rayVersion"] == ray.__version__, "the manifest's Ray must be the Ray this repository pins"
    assert spec["authOptions"] == {"mode": "token"}, "Ray token authentication stays on"
    for worker in spec["workerGroupSpecs"]:
        assert worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"]
    gpu_limits = [
        c["resources"]["limits"]
        for w in spec["workerGroupSpecs"]
        for c in w["template"]["spec"]["containers"]
    ]
    assert any("nvidia.com/gpu" in limits for limits in gpu_limits), "no worker group asks for a GPU"


def test_kuberay_validation_can_fail() -> None:
    """The CRD check rejects what the operator would: a string count, no head, a misspelled field."""
    (doc,) = _docs(RAYCLUSTER)
    broken = copy.deepcopy(doc)
    broken["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    with pytest.raises(jsonschema.ValidationError, match="'two' is not of type 'integer'"):
        _validate_ray_doc(broken)
    headless = copy.deepcopy(doc)
    del headless["spec"]["headGroupSpec"]
    with pytest.raises(jsonschema.ValidationError, match="'headGroupSpec' is a required property"):
        _validate_ray_doc(headless)
    typo = copy.deepcopy(doc)
    typo["spec"]["workerGroupSpecs"][0]["maxReplica"] = 8
    with pytest.raises(jsonschema.ValidationError, match="maxReplica"):
        _validate_ray_doc(typo)
    (job,) = _docs(RAYJOB)
    keep = copy.deepcopy(job)
    keep["spec"]["shutdownAfterJobFinishes"] = "yes"
    with pytest.raises(jsonschema.ValidationError, match="'yes' is not of type 'boolean'"):
        _validate_ray_doc(keep)


def test_rayjob_runs_finetune_on_the_raycluster_spec_and_cleans_up() -> None:
    (job,) = _docs(RAYJOB)
    (cluster,) = _docs(RAYCLUSTER)
    spec = job["spec"]
    assert spec["rayClusterSpec"] == cluster["spec"], (
        "rayjob.yaml must start the cluster raycluster.yaml defines"
    )
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    entry = spec["entrypoint"]
    match = re.search(r"python jobs/finetune\.py --config (\S+)", entry)
    assert match, entry
    assert (REPO / match.group(1)).is_file(), f"the RayJob's config {match.group(1)} is not shipped"
    assert "distributed.use_gpu=true" in entry
    assert job["metadata"]["namespace"] == cluster["metadata"]["namespace"]


def test_every_ray_pod_mounts_the_shared_claim_at_one_path() -> None:
    """Checkpoints of all ranks land in one run dir only if every pod sees the same volume, same path."""
    (pvc,) = [d for d in _docs(STORAGE) if d["kind"] == "PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    mounts = set()
    for path in (RAYCLUSTER, RAYJOB):
        (doc,) = _docs(path)
        assert doc["metadata"]["namespace"] == pvc["metadata"]["namespace"]
        for pod in _pod_specs(doc):
            claims = {
                v["name"]: v["persistentVolumeClaim"]["claimName"]
                for v in pod["volumes"]
                if "persistentVolumeClaim" in v
            }
            assert pvc["metadata"]["name"] in claims.values(), f"{path.name}: a pod without the claim"
            volume = next(n for n, c in claims.items() if c == pvc["metadata"]["name"])
            for container in pod["containers"]:
                (mount,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
                mounts.add(mount)
                assert _env(container)["TUNEFORGE_HOME"]["value"] == mount
    assert len(mounts) == 1, f"the shared volume is mounted at {mounts}"


def test_mlflow_manifest_serves_the_uri_the_ray_pods_use() -> None:
    """The URI in raycluster/rayjob names mlflow.yaml's Service (name, namespace, port), and MLflow's
    Host-header guard accepts it; the Services are ClusterIP; passwords come from Secrets only."""
    docs = _docs(MLFLOW)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    assert {k: len(v) for k, v in by_kind.items()} == {
        "Namespace": 1,
        "Service": 2,
        "StatefulSet": 1,
        "Deployment": 1,
    }
    assert "Secret" not in by_kind, "credentials are created by hand (kubectl create secret), never shipped"
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    assert all(s["spec"]["type"] == "ClusterIP" for s in services.values())
    (deployment,) = by_kind["Deployment"]
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert server["image"] == IMAGE
    service = services["mlflow"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in [p["containerPort"] for p in server["ports"]]
    args = dict(a.removeprefix("--").split("=", 1) for a in server["args"])
    assert int(args["port"]) == port["targetPort"]
    backend = urlparse(args["backend-store-uri"])
    assert backend.scheme == "postgresql" and backend.password is None, "no password in the backend URI"
    assert backend.hostname == f"postgres.{service['metadata']['namespace']}.svc.cluster.local"
    assert backend.port == services["postgres"]["spec"]["ports"][0]["port"]
    assert urlparse(args["artifacts-destination"]).scheme in ("s3", "gs")
    assert _env(server)["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
    (postgres,) = by_kind["StatefulSet"][0]["spec"]["template"]["spec"]["containers"]
    assert _env(postgres)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    from tuneforge.tracking.redact import is_secret_key

    for pod in (server, postgres):
        literal = [e["name"] for e in pod.get("env", []) if is_secret_key(e["name"]) and "value" in e]
        assert literal == [], f"secret-looking env vars with literal values: {literal}"

    expected = (
        f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
        f":{port['port']}"
    )
    allowed = args["allowed-hosts"].split(",")
    for path in (RAYCLUSTER, RAYJOB):
        (doc,) = _docs(path)
        for pod in _pod_specs(doc):
            for container in pod["containers"]:
                assert _env(container)["MLFLOW_TRACKING_URI"]["value"] == expected
    assert is_allowed_host_header(allowed, urlparse(expected).netloc), "MLflow would refuse the Ray pods"
    assert is_allowed_host_header(allowed, "localhost:5000"), "kubectl port-forward must work"
    assert not is_allowed_host_header(allowed, "evil.example.com:5000")


# --- the image -----------------------------------------------------------------------------------------


def _images(node: Any) -> Iterator[str]:
    """Every value of an ``image`` / ``head_image`` / ``worker_image`` key, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("image", "head_image", "worker_image") and isinstance(value, str):
                yield value
            else:
                yield from _images(value)
    elif isinstance(node, list):
        for item in node:
            yield from _images(item)


def test_every_cluster_definition_names_the_image_the_dockerfile_builds() -> None:
    named = {
        (path.name, image)
        for path in [*VM_CLUSTERS, *KUBE_FILES]
        for doc in _docs(path)
        for image in _images(doc)
    }
    ours = {image for _, image in named if image not in THIRD_PARTY_IMAGES}
    assert ours == {IMAGE}, f"images other than {IMAGE}: {sorted(named)}"
    assert {name for name, _ in named} >= {p.name for p in VM_CLUSTERS} | {"raycluster.yaml", "rayjob.yaml"}
    dockerfile = DOCKERFILE.read_text()
    assert f"ARG TUNEFORGE_VERSION={VERSION}\n" in dockerfile, "the Dockerfile's version is pyproject's"
    assert f"ARG RAY_VERSION={ray.__version__}\n" in dockerfile, "the base image is the pinned Ray"
    assert "FROM rayproject/ray:${RAY_VERSION}-py311-gpu" in dockerfile
    assert f"-t {IMAGE} ." in dockerfile
    assert f"docker build -f docker/Dockerfile -t {IMAGE} ." in (REPO / "cluster/README.md").read_text()


def _wheel_stage_sources() -> list[str]:
    """The paths the Dockerfile's wheel stage copies into its build context (``COPY src... dest``)."""
    stage = DOCKERFILE.read_text().split(" AS wheel", 1)[1].split("\nFROM ", 1)[0]
    sources: list[str] = []
    for line in stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    return sources


def test_the_dockerfile_wheel_stage_builds_the_package(tmp_path: Path) -> None:
    """Docker is not available here: build the wheel from exactly what the wheel stage copies, with the
    command it runs (offline: no build isolation), and check the package and its data are inside.
    About 2 s (pure Python, setuptools from the venv), so it runs in the default suite."""
    sources = _wheel_stage_sources()
    assert sources == ["pyproject.toml", "README.md", "platform/"], sources
    context = tmp_path / "src"
    context.mkdir()
    for source in sources:
        src = REPO / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, context / source)
    out = tmp_path / "wheels"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
        ".",
    ]
    subprocess.run(cmd, cwd=context, check=True, timeout=300)
    wheel = out / f"tuneforge-{VERSION}-py3-none-any.whl"
    assert wheel.is_file(), sorted(out.iterdir())
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tuneforge/__init__.py" in names and "tuneforge/py.typed" in names
    assets = {n for n in names if n.startswith("tuneforge/assets/")}
    shipped = {
        f"tuneforge/{p.relative_to(REPO / 'platform/tuneforge').as_posix()}"
        for p in (REPO / "platform/tuneforge/assets").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped and shipped <= assets, f"package data missing from the wheel: {sorted(shipped - assets)}"
    assert "tuneforge/cli/main.py" in names
    assert not any(n.startswith(("tests/", "jobs/", "platform/")) for n in names)
