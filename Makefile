# Two commands: `make demo` and `make test`. Both create .venv and install the project first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SAMPLE := traces/sample
DEMO_OUT ?= out/demo
# Python sources that ruff checks and formats (Markdown is prose, not code to reformat).
PY_SOURCES := tracesim tests benchmarks notebooks

.PHONY: setup demo test test-fast lint format sample bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The main job on the bundled trace: summarise it, replay it through kube-default and the
# current control-plane profile, name the bottleneck, and write a report to $(DEMO_OUT).
demo: setup
	mkdir -p $(DEMO_OUT)
	$(VENV)/bin/tracesim info $(SAMPLE) --top 5 --plot $(DEMO_OUT)/trace.png
	$(VENV)/bin/tracesim replay $(SAMPLE) --scheduler kube-default --profile current --seed 1 --out $(DEMO_OUT)/replay
	$(VENV)/bin/tracesim bottlenecks $(DEMO_OUT)/replay
	$(VENV)/bin/tracesim report $(DEMO_OUT)/replay --out $(DEMO_OUT)/report
	@echo "report: $(DEMO_OUT)/report/report.html ($(DEMO_OUT)/report/report.md)"

lint: setup
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)

format: setup
	$(VENV)/bin/ruff check --fix $(PY_SOURCES)
	$(VENV)/bin/ruff format $(PY_SOURCES)

test: lint
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# The committed sample trace: 200 nodes, 30 simulated minutes, seed 7.
sample: setup
	$(VENV)/bin/tracesim synth --nodes 200 --duration 30m --seed 7 --out $(SAMPLE) --force

bench: setup
	$(PY) benchmarks/bench_synth.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
