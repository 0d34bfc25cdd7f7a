"""Security guarantees (issue 12): secrets are never recorded, pickle weights are refused unless allowed,
YAML is loaded safely, paths from configs and dataset catalogs stay inside their roots, services bind
loopback.

The end-to-end check of secret redaction (a real train against a real ``mlflow server``) is
``tests/integration/test_secrets.py``; here each guard is tested where it is applied.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from mlflow import MlflowClient

from tuneforge.config import ConfigError, JobConfig, ModelConfig, load_config, save_config
from tuneforge.data import DataError
from tuneforge.data.catalog import resolve
from tuneforge.models.base import TRUST_REMOTE_CODE_TAG, model_trust_tags, prepare_base
from tuneforge.models.factory import build_tiny_model, check_weight_files, load_model
from tuneforge.tracking import home_dir, log_dict_artifact, log_params_flat
from tuneforge.tracking.redact import (
    REDACTED,
    is_secret_key,
    redact_mapping,
    redact_text,
    redact_uri,
    redact_value,
)

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "jobs/configs/finetune/tiny_cpu.yaml"
EXE = str(Path(sys.executable).parent / "tuneforge")
PLANTED = "PLANTEDpw4711"


# --- redaction rules ---------------------------------------------------------------------------

SECRET_KEYS = [
    "password",
    "db_password",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "HF_TOKEN",
    "hf_token",
    "token",
    "api_key",
    "apiKey",
    "openaiApiKey",
    "client_secret",
    "tracking.credentials",
    "tracking.api_key",
    # substring rule (*TOKEN*, *KEY*, *SECRET*, *PASSWORD*, *PASSWD*): whole-word matching missed these
    "PGPASSWORD",
    "OPENAI_KEY",
    "SSH_KEY",
    "TOKEN_VALUE",
    "api_token_v2",
    "MYSQL_PASSWD",
    "accessToken",
    "tracking.key",
]
HARMLESS_KEYS = [
    "promote_metric",
    "model.tiny.num_key_value_heads",
    "max_total_tokens",
    "train_tokens",
    "method.num_virtual_tokens",
    "model.tokenizer",
    "pad_token",
    "eos_token",
    "sort_key",
    "cache_key",
    "tracking.uri",
    "PWD",
    "keywords",
    # contain token/key but are tokenizer settings, counts, vocabulary ids or lookup keys
    "tokenizer",
    "TOKENIZERS_PARALLELISM",
    "max_new_tokens",
    "tokens_per_second",
    "pad_token_id",
    "eos_token_id",
    "token_type_ids",
    "dropped_no_trained_tokens",
    "tokenizer_fingerprint",
    "past_key_values",
    "missing_keys",
    "preference_cache_key",
    "trainer.keep_last",
    "trainer.keep_best",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_match(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", HARMLESS_KEYS)
def test_harmless_keys_do_not_match(key):
    assert not is_secret_key(key)


def test_every_job_config_key_stays_readable():
    """No field of the real config schema is mistaken for a secret (they would all log as ***)."""
    from tuneforge.config.loader import field_descriptions

    flagged = [k for k in field_descriptions() if is_secret_key(k.replace("[]", ""))]
    assert flagged == []


def test_sweep_keys_and_data_stats_stay_readable():
    """The other dicts logged as params hold token/key names too: none of them may log as ***."""
    from pydantic import BaseModel

    from tuneforge.data.stats import CorpusStats
    from tuneforge.tune.config import SweepConfig

    def names(model: type[BaseModel], prefix: str = "") -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            out.append(prefix + name)
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    out += names(arg, f"{prefix}{name}.")
        return out

    stats = CorpusStats(max_seq_len=8, truncation="drop").to_dict()
    assert [k for k in [*names(SweepConfig), *stats] if is_secret_key(k)] == []


def test_uri_password_and_query_secrets_redacted():
    assert redact_uri(f"http://user:{PLANTED}@127.0.0.1:5000") == "http://user:***@127.0.0.1:5000"
    assert redact_uri(f"https://:{PLANTED}@host/x") == "https://:***@host/x"
    assert redact_uri(f"postgresql://u:{PLANTED}@db:5432/mlflow?sslmode=require").endswith(
        "u:***@db:5432/mlflow?sslmode=require"
    )
    signed = f"https://acct.blob.core.windows.net/c/f.jsonl?sv=2024&sig={PLANTED}&se=1"
    assert redact_uri(signed) == "https://acct.blob.core.windows.net/c/f.jsonl?sv=2024&sig=***&se=1"
    s3 = f"https://b.s3.amazonaws.com/k?X-Amz-Signature={PLANTED}&X-Amz-Security-Token={PLANTED}"
    assert PLANTED not in redact_uri(s3)
    for harmless in ("sqlite:////tmp/mlflow.db", "http://127.0.0.1:5000", "ssh://git@host/repo", "s3://b/k"):
        assert redact_uri(harmless) == harmless
    text = f"could not reach http://u:{PLANTED}@h:1/api (and sqlite:///x.db is fine)"
    assert redact_text(text) == "could not reach http://u:***@h:1/api (and sqlite:///x.db is fine)"


def test_redact_mapping_recurses_and_keeps_input():
    data = {
        "tracking": {"uri": f"http://u:{PLANTED}@h:5000", "experiment": "e"},
        "extra": [{"api_key": PLANTED}, f"s3://k?token={PLANTED}", 3],
        "credentials": {"user": "me", "pass": PLANTED},
        "hf_token": None,
        "trainer": {"lr": 0.1, "max_steps": 5},
    }
    before = json.dumps(data)
    out = redact_mapping(data)
    assert PLANTED not in json.dumps(out)
    assert json.dumps(data) == before  # a copy: the real values are still what connects
    assert out["tracking"] == {"uri": "http://u:***@h:5000", "experiment": "e"}
    assert out["credentials"] == REDACTED and out["extra"][0] == {"api_key": REDACTED}
    assert out["hf_token"] is None and out["trainer"] == {"lr": 0.1, "max_steps": 5}
    assert redact_value("MLFLOW_TRACKING_TOKEN", 1234) == REDACTED


def test_credential_environment_variables_redacted():
    """An environment dumped into a config or tracking dict: credential variables are hidden by name."""
    env = {
        "MLFLOW_TRACKING_PASSWORD": PLANTED,
        "MLFLOW_TRACKING_TOKEN": PLANTED,
        "AWS_SECRET_ACCESS_KEY": PLANTED,
        "AWS_SESSION_TOKEN": PLANTED,
        "AZURE_STORAGE_ACCESS_KEY": PLANTED,
        "GOOGLE_APPLICATION_CREDENTIALS": f"/secrets/{PLANTED}.json",
        "HF_TOKEN": PLANTED,
        "MY_SERVICE_PASSWORD": PLANTED,
        "PGPASSWORD": PLANTED,
        "OPENAI_KEY": PLANTED,
        "SSH_KEY": PLANTED,
        "TOKEN_VALUE": PLANTED,
        "TOKENIZERS_PARALLELISM": "false",
        "MLFLOW_TRACKING_URI": f"http://u:{PLANTED}@h:5000",
        "MLFLOW_TRACKING_USERNAME": "alice",
        "PATH": "/usr/bin",
        "PWD": "/work",
    }
    out = redact_mapping(env)
    assert PLANTED not in json.dumps(out)
    assert out["MLFLOW_TRACKING_URI"] == "http://u:***@h:5000"
    assert {k: out[k] for k in ("MLFLOW_TRACKING_USERNAME", "PATH", "PWD", "TOKENIZERS_PARALLELISM")} == {
        "MLFLOW_TRACKING_USERNAME": "alice",
        "PATH": "/usr/bin",
        "PWD": "/work",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _job(**tracking) -> JobConfig:
    return JobConfig.model_validate({"data": {"train_files": ["x.jsonl"]}, "tracking": tracking})


def test_save_config_writes_redacted_copy(tmp_path):
    job = _job(uri=f"http://user:{PLANTED}@127.0.0.1:5000")
    save_config(job, tmp_path / "job.yaml")
    text = (tmp_path / "job.yaml").read_text()
    assert PLANTED not in text
    assert yaml.safe_load(text)["tracking"]["uri"] == "http://user:***@127.0.0.1:5000"
    assert job.tracking.uri == f"http://user:{PLANTED}@127.0.0.1:5000"  # the live config is untouched


def test_params_and_config_artifact_are_redacted_in_a_real_store(tmp_path):
    """log_params_flat / log_dict_artifact always redact: no secret in the sqlite bytes or artifact files."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    job = _job(uri=f"http://user:{PLANTED}@127.0.0.1:5000")
    client = MlflowClient(uri)
    exp = client.create_experiment("sec", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(exp).info.run_id
    mlflow.set_tracking_uri(uri)
    try:
        log_params_flat(run_id, {**job.model_dump(mode="json"), "extra": {"hf_token": PLANTED}})
        log_dict_artifact(run_id, job.model_dump(mode="json"), "config/job.yaml")
        params = client.get_run(run_id).data.params
    finally:
        mlflow.set_tracking_uri(None)
    assert params["tracking.uri"] == "http://user:***@127.0.0.1:5000"
    assert params["extra.hf_token"] == REDACTED
    hits = [p for p in tmp_path.rglob("*") if p.is_file() and PLANTED.encode() in p.read_bytes()]
    assert hits == []


# --- trust_remote_code is recorded ---------------------------------------------------------------


def test_trust_remote_code_tag():
    assert model_trust_tags(ModelConfig()) == {TRUST_REMOTE_CODE_TAG: "false"}
    assert model_trust_tags(ModelConfig(trust_remote_code=True)) == {TRUST_REMOTE_CODE_TAG: "true"}


# --- pickle weights ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pickle_model_dir(tmp_path_factory) -> Path:
    """A tiny Llama saved the old way: ``pytorch_model.bin`` (pickle), no safetensors."""
    from tuneforge.testing import TINY_MODEL, toy_tokenizer

    out = tmp_path_factory.mktemp("pickle-model")
    tok = toy_tokenizer()
    model = build_tiny_model(
        TINY_MODEL,
        vocab_size=len(tok),
        seed=0,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    # transformers 5 always writes safetensors (safe_serialization=False is ignored): write the
    # pickle file the way older transformers / plain torch checkpoints did.
    model.config.save_pretrained(out)
    torch.save(model.state_dict(), out / "pytorch_model.bin")
    tok.save_pretrained(out)
    assert (out / "pytorch_model.bin").exists() and not list(out.glob("*.safetensors"))
    return out


def test_pickle_only_dir_is_refused(pickle_model_dir, tmp_path):
    cfg = ModelConfig(name_or_path=str(pickle_model_dir))
    with pytest.raises(ConfigError) as err:
        prepare_base(cfg, [], tmp_path / "base", 0, tmp_path / "cache")
    message = str(err.value)
    assert str(pickle_model_dir) in message and "pytorch_model.bin" in message
    assert "model.allow_pickle: true" in message and "safetensors" in message
    with pytest.raises(ConfigError):
        load_model(pickle_model_dir, cfg)  # the worker-side loader refuses it too
    assert not (tmp_path / "cache").exists()  # nothing was unpickled or converted


def test_pickle_allowed_loads_with_warning_as_safetensors(pickle_model_dir, tmp_path, caplog):
    cfg = ModelConfig(name_or_path=str(pickle_model_dir), allow_pickle=True)
    with caplog.at_level("WARNING", logger="tuneforge.models.factory"):
        base = prepare_base(cfg, [], tmp_path / "base", 0, tmp_path / "cache")
    assert "allow_pickle" in caplog.text and "arbitrary code" in caplog.text
    assert base != pickle_model_dir and list(base.glob("*.safetensors"))
    assert not list(base.glob("*.bin")) and (base / "tokenizer_config.json").exists()
    assert prepare_base(cfg, [], tmp_path / "base", 0, tmp_path / "cache") == base  # converted once
    ids = torch.tensor([[1, 2, 3, 4]])
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained(pickle_model_dir, use_safetensors=False).eval()
    loaded = load_model(base, ModelConfig(name_or_path=str(base))).eval()  # safetensors, default policy
    with torch.no_grad():
        assert torch.equal(original(input_ids=ids).logits, loaded(input_ids=ids).logits)


def test_dir_with_safetensors_passes_even_with_stray_pickle(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    check_weight_files(tmp_path, allow_pickle=False)  # the .bin is never read (use_safetensors=True)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "training_args.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="pytorch_model.bin"):
        check_weight_files(tmp_path, allow_pickle=False)


def test_cli_refuses_pickle_model_with_one_line(pickle_model_dir, tmp_path):
    env = {**os.environ, "TUNEFORGE_HOME": str(tmp_path), "COLUMNS": "300"}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(
        [EXE, "train", str(TINY.relative_to(REPO)), f"model.name_or_path={pickle_model_dir}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert "model.allow_pickle: true" in out.stderr and str(pickle_model_dir) in out.stderr


# --- YAML, paths, loopback -----------------------------------------------------------------------


def test_yaml_python_tags_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        "data:\n  train_files: [x.jsonl]\n"
        f"tracking:\n  run_name: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert str(err.value).startswith(f"{cfg}:4: invalid YAML")
    assert "python/object" in str(err.value)
    assert not marker.exists()
    with pytest.raises(ConfigError, match="cannot parse value"):
        load_config(TINY, [f"tracking.run_name=!!python/object/apply:os.system ['touch {marker}']"])
    assert not marker.exists()


def test_catalog_entry_cannot_escape_its_folder(tmp_path):
    cat_dir = tmp_path / "cat"
    (cat_dir / "sub").mkdir(parents=True)
    (cat_dir / "sub" / "ok.jsonl").write_text("{}\n")
    catalog = cat_dir / "dataset_info.json"
    catalog.write_text(
        json.dumps(
            {
                "ok": {"file_name": "sub/ok.jsonl"},
                "dotdot": {"file_name": "../../etc/passwd"},
                "sneaky": {"file_name": "sub/../../outside.jsonl"},
                "absolute": {"file_name": "/etc/passwd"},
            }
        )
    )
    path, _ = resolve(str(catalog), "ok")
    assert Path(path) == cat_dir / "sub" / "ok.jsonl"
    for name, file_name in (("dotdot", "../../etc/passwd"), ("sneaky", "sub/../../outside.jsonl")):
        with pytest.raises(DataError) as err:
            resolve(str(catalog), name)
        assert err.value.field == f"{name}.file_name" and err.value.file == str(catalog)
        assert repr(file_name) in str(err.value) and "outside the catalog's folder" in str(err.value)
    with pytest.raises(DataError, match="outside the catalog"):
        resolve(str(catalog), "absolute")
    remote = "s3://bucket/data/dataset_info.json"
    from tuneforge.data.catalog import entry_path

    assert entry_path(remote, "a/b.jsonl", "x.file_name") == "s3://bucket/data/a/b.jsonl"
    with pytest.raises(DataError):
        entry_path(remote, "../other/b.jsonl", "x.file_name")


def test_run_and_sweep_names_cannot_escape_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path))
    assert home_dir("runs", "full-20260101", "tracking.run_name") == tmp_path / "runs" / "full-20260101"
    for bad in ("../../etc", "a/b", "..", "", "x\\y"):
        with pytest.raises(ValueError, match="tracking.run_name"):
            home_dir("runs", bad, "tracking.run_name")


def test_local_services_listen_on_loopback_only():
    """Everything tuneforge starts on this machine binds 127.0.0.1; no default exposes it further."""
    local = (REPO / "cluster/local/start.sh").read_text()
    assert "BIND=127.0.0.1" in local
    for flag in ("--dashboard-host", "--node-ip-address", "--host"):  # head, both nodes, mlflow server
        assert re.search(rf'{flag}[= ]"\$BIND"', local), flag
    wildcard = re.compile(
        r"0\.0\.0\.0"
        r"|--(?:dashboard-)?host[= ]+(?!127\.0\.0\.1|localhost|\"\$BIND\")"  # BIND=127.0.0.1 above
        r"|\bhost=['\"](?!127\.0\.0\.1|localhost|\$BIND\")"
    )
    offenders = []
    for root in ("platform", "jobs", "cluster/local", "Makefile", "tests/integration/conftest.py"):
        for f in [REPO / root] if (REPO / root).is_file() else (REPO / root).rglob("*"):
            if f.is_file() and f.suffix in ("", ".py", ".sh", ".yaml", ".yml") and f.name != "README.md":
                offenders += [f"{f}: {m.group(0)}" for m in wildcard.finditer(f.read_text(errors="ignore"))]
    assert offenders == []
    from tuneforge.testing import free_port

    assert free_port() > 0  # the local rendezvous binds 127.0.0.1 (MASTER_ADDR below)
    assert 'MASTER_ADDR="127.0.0.1"' in (REPO / "platform/tuneforge/testing.py").read_text()


VM_CLUSTERS = sorted((REPO / "cluster/vm").glob("*.yaml"))
KUBE_MANIFESTS = sorted((REPO / "cluster/kubernetes").glob("*.yaml"))


def _comment_above(lines: list[str], i: int) -> str:
    """Line ``i``'s own comment plus the comment block directly above it (the why of that line)."""
    block = [lines[i].partition("#")[2]]
    j = i - 1
    while j >= 0 and lines[j].lstrip().startswith("#"):
        block.append(lines[j])
        j -= 1
    return " ".join(block)


@pytest.mark.parametrize("path", VM_CLUSTERS, ids=lambda p: p.name)
def test_vm_cluster_heads_keep_the_dashboard_on_loopback(path):
    """`ray up` clusters: the dashboard and its job API (arbitrary code) bind the head's 127.0.0.1, reached
    through `ray dashboard` (an SSH tunnel); nothing binds every interface; Ray's token auth is on."""
    text = path.read_text()
    assert "0.0.0.0" not in text
    doc = yaml.safe_load(text)
    head = [c for c in doc["head_start_ray_commands"] if "ray start" in c]
    assert head and all("--dashboard-host=127.0.0.1" in c for c in head)
    assert f"ray dashboard cluster/vm/{path.name}" in text  # the comment says how to reach it
    # MLflow is the only other listener: on the head's private address, which the workers need.
    hosts = re.findall(r"--(?:dashboard-)?host[= ]+(\S+)", text)
    assert set(hosts) <= {"127.0.0.1", '"$HEAD_IP"'}, hosts
    starts = [c for key in ("head_start_ray_commands", "worker_start_ray_commands") for c in doc[key]]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)
    assert "RAY_AUTH_MODE=disabled" not in text


@pytest.mark.parametrize("path", KUBE_MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_services_stay_inside_the_cluster(path):
    """Pods must listen on their pod IP, so 0.0.0.0 appears in the manifests: each occurrence is
    documented (the Service in front is ClusterIP; reach it with `kubectl port-forward`), no Service is
    exposed (NodePort / LoadBalancer / external IPs), and Ray's token authentication stays on."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if "0.0.0.0" in line and not line.lstrip().startswith("#"):
            why = _comment_above(lines, i)
            assert "ClusterIP" in why and "port-forward" in why, f"{path.name}:{i + 1}: undocumented 0.0.0.0"
    for doc in yaml.safe_load_all("\n".join(lines)):
        if doc is None:
            continue
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP" and not doc["spec"].get("externalIPs")
        if doc["kind"] in ("RayCluster", "RayJob"):
            spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
            assert spec["authOptions"]["mode"] == "token"
            head = spec["headGroupSpec"]
            assert head.get("serviceType", "ClusterIP") == "ClusterIP" and "headService" not in head
            assert not head.get("enableIngress")
