# Two entry points (see README): `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: run test install pull data prepare lint

run: prepare
	python -m platform.data.summary

test: pull
	python -m pytest -q

install: $(VENV)/.installed

# torch first: an unpinned torch pulled in by another package would be a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip<27"
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# The DVC remote is ../shared/dvc-store beside the checkout. A clone made elsewhere (e.g. in /tmp)
# uses the store beside the checkout it was cloned from, set in .dvc/config.local (not committed).
pull: install
	@dvc pull -q data.dvc || { \
	  store="$$(git remote get-url origin 2>/dev/null)/../shared/dvc-store"; \
	  test -d "$$store" && echo "no ../shared/dvc-store here: using $$store (the origin checkout's)" && \
	  dvc remote modify --local shared url "$$(cd "$$store" && pwd)" && dvc pull -q data.dvc; \
	} || echo "warning: dvc pull failed; tests needing data/ will skip (and fail under CI=true)"

data: pull
	@test -d data/lidc-idri-crops || { echo "error: data/ was not pulled (README: Data (DVC))"; exit 2; }

prepare: data
	dvc repro

lint: install
	ruff check platform models tests bench
	mypy platform models
