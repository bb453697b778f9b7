# Set-up and the two commands of the README: `make report`, `make test`.
# TORCH_SPEC can be overridden, e.g. `make test TORCH_SPEC="torch==2.5.1"`:
# here torch==2.13.0 resolves to the CPU build that lies on this machine's disk,
# and it is installed before the project so that the project's `torch>=2.1`
# never pulls a second (multi-GB CUDA) build.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test report lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,dask]"
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -m "not slow"

report: $(STAMP)
	$(VENV)/bin/dltheory report --out report

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/kernels.py
	$(PY) benchmarks/ensemble.py
	$(PY) benchmarks/regions.py
	$(PY) benchmarks/hessian.py
	$(PY) benchmarks/dynamics.py

clean:
	rm -rf $(VENV) report .pytest_cache
