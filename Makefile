# Two entry points: `make demo` (the main job) and `make test` (what CI runs).
# Each creates .venv on first use; nothing but python3 (>= 3.10) is needed.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
export MUJOCO_GL ?= egl

# The ray extra is installed too, so the tests (and CI) exercise the Ray backend.
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,ray]"
	touch $@

.PHONY: install demo test test-expensive lint docs docs-serve typecheck
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/rltransfer demo --out results/demo

# pytest-xdist: one worker per core, at most 4 (each imports torch; one torch thread each);
# worksteal, so that an idle worker takes tests from a busy one (a few tests take 30-100 s).
# --durations: the slowest tests, to keep the suite under 10 minutes on 2 cores.
test: $(VENV)/.installed
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -m "not expensive" -q -n auto --maxprocesses 4 --dist worksteal --durations=15
	$(VENV)/bin/ruff check rltransfer tests benchmarks experiments setup.py
	$(MAKE) docs
	$(MAKE) typecheck

# mypy on the package, as configured in pyproject.toml ([tool.mypy]): about 30 s from cold on
# 2 cores, about 1 s when .mypy_cache (ignored by git) is current.
typecheck: $(VENV)/.installed
	$(PY) -m mypy

# The documentation site (mkdocs.yml, docs/): warnings are errors, so a broken link, a missing
# anchor or a reference to a renamed function fails. Built into site/ (ignored by git).
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

docs-serve: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

test-expensive: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(PY) -m pytest -m expensive -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check rltransfer tests benchmarks experiments setup.py
