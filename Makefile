# Entry points (durations on 2 CPU cores; docs/USAGE.md, "Make targets"):
#   make test             # env, data, ruff, unit tests + every notebook in smoke mode under nbval
#   make reproduce-quick  # every notebook in smoke mode into results/quick/: the pipeline end to end, NOT the numbers
#   make reproduce        # notebooks 01-09 at their CPU default into results/ (about 4 h)
#   make reproduce-all    # + notebook 10 and notebook 08's whole design space (about 9.5 h)
#   make results/06_multimnist.ipynb    # one notebook (results/quick/06_multimnist.ipynb: its quick version)
#   make lab              # JupyterLab on the environment with the kernel "mtcrl-lite" (LAB_PORT=8888)
#   make tune             # (separate, long) the equal-budget hyper-parameter search -> tuning/ (see below)
PYTHON ?= python3
VENV   := .venv
# The interpreter of every target. PYTHON_ENV=/path/to/python, or an active conda environment (CONDA_PREFIX set,
# other than conda's base: `conda env create -f environment.yml && conda activate mtcrl-lite`): that environment,
# into which `make venv` installs only the package and the no-deps pins. Otherwise the repository's own .venv.
ifeq ($(origin PYTHON_ENV),undefined)
  ifneq ($(CONDA_PREFIX),)
    ifneq ($(CONDA_DEFAULT_ENV),base)
      PYTHON_ENV := $(CONDA_PREFIX)/bin/python
    endif
  endif
endif
ifneq ($(PYTHON_ENV),)
  PY := $(PYTHON_ENV)
  ENV_READY := env-ready
else
  PY := $(VENV)/bin/python
  ENV_READY := $(VENV)/.installed
endif
# every notebook (what each tier runs: mtcrl_lite/experiments/reproduce.py)
NOTEBOOKS := notebooks/01_theory_proposition1.ipynb notebooks/02_synthetic_spurious.ipynb notebooks/03_taskonomy.ipynb \
             notebooks/04_cityscapes.ipynb notebooks/05_nyuv2.ipynb \
             notebooks/06_multimnist.ipynb notebooks/07_movielens.ipynb notebooks/08_ablations.ipynb \
             notebooks/09_main_results.ipynb notebooks/10_beyond_the_paper.ipynb
PAPERMILL_ARGS ?=

.PHONY: venv env-ready data reproduce reproduce-quick reproduce-all test tune bench clean lab colab record report \
        verify release book browser

# cffconvert (CITATION.cff's validator) in its own environment: it pins jsonschema<4, jupyter needs >=4.
.venv-cff/.installed: requirements-cff.txt
	test -x .venv-cff/bin/python || $(PYTHON) -m venv .venv-cff
	.venv-cff/bin/python -m pip install -q --no-deps -r requirements-cff.txt
	touch $@

# Jupyter Book in its own environment too (requirements-book.txt): `make book` builds the offline HTML report.
.venv-book/.installed: requirements-book.txt
	test -x .venv-book/bin/python || $(PYTHON) -m venv .venv-book
	.venv-book/bin/python -m pip install -q --no-deps -r requirements-book.txt
	touch $@

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -r requirements.txt
	$(VENV)/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

# An environment made elsewhere (conda, PYTHON_ENV) has the pins of requirements.txt; add the package if it lacks it.
env-ready:
	$(PY) -I -c "import mtcrl_lite, cityscapesscripts.helpers.labels" 2>/dev/null || \
	  { $(PY) -m pip install -q --no-deps -r requirements-nodeps.txt && $(PY) -m pip install -q --no-deps -e .; }

venv: $(ENV_READY)

data: venv
	$(PY) -m mtcrl_lite.data fetch mnist movielens fashion

# Each prints its plan and expected time first, then a line as each notebook starts and ends
# (mtcrl_lite/experiments/reproduce.py). PAPERMILL_ARGS go to every notebook.
reproduce-quick: data
	$(PY) -m mtcrl_lite.experiments.reproduce quick -- $(PAPERMILL_ARGS)

reproduce: data
	$(PY) -m mtcrl_lite.experiments.reproduce paper -- $(PAPERMILL_ARGS)

reproduce-all: data
	$(PY) -m mtcrl_lite.experiments.reproduce all -- $(PAPERMILL_ARGS)

results/quick/%.ipynb: notebooks/%.ipynb | data
	$(PY) -m mtcrl_lite.experiments.reproduce quick --only $* -- $(PAPERMILL_ARGS)

results/%.ipynb: notebooks/%.ipynb | data
	$(PY) -m mtcrl_lite.experiments.reproduce paper --only $* -- $(PAPERMILL_ARGS)

test: data .venv-cff/.installed book browser
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
	MTCRL_BOOK_TEST=1 MTCRL_CFFCONVERT=.venv-cff/bin/cffconvert MTCRL_SMOKE=1 $(PY) -m pytest -q -n 2 tests
	MTCRL_SMOKE=1 $(PY) -m pytest -q -n 2 --dist loadfile notebooks --nbval-lax --nbval-current-env

# The equal-budget search of the fidelity issue (docs/DECISIONS.md, "Search protocol"); not part of `reproduce`.
# Every method gets the same number of draws from the ranges in the configs' field metadata, one seed, the
# default scale; selection on the shifted validation split. Writes tuning/multimnist.csv, tuning/movielens.csv
# and tuning/tuned.json (which the presets then read); the runs themselves go to results/tuning/ and are reused or
# resumed when the target is run again. Expected cost on 2 CPU cores, from the per-run times under README
# "Measured": Multi-MNIST 14 methods x 12 draws (20 epochs, one thread each, two at a time: --jobs 2; STL, PCGrad,
# GradVac and the four aggregators cost ~1.5-2x) measured 1 h 46 min for 99 runs on 2 cores (+ 10 min 40 s for VREx's
# 12, + 1 h 16 min for the aggregators' 48), MovieLens 14 x 8 x ~12-16 s = ~25 min.
tune: data
	$(PY) -m mtcrl_lite.grid.search --dataset multimnist --methods all --draws 12 \
	  --out results/tuning/multimnist --jobs 2 --set train.device=auto --write-tuning
	$(PY) -m mtcrl_lite.grid.search --dataset movielens --methods all --draws 8 \
	  --out results/tuning/movielens --write-tuning

# JupyterLab on the environment of the targets, with its own named kernel ("mtcrl-lite (.venv)"), opened on notebooks/.
LAB_PORT ?= 8888
LAB_ARGS ?=
lab: data
	$(PY) -m ipykernel install --sys-prefix --name mtcrl-lite --display-name "mtcrl-lite ($(or $(PYTHON_ENV),.venv))"
	$(PY) -m jupyterlab --notebook-dir=notebooks --port=$(LAB_PORT) --no-browser $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Colab's bootstrap cell runs this in its clone (mtcrl_lite/experiments/colab.py), with PYTHON = the kernel's interpreter and
# DATA = what the notebook reads: no venv, Colab's torch and numpy stay; the data from their canonical hosts.
colab:
	$(PYTHON) -m pip install -q -r requirements-colab.txt
	$(PYTHON) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PYTHON) -m pip install -q --no-deps -e .
	$(if $(strip $(DATA)),$(PYTHON) -m mtcrl_lite.data fetch $(DATA))

# Publish for Colab: record the public address and the tag (pushed there first: checked with git ls-remote) in
# pyproject.toml [tool.mtcrl-lite], write them into every notebook's badge and bootstrap cell, then check them.
release: venv
	$(PY) -m mtcrl_lite.experiments.colab --release "$(URL)" "$(TAG)"
	$(PY) -m mtcrl_lite.experiments.colab --check

# The run record (results/record/runs.csv, committed) from the run folders under results/ (or $MTCRL_RESULTS),
# then docs/RESULTS.md and README.md's claims table, and notebooks 09 and 10 executed on the record alone
# (results/notebooks/, committed: what a visitor sees without training). `make report` needs only the record.
record: venv
	$(PY) -m mtcrl_lite.analysis.record build

report: venv
	$(PY) -m mtcrl_lite.experiments.claims
	mkdir -p results/notebooks
	set -e; for nb in 09_main_results 10_beyond_the_paper; do \
	  MTCRL_RESULTS=$(CURDIR)/results/notebooks $(PY) -m papermill --cwd notebooks -k python3 \
	    notebooks/$$nb.ipynb results/notebooks/$$nb.ipynb; \
	  $(PY) -m mtcrl_lite.experiments.notebook strip-timing results/notebooks/$$nb.ipynb; \
	done

# The offline static HTML report (results/book/_build/html/index.html): docs/RESULTS.md, the executed notebooks of the
# record (results/notebooks/) and the other docs, in book/_toc.yml's order. Executes nothing; takes seconds.
book: .venv-book/.installed
	.venv-book/bin/jupyter-book build . --config book/_config.yml --toc book/_toc.yml --path-output results/book -q
	@echo "open results/book/_build/html/index.html"

# The browser of the book's test (tests/test_book.py, Playwright): the system Chromium, from Debian if it is missing.
browser:
	@test -x "$$MTCRL_CHROMIUM" || command -v chromium >/dev/null || (apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y chromium) \
	  || (echo "error: no chromium; install it (Debian: apt-get install chromium) or set MTCRL_CHROMIUM" >&2; exit 1)

# Re-train a sample of recorded runs (seed 0 of MTL and MT-CRL, MovieLens and Multi-MNIST) and print each difference.
verify: data
	$(PY) -m mtcrl_lite.experiments.verify

bench: venv
	$(PY) benchmarks/generator.py
	$(PY) benchmarks/step_time.py
	$(PY) benchmarks/scenes.py
	$(PY) benchmarks/step_time.py --dataset scenes --batch 64
	$(PY) benchmarks/sweep_throughput.py
	$(PY) benchmarks/eval_memory.py

clean:
	rm -rf results/smoke results/quick .pytest_cache
