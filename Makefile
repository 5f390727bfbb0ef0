# The two set-up commands (see README): `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?= -q

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

## run: install, Debian's chromium + Noto CJK for the 简报's PDF where missing (as root), bundle the in-browser
## modeler (npm ci + esbuild; skipped with a note without node/npm),
## create/upgrade var/qifu.db (SQLite) with demo data, serve on http://$(HOST):$(PORT)/
run: $(VENV)/.installed
	scripts/pdf-deps.sh
	scripts/build-modeler.sh
	$(BIN)/qifu init --demo
	$(BIN)/qifu serve --host $(HOST) --port $(PORT)

## test: ruff, the BPMN modeler check (bpmn-moddle + bpmnlint, needs node/npm), then the whole suite on SQLite
## and (when Debian's postgresql is installed) PostgreSQL
test: $(VENV)/.installed
	$(BIN)/ruff check engine handlers web tests bench migrations
	$(BIN)/mypy
	scripts/check-bpmn.sh
	eval "$$(scripts/test-postgres.sh start)"; $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(BIN)/python -m bench.engine_bench

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
