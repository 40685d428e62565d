# Two commands do all set-up on a fresh machine (only python3 and make needed):
#   make run    creates .venv, installs cosim with ns-3, runs the default experiment
#   make test   same bootstrap, then the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cosim-installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[ns3,launchers,cluster,dev]'
	touch $(STAMP)

# The main job: a design-space search on 16 GPUs (default model and fabric, chat) for the
# best chunked, P/D, AFD and P/D+AFD layout, its finalists confirmed packet by packet by a
# local ns-3 server. The loose SLO (TTFT 500 ms, TPOT 50 ms) because the seed paper's 50 ms
# TTFT is met by no layout of 16 GPUs (try SEARCH_SLO=default). Extra overrides go in ARGS.
SEARCH_SLO ?= loose
run: $(STAMP)
	$(BIN)/cosim-search search.gpus=16 slo=$(SEARCH_SLO) search.confirm=ns3 $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check cosim tests benchmarks scripts

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) outputs multirun .cosim_cache
