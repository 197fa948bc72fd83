# Two entry points: `make run` and `make test`. Each creates the virtualenv it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KEY := $(shell sha256sum pyproject.toml | cut -c1-16)
# The stamp names the dependency list it installed, so a cached venv is reused until it changes.
STAMP := $(VENV)/.kbchat-installed-$(KEY)
# Fast tests by default; CI (CI=true) runs the slow end-to-end ones too.
PYTEST_ARGS ?= $(if $(filter true 1,$(CI)),,-m "not slow")

.PHONY: run test lint clean

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,ocr,rerank,hub,dev,scale]'
	touch $(STAMP)

run: $(STAMP)
	PYTHONPATH=$(CURDIR) $(BIN)/kbchat serve

test: $(STAMP)
	PYTHONPATH=$(CURDIR) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check kbchat tests bench
	$(BIN)/ruff format --check kbchat tests bench
	$(BIN)/mypy kbchat tests

clean:
	rm -rf $(VENV)
