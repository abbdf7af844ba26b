# One entry point for every check; `.ci/run` calls `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: test lint rust-test venv develop wheel wheel-test pytest stubtest bench demo clean

# CI: the suite runs against the built wheel installed in a fresh venv, not the source tree.
test: lint rust-test wheel-test

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

# The release wheel (abi3, manylinux), installed into its own venv with nothing of the source
# tree importable; pytest runs from tests/ against it.
WHEEL_VENV ?= .venv-wheel
wheel: venv
	rm -rf dist
	$(VENV)/bin/maturin build --release --out dist --quiet
	$(VENV)/bin/maturin sdist --out dist

wheel-test: wheel
	rm -rf $(WHEEL_VENV)
	python3 -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet dist/logitkit-*.whl "pytest>=7" "hypothesis>=6.80" "mypy>=1.8"
	cd tests && ../$(WHEEL_VENV)/bin/python -c "import logitkit, sys; assert 'site-packages' in logitkit.__file__, logitkit.__file__; print('testing', logitkit.__file__)"
	cd tests && ../$(WHEEL_VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir=.. $(PYTEST_ARGS) .
	cd tests && ../$(WHEEL_VENV)/bin/python -m mypy.stubtest logitkit._native

pytest: develop
	$(PY) -m pytest -q $(PYTEST_ARGS)

stubtest: develop
	$(PY) -m mypy.stubtest logitkit._native

bench: develop
	$(PY) benches/compare.py

demo:
	pip install . && python -m logitkit demo

clean:
	rm -rf $(VENV) $(WHEEL_VENV) target dist
