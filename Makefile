# One entry point for every check; `.ci/run` calls `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: test lint rust-test venv develop pytest stubtest bench demo clean

test: lint rust-test develop pytest stubtest

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings

rust-test:
	cargo test

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.7,<2" numpy "pytest>=7" "hypothesis>=6.80" "mypy>=1.8"
	touch $@

venv: $(VENV)/.installed

develop: venv
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release --quiet

pytest: develop
	$(PY) -m pytest -q $(PYTEST_ARGS)

stubtest: develop
	$(PY) -m mypy.stubtest logitkit._native

bench: develop
	$(PY) benches/compare.py

demo:
	pip install . && python -m logitkit demo

clean:
	rm -rf $(VENV) target
