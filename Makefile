# Two commands do everything on a fresh machine with Python 3.11, pip and npm:
#   make reproduce   # .venv, data, every built notebook executed with papermill into results/
#   make test        # .venv, data, unit tests + every notebook in smoke mode under nbval
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NOTEBOOKS := notebooks/01_theory_proposition1.ipynb notebooks/02_synthetic_spurious.ipynb notebooks/03_taskonomy.ipynb \
             notebooks/06_multimnist.ipynb notebooks/07_movielens.ipynb notebooks/09_main_results.ipynb
PAPERMILL_ARGS ?=

.PHONY: venv data reproduce test bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

data: venv
	$(BIN)/python -m mtcrl_lite.data fetch mnist movielens

reproduce: data
	mkdir -p results
	set -e; for nb in $(NOTEBOOKS); do \
	  $(BIN)/papermill --cwd notebooks $$nb results/$$(basename $$nb) $(PAPERMILL_ARGS); \
	done

test: data
	MTCRL_SMOKE=1 $(BIN)/python -m pytest -q tests notebooks --nbval-lax --nbval-current-env

bench: venv
	$(BIN)/python benchmarks/generator.py
	$(BIN)/python benchmarks/step_time.py
	$(BIN)/python benchmarks/scenes.py
	$(BIN)/python benchmarks/step_time.py --dataset scenes --batch 64
	$(BIN)/python benchmarks/eval_memory.py

clean:
	rm -rf results/smoke .pytest_cache
