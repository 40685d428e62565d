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
	$(BIN)/python -m pip install -q -e '.[ns3,launchers,dev]'
	touch $(STAMP)

# The main job: the default experiment with its fabric timed packet by packet by a local
# ns-3 server (started and stopped by cosim). Extra Hydra overrides go in ARGS.
run: $(STAMP)
	$(BIN)/cosim network=ns3 $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check cosim tests benchmarks scripts

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) outputs multirun .cosim_cache
