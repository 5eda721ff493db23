# facegate: every command a user or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.facegate-installed
LFW ?= ../shared/data/lfw-view1

.PHONY: help install demo test test-fast lint typecheck check evaluate bench bench-smoke stack-up stack-down clean

help:
	@echo "make demo        install everything, start the local stack, run the door story, stop"
	@echo "                 (DEMO_ARGS=--keep: leave it running; it prints the console's URL and login)"
	@echo "make test        install everything and run the whole test suite (real services)"
	@echo "make test-fast   unit tests only"
	@echo "make lint        ruff + mypy (strict)"
	@echo "make evaluate    LFW View 1 accuracy (needs $(LFW))"
	@echo "make bench       every benchmark in bench/ (see BENCHMARKS.md)"
	@echo "make bench-smoke each benchmark on tiny inputs (so they cannot rot)"
	@echo "make stack-up / stack-down   the local Redis + SeaweedFS + services"

# The venv is (re)built whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@bash scripts/ensure-redis.sh
	@bash scripts/ensure-mosquitto.sh
	@touch $(STAMP)

install: $(STAMP)

# DEMO_ARGS=--keep leaves the demo stack (and its console) running
demo: install
	$(PY) -m facegate.tools.demo $(DEMO_ARGS)

test: install
	bash scripts/run-tests.sh

test-fast: install
	$(PY) -m pytest -m unit -q

lint: install
	$(VENV)/bin/ruff check shared services tests bench scripts
	$(VENV)/bin/mypy

check: lint test

evaluate: install
	$(VENV)/bin/facegate evaluate --train $(LFW)/pairsDevTrain.txt \
		--pairs $(LFW)/pairsDevTest.txt --images $(LFW)/images

bench: install
	$(PY) bench/encoder_chips.py
	$(PY) bench/identify.py
	$(PY) bench/lock_events.py
	$(PY) bench/mqtt_bridge.py
	$(PY) bench/openset.py
	$(PY) bench/detector_sizes.py
	$(PY) bench/image_memory.py
	$(PY) bench/e2e_load.py --find-max --out bench/results/e2e_find_max.json
	$(PY) bench/e2e_load.py --scaling 1x1,2x1,1x16,2x16 --out bench/results/e2e_scaling.json
	$(PY) bench/chaos.py --out bench/results/chaos.json

bench-smoke: install
	$(PY) -m pytest -q tests/bench

stack-up: install
	$(VENV)/bin/facegate stack up

stack-down:
	$(VENV)/bin/facegate stack down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache var
