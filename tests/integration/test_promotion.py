"""The promotion gate against a real MLflow store: the embedded sqlite one and a real ``mlflow server``.

Three tiny models of clearly different quality are trained in-process (plain PyTorch, seconds):
``bad`` (random init), ``chat`` (trained on chat records) and ``alpaca`` (trained on Alpaca records).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from _mlflow_server import mlflow_server as start_mlflow_server  # tests/integration/_mlflow_server.py
from mlflow import MlflowClient

from tuneforge.config import TinyModelConfig
from tuneforge.data import (
    collate,
    encode_conversation,
    pad_examples,
    read_conversations,
    render_text,
    to_model_inputs,
)
from tuneforge.models.factory import build_tiny_model
from tuneforge.models.io import save_hf
from tuneforge.models.tokenizer import train_bpe_tokenizer
from tuneforge.registry.promotion import CHALLENGER, CHAMPION, PREVIOUS, Guard, promote, rollback, show
from tuneforge.tracking import end_run, log_hf_model, start_run

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "platform/tuneforge/assets/data"
BIN = Path(sys.executable).parent


def _train(model, tok, convs, steps: int, seed: int = 0):
    torch.manual_seed(seed)
    encoded = [e for c in convs if (e := encode_conversation(c, tok, max_seq_len=96)) is not None]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(encoded), (16,), generator=g).tolist()
        batch = to_model_inputs(collate(pad_examples([encoded[i] for i in idx], 96, tok.pad_token_id)))
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Directories of the three models plus the held-out eval files."""
    root = tmp_path_factory.mktemp("promo")
    chat = list(read_conversations(ASSETS / "tiny_chat.jsonl"))
    alpaca = list(read_conversations(ASSETS / "tiny_alpaca.jsonl"))
    tok = train_bpe_tokenizer([render_text(c) for c in chat + alpaca], 512)
    dirs = {}
    for name, data, steps in (("bad", None, 0), ("chat", chat[:-60], 150), ("alpaca", alpaca[:-60], 150)):
        m = build_tiny_model(TinyModelConfig(), len(tok), seed=0, pad_token_id=tok.pad_token_id)
        if data:
            _train(m, tok, data, steps)
        dirs[name] = save_hf(m, tok, root / name)
    for name, src in (
        ("chat_eval", ASSETS / "tiny_chat.jsonl"),
        ("alpaca_eval", ASSETS / "tiny_alpaca.jsonl"),
    ):
        lines = src.read_text().splitlines()[-60:]
        (root / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        dirs[name] = root / f"{name}.jsonl"
    return dirs


@pytest.fixture(scope="module", params=["sqlite", "server"])
def store(request, tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp(f"store-{request.param}")
    monkeypatch_module.setenv("TUNEFORGE_HOME", str(root))
    if request.param == "sqlite":
        yield f"sqlite:///{root}/mlflow.db"
        return
    with start_mlflow_server(root) as url:
        yield url


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _register(uri: str, name: str, model_dir: Path) -> str:
    run_id = start_run(uri, "promotion-tests", f"{name}-{model_dir.name}")
    try:
        return log_hf_model(run_id, model_dir, registered_model_name=name).version
    finally:
        end_run()


def _aliases(uri: str, name: str) -> dict[str, str]:
    return {a: str(v) for a, v in MlflowClient(uri).get_registered_model(name).aliases.items()}


def test_gate_promotes_only_the_better_model_and_rolls_back(store, models):
    mlflow.set_tracking_uri(store)
    name = "gate"
    v_bad = _register(store, name, models["bad"])
    first = promote(name, v_bad, str(models["chat_eval"]), store)
    assert first.promoted and first.champion_version is None  # empty registry: candidate becomes champion
    assert _aliases(store, name) == {CHAMPION: v_bad}

    v_chat = _register(store, name, models["chat"])
    better = promote(name, v_chat, str(models["chat_eval"]), store, min_delta=0.1)
    assert better.promoted, better.reasons
    assert better.improvement["low"] > 0 and better.candidate["mean"] < better.champion["mean"]
    assert _aliases(store, name) == {CHAMPION: v_chat, PREVIOUS: v_bad}

    v_worse = _register(store, name, models["bad"])
    worse = promote(name, v_worse, str(models["chat_eval"]), store)
    assert not worse.promoted and worse.reasons
    assert _aliases(store, name) == {CHAMPION: v_chat, PREVIOUS: v_bad, CHALLENGER: v_worse}
    tags = MlflowClient(store).get_model_version(name, v_worse).tags
    assert tags["tuneforge.promotion"] == "rejected"
    assert json.loads(tags["tuneforge.promotion.decision"])["eval_hash"] == worse.eval_hash

    assert rollback(name, store) == (v_bad, v_chat)
    assert _aliases(store, name)[CHAMPION] == v_bad
    rollback(name, store)
    assert _aliases(store, name)[CHAMPION] == v_chat

    info = show(name, store)
    assert [v["version"] for v in info["versions"]] == [v_worse, v_chat, v_bad]
    assert "eval_loss" in info["versions"][1]["metrics"]
    decisions = MlflowClient(store).search_runs(
        [MlflowClient(store).get_experiment_by_name("tuneforge-promotions").experiment_id]
    )
    assert len(decisions) == 3


def test_guard_regression_rejects_a_primary_winner(store, models):
    mlflow.set_tracking_uri(store)
    name = "guarded"
    v_alpaca = _register(store, name, models["alpaca"])
    assert promote(name, v_alpaca, str(models["alpaca_eval"]), store).promoted
    v_chat = _register(store, name, models["chat"])
    d = promote(
        name,
        v_chat,
        str(models["chat_eval"]),
        store,
        guards=[Guard(str(models["alpaca_eval"]), tolerance=0.05)],
    )
    assert not d.promoted
    assert d.improvement["low"] > 0, "the candidate does win on the primary metric"
    assert len(d.reasons) == 1 and d.reasons[0].startswith("guard")
    assert _aliases(store, name)[CHAMPION] == v_alpaca


def test_concurrent_promotions_leave_a_consistent_registry(store, models):
    name = "race"
    v1 = _register(store, name, models["bad"])
    assert promote(name, v1, str(models["chat_eval"]), store).promoted
    v2, v3 = _register(store, name, models["chat"]), _register(store, name, models["alpaca"])
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    procs = [
        subprocess.Popen(
            [
                str(BIN / "tuneforge"),
                "promote",
                name,
                "--candidate",
                v,
                "--data",
                str(models["chat_eval"]),
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in (v2, v3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    decisions = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    aliases = _aliases(store, name)
    promoted = [d for d in decisions if d["promoted"]]
    assert promoted, decisions
    # Serialised: the last promotion saw the previous one's champion, and the aliases tell one story.
    last = max(
        promoted,
        key=lambda d: (
            MlflowClient(store).get_model_version(name, d["candidate_version"]).tags["tuneforge.promotion.at"]
        ),
    )
    assert aliases[CHAMPION] == last["candidate_version"]
    assert aliases[PREVIOUS] == last["champion_version"]
    assert {d["champion_version"] for d in decisions} <= {v1, v2, v3}


def test_eval_and_models_show_cli(store, models):
    name = "cli"
    v1 = _register(store, name, models["chat"])
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    run = [
        str(BIN / "tuneforge"),
        "eval",
        f"models:/{name}/{v1}",
        "--data",
        str(models["chat_eval"]),
        "--mode",
        "chat",
        "--json",
    ]
    out = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert (
        report["n"] == 60
        and report["eval_loss"]["low"] <= report["eval_loss"]["mean"] <= report["eval_loss"]["high"]
    )
    assert 0.0 <= report["rougeL"]["mean"] <= 1.0 and report["perplexity"] > 1.0
    assert "95% CI" in out.stderr
    tags = MlflowClient(store).get_model_version(name, v1).tags
    assert tags[f"tuneforge.eval_run.{report['data_hash']}"] == report["run_id"]

    promote(name, v1, str(models["chat_eval"]), store)
    shown = subprocess.run(
        [str(BIN / "tuneforge"), "models", "show", name, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    info = json.loads(shown.stdout.strip().splitlines()[-1])
    assert info["name"] == name and info["versions"][0]["aliases"] == ["champion"]
    assert set(info["versions"][0]) == {"version", "aliases", "metrics", "tags"}

    bad = subprocess.run(
        [str(BIN / "tuneforge"), "rollback", name], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "no 'previous' alias" in bad.stderr and "Traceback" not in bad.stderr
