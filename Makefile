# `make demo` and `make test` are the README's two Quickstart commands.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint unit bench clean

$(VENV)/.ready: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $@

setup: $(VENV)/.ready

demo: setup
	$(BIN)/stream-mlops demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
test: lint
	$(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

unit: setup
	$(BIN)/pytest tests/unit

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) .stream-mlops .pytest_cache .mypy_cache .ruff_cache
