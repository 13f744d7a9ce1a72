# Two commands after cloning: `make train` (the main job) and `make test` (the test suite).
# Both create .venv and install the package into it first (once).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: venv train test test-fast lint evidence

venv: $(STAMP)

$(STAMP): setup.cfg setup.py constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install torch==2.13.0
	$(VENV)/bin/pip install -c constraints.txt -e ".[tests]"
	touch $(STAMP)

# Main job: SACM on Hopper-v5 with the shipped hyperparameters (zoo_hyperparams/sacm.yml), with a progress bar
# (elapsed and remaining time). The full 3M steps take 14 to 42 hours on 2 cores: a short run is ARGS="-n 30000"
train: $(STAMP)
	$(VENV)/bin/python -m sb3_mixture.train --algo sacm --env Hopper-v5 --progress $(ARGS)

# The lint first, so that CI (which runs `make test`) fails on code that ruff rejects
test: lint
	$(VENV)/bin/python -m pytest -q tests

# The suite without the tests marked slow (the entry points in subprocesses, the learning test): about a minute
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow" tests

# ruff.toml configures both; "." is the whole tree (the package, tests, benchmarks, docs' scripts, the README's
# Python examples) less what ruff excludes by default (.venv, .git, ...)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Plots and tables of the evidence (README, "Evidence") regenerated from the committed result files (the studies
# whose result folder may not be committed yet only when it is)
evidence: $(STAMP)
	$(VENV)/bin/pip install -q -c constraints.txt -e ".[bench]"
	$(VENV)/bin/python benchmarks/estimator_study.py --report
	$(VENV)/bin/python benchmarks/multimodal.py report
	$(VENV)/bin/python benchmarks/mujoco_suite.py report
	$(VENV)/bin/python benchmarks/route_change.py report
	$(VENV)/bin/python benchmarks/gate_flips.py report
	test ! -d benchmarks/results/route_change_hidden || $(VENV)/bin/python benchmarks/route_change.py --hidden-block report
	$(VENV)/bin/python benchmarks/route_change.py report --out benchmarks/results/route_change_20k
	$(VENV)/bin/python benchmarks/route_change.py --hidden-block report --out benchmarks/results/route_change_20k
	test ! -d benchmarks/results/objective_gap || $(VENV)/bin/python benchmarks/objective_gap.py report
	test ! -d benchmarks/results/goal_removal || $(VENV)/bin/python benchmarks/goal_removal.py report
