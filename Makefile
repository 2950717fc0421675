# Two entry points (see README): `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: run test install data prepare lint

run: prepare
	python -m platform.data.summary

test: install
	@dvc pull -q data.dvc || echo "warning: dvc pull failed; tests needing data/ will skip (and fail under CI=true)"
	python -m pytest -q

install: $(VENV)/.installed

# torch first: an unpinned torch pulled in by another package would be a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip<27"
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

data: install
	dvc pull data.dvc

prepare: data
	dvc repro

lint: install
	ruff check platform models tests bench
	mypy platform models
