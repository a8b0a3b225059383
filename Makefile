# The two commands: `make demo` and `make test`. Both do the whole setup on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

# torch first (the CPU build), then everything else under a constraint that keeps it.
$(STAMP): pyproject.toml constraints.txt scripts/ensure_chromium.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[all]'
	scripts/ensure_chromium.sh $(VENV)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/simpersona demo

test: setup
	$(VENV)/bin/pytest -q

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow and not browser and not ray"

# each benchmark compares against a baseline measured in the same run (JSON + PNG under runs/ or reports/)
bench: setup
	$(VENV)/bin/simpersona bench env
	$(PY) bench/shop_pages.py
	$(VENV)/bin/simpersona ingest data=rees46
	$(PY) bench/bench_ingest.py --events 10000000 --pandas-events 1000000
	$(PY) bench/bench_personas.py --data runs/ingest
	$(PY) bench/bench_replay.py --events runs/ingest/rees46 --n 100
	$(PY) bench/bench_agents.py
	$(PY) bench/bench_simulate.py

clean:
	rm -rf $(VENV) runs .pytest_cache
