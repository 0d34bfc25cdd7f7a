"""Every YAML the repository ships parses and validates the way its user would run it.

Job and sweep configs go through the same loaders as ``tuneforge train`` / ``tuneforge sweep`` (run from
the repository root, as the docs show), and every local file they name must exist: a config that points
at a moved dataset fails here, not at a user's first run. The VM cluster file goes through what
``ray up`` does before launching (``prepare_config`` then ``validate_config``, against Ray's own
schema); the KubeRay manifest is checked for the fields the operator needs and for the Ray version this
repository pins. The file lists are globbed, so a new YAML is covered, or fails ``test_every_yaml``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tuneforge.config import JobConfig, load_config
from tuneforge.models.gguf import PKG_SCHEME, resolve_package_file
from tuneforge.tune.config import load_sweep

REPO = Path(__file__).resolve().parents[2]
JOB_CONFIGS = sorted((REPO / "jobs/configs").glob("*/*.yaml"))
SWEEP_CONFIGS = [p for p in JOB_CONFIGS if p.parent.name == "sweep"]
RUN_CONFIGS = [p for p in JOB_CONFIGS if p.parent.name != "sweep"]
VM_CLUSTER = REPO / "cluster/vm/cluster.yaml"
KUBERAY = REPO / "cluster/k8s/raycluster.yaml"
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


def _in_shared(name: str) -> bool:
    """Whether ``name`` lies in ``../shared`` (the public datasets next to a checkout, not shipped)."""
    return Path(name).resolve().is_relative_to(SHARED.resolve())


def test_every_yaml_is_checked_here() -> None:
    """A YAML added anywhere under jobs/ or cluster/ must be one of the kinds this module checks."""
    shipped = {p for top in ("jobs", "cluster") for p in (REPO / top).rglob("*.y*ml")}
    checked = {*JOB_CONFIGS, VM_CLUSTER, KUBERAY}
    assert shipped == checked, f"unchecked YAML: {sorted(map(str, shipped - checked))}"
    assert RUN_CONFIGS and SWEEP_CONFIGS


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


def test_vm_cluster_file_passes_ray_up_validation() -> None:
    """What ``ray up`` runs before launching: defaults filled in, then Ray's JSON schema."""
    raw = yaml.safe_load(VM_CLUSTER.read_text())
    prepared = prepare_config(raw)
    validate_config(prepared)
    workers = [t for t in prepared["available_node_types"].values() if t["max_workers"] > 0]
    assert workers, "the cluster file launches no worker"
    assert any("--dashboard-host=127.0.0.1" in cmd for cmd in prepared["head_start_ray_commands"])


def test_kuberay_manifest_has_what_the_operator_needs() -> None:
    doc = yaml.safe_load(KUBERAY.read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCluster")
    spec = doc["spec"]
    assert spec["rayVersion"] == ray.__version__, "the manifest's Ray must be the Ray this repository pins"
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in groups:
        containers = group["template"]["spec"]["containers"]
        assert containers and all(c.get("image") and c.get("resources", {}).get("limits") for c in containers)
        assert isinstance(group["rayStartParams"], dict)
    for worker in spec["workerGroupSpecs"]:
        assert worker["groupName"]
        assert (
            worker.get("minReplicas", 0)
            <= worker["replicas"]
            <= worker.get("maxReplicas", worker["replicas"])
        )
    gpu_limits = [
        c["resources"]["limits"]
        for w in spec["workerGroupSpecs"]
        for c in w["template"]["spec"]["containers"]
    ]
    assert any("nvidia.com/gpu" in limits for limits in gpu_limits), "no worker group asks for a GPU"
