# brainuad: `make demo` and `make test` work on a fresh machine from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo

.PHONY: install lint test demo clean

$(BIN)/brainuad: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(BIN)/brainuad

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src/brainuad

test: lint
	$(BIN)/pytest -q -n 3 --dist loadscope

demo: install
	$(BIN)/brainuad demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
