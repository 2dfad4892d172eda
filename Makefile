# The course's commands. `make course` to learn, `make test` to check everything (CI runs it).
# Both start from a bare machine: they create .venv, install the pinned ranges from
# pyproject.toml, fetch and verify Fashion-MNIST, then do their job.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-from-pyproject
MODE   ?= default
SEEDS  ?= 42 0
JOBS   ?= 2  # chapters executed at once for the site (their outputs, not their times, matter)
NBVAL_FLAGS := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
               --nbval-cell-timeout=600

.PHONY: course test setup data lint notebooks site slides benchmark claims clean-notebooks clean help

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# `make course PORT=8890` serves on exactly that port (default: 8888, or the next free one);
# `make course IP=0.0.0.0` listens on every address (a container, a VM); JUPYTER_ARGS="..." passes
# more options to JupyterLab. tools/start_course.py adds --allow-root for root and --no-browser
# where there is no display, then prints the URL to open, with its token.
PORT ?=
IP   ?=
JUPYTER_ARGS ?=
COURSE_ARGS = $(if $(PORT),--port $(PORT)) $(if $(IP),--ip $(IP)) $(if $(JUPYTER_ARGS),-- $(JUPYTER_ARGS))

course: setup data  ## set up, get the data and open the course in JupyterLab (PORT=, IP=)
	$(BIN)/python tools/start_course.py $(strip $(COURSE_ARGS))

test: setup data lint  ## set up, get the data, lint, unit tests, every notebook and the site (smoke mode)
	COURSE_MODE=smoke $(BIN)/python -m pytest tests notebooks --ignore=tests/browser $(NBVAL_FLAGS)
	sh tools/ensure_system_packages.sh chromium
	$(MAKE) site MODE=smoke
	COURSE_SITE_REQUIRED=1 $(BIN)/python -m pytest tests/browser

setup: $(STAMP)  ## create .venv and install the course package with its dependencies

$(STAMP): pyproject.toml
	sh tools/ensure_system_packages.sh venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

data: setup  ## find (or install, or download) Fashion-MNIST and verify its checksums
	@$(BIN)/python -m course_utils.data --offline >/dev/null 2>&1 \
		|| sh tools/ensure_system_packages.sh fashion-mnist
	$(BIN)/python -m course_utils.data

lint: setup  ## ruff on the package, tests, tools and notebooks; notebooks must be output-free
	$(BIN)/ruff check .
	$(BIN)/python tools/clean_notebooks.py --check
	$(BIN)/python tools/slide_metadata.py --check

notebooks: setup data  ## execute every notebook headlessly: make notebooks MODE=default
	$(BIN)/python tools/run_notebooks.py --mode $(MODE)

site: setup data  ## execute every notebook, build pages (Sphinx) + slide decks: make site MODE=smoke JOBS=2
	$(BIN)/python tools/run_notebooks.py --mode $(MODE) --no-html --jobs $(JOBS)
	$(BIN)/python tools/build_site.py --mode $(MODE)

slides: site  ## the same as `make site` (the decks are built with the pages)

benchmark: setup data  ## time each notebook in smoke and default mode (table in build/benchmark)
	$(BIN)/python tools/benchmark.py

claims: setup data  ## run the notebooks per seed, list every claim they check: make claims MODE=default SEEDS="42 0"
	$(BIN)/python tools/claims.py --mode $(MODE) --seeds $(SEEDS)

clean-notebooks: setup  ## strip outputs and execution counts before committing
	$(BIN)/python tools/clean_notebooks.py

clean:  ## remove the virtual environment and build outputs (keeps the data cache)
	rm -rf $(VENV) build .pytest_cache .ruff_cache
