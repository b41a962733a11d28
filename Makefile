# Truceline: the two commands a new user types are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

# DEMO_PORT=N: serve the demo on port N (default 8000, or the next free port if 8000 is taken)
DEMO_PORT ?=

.PHONY: demo test bench lint format clean web

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[dev,postgres]'  # the tests run on PostgreSQL too
	touch $(STAMP)

## demo: install, simulate a week on the Ukraine example, adjudicate, review and publish part of it,
## write the last day's report, then run the server on it: prints the dashboard's address and tokens
demo: $(STAMP)
	$(VENV)/bin/truceline demo --agreement examples/ukraine-2024 --output out/demo --serve $(if $(DEMO_PORT),--port $(DEMO_PORT))

## test: the whole suite
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q  # loadgroup: the browser tests share one worker and server

## bench: speed and accuracy measurements (results go to BENCHMARKS.md by hand, with this command)
bench: $(STAMP)
	$(PY) benchmarks/classify.py
	$(PY) benchmarks/classify.py --end-to-end --n 1000000 --bad 1000
	@if [ -f benchmarks/locate.py ]; then $(PY) benchmarks/locate.py; fi
	$(PY) benchmarks/acoustic_cases.py
	$(PY) benchmarks/replay.py --store
	$(PY) benchmarks/replay_dask.py  # 3M replay on 1 vs 2 local Dask workers; 10-line x 5-year sweep at 1, 2, 4
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/import_stream.py  # peak RSS of `truceline import` at 1M vs 3M rows (SQLite)
	$(PY) benchmarks/cot_flood.py
	$(PY) benchmarks/ledger_backfill.py
	$(PY) benchmarks/poison_mix.py
	$(PY) benchmarks/poison_mix.py --postgres
	TRUCELINE_FUZZ_EXAMPLES=100 $(PY) -m pytest -q tests/api/test_schemathesis.py -k no_server_errors
	TRUCELINE_FUZZ_SCENARIOS=60 TRUCELINE_FUZZ_STEPS=20 $(PY) -m pytest -q -s tests/api/test_stateful.py  # stateful: along the OpenAPI links, both databases
	$(PY) benchmarks/fusion_mixes.py run
	$(PY) benchmarks/fusion_mixes.py calibrate
	$(PY) benchmarks/fusion_mixes.py core
	@if [ -x /usr/bin/chromium ]; then $(PY) benchmarks/dashboard.py; else echo "dashboard benchmark: no /usr/bin/chromium"; fi

## lint: ruff (lint + format check), mypy strict over the whole package, and the layering
## contracts of pyproject.toml (import-linter: no import from a lower layer to a higher one)
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## web: rebuild the dashboard (npm packages pinned in web/package-lock.json) into
## src/truceline/web/static; the built files are committed, so only a change under web/ needs this
web:
	cd web && npm ci --no-audit --no-fund && npm run build

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
