# make setup | demo | test | lint  (each target sets itself up on a fresh machine; lint = ruff + layer contract)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llmft-installed

.PHONY: setup demo test lint clean

setup: $(STAMP)

# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build on CPU machines.
$(STAMP): pyproject.toml .ci/constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,sweep,wandb,swanlab,modelscope,board,eval]" -c .ci/constraints.txt
	$(PY) -m pip install -q --no-deps hydra-optuna-sweeper==1.3.0  # its optuna<3 pin breaks SQLAlchemy 2
	touch $(STAMP)

demo: setup
	$(PY) run.py

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check llmft tests run.py hydra_plugins
	$(VENV)/bin/ruff format --check llmft tests run.py hydra_plugins
	$(VENV)/bin/lint-imports  # the layer contract: [tool.importlinter] in pyproject.toml

clean:
	rm -rf outputs multirun .pytest_cache
