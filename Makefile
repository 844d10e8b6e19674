# Set-up and checks. Every target creates .venv first when it is missing.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench docs docs-build screenshots clean

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test,export,openvino,fid,lpips,video,web,docs]'
	touch $(STAMP)

demo: $(STAMP)  ## the main job: synthetic data → train on CPU → translate → pages and PSNR
	$(VENV)/bin/cyclegan demo --out ./demo

# One pytest worker per core (pytest-xdist); tests/conftest.py gives each its share of the threads.
test: $(STAMP)  ## every test, the slow end-to-end ones included (what CI runs)
	$(PYTHON) -m pytest -q -n auto --dist worksteal --durations=20

test-fast: $(STAMP)  ## the quick subset for daily work
	$(PYTHON) -m pytest -q -n auto --dist worksteal -m "not slow"

lint: $(STAMP)  ## ruff, and the layering contracts of pyproject.toml (import-linter)
	$(VENV)/bin/ruff check src tests $(wildcard benchmarks)
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PYTHON) benchmarks/train_step.py

# NO_MKDOCS_2_WARNING: Material prints a banner about its successor on every build otherwise.
docs: $(STAMP)  ## the documentation site on http://127.0.0.1:8000, rebuilt on every save
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

docs-build: $(STAMP)  ## the site into build/site; any warning (a broken link, a page not in the nav) fails it
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

screenshots: $(STAMP)  ## docs/assets/*.png from a demo run in ./demo: the results picture, the pages in Chromium
	$(PYTHON) scripts/results_picture.py --demo ./demo --out docs/assets/results.png
	$(PYTHON) scripts/screenshots.py --demo ./demo --out docs/assets

clean:
	rm -rf demo checkpoints results .pytest_cache
