# Two commands do everything on a fresh machine:
#   make workbench   creates .venv, installs, checks the data, runs the notebook sequence (profile quick)
#   make test        same .venv, runs the test suite (includes the notebooks under the smoke profile)
# make workbench PROFILE=paper DRY_RUN=1: every paper config for two steps with tiny models on stand-in
# data, then the notebooks, all in a temporary folder (pemscl/dryrun.py): a CPU check before GPU hours.
PYTHON ?= python3.11
VENV   ?= .venv
PROFILE ?= quick
DRY_RUN ?=
RETRAIN ?=
# torch first and pinned: otherwise a dependency's `torch>=2.2` pulls a CUDA build of several GB.
# On a machine with a GPU, point TORCH_SPEC/PIP_TORCH_ARGS at the CUDA wheel you want.
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
BIN := $(VENV)/bin

.PHONY: workbench test venv data-check clean-runs

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (or run: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

venv: $(BIN)/.installed

data-check: venv
	$(BIN)/python -m pemscl.data check

workbench: venv data-check
	$(BIN)/python -m pemscl.pipeline --profile $(PROFILE)$(if $(filter 1 yes true,$(DRY_RUN)), --dry-run)$(if $(filter 1 yes true,$(RETRAIN)), --retrain)

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean-runs:
	rm -rf runs executed
