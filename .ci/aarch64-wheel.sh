#!/usr/bin/env bash
# The aarch64 wheel, built here by cross-compiling (maturin --zig), installed and tested under
# qemu-user with an aarch64 CPython: Debian's arm64 packages unpacked (not installed) into
# .aarch64/root, NumPy, pytest and hypothesis from PyPI's aarch64 wheels. Runs the CPU smoke
# test at the NEON and scalar levels and the softmax contract suites (the suites that start
# subprocesses of Python stay on x86-64: qemu-user cannot exec an aarch64 child without
# binfmt_misc).
#
# Prints SKIPPED and the reason, and succeeds, when something it needs cannot be had here
# (rustup's aarch64 target, qemu-aarch64, root for apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "aarch64-wheel: SKIPPED ($1)"; exit 0; }

TARGET=aarch64-unknown-linux-gnu
VENV=${VENV:-.venv}
DIR=.aarch64
# CPython 3.11 and the shared libraries its standard library and NumPy load.
DEBS=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libgcc-s1
  libstdc++6 libexpat1 zlib1g libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libreadline8
  libncursesw6 libtinfo6 libuuid1 libcrypt1 libdb5.3 libgdbm6 libnsl2 libtirpc3
  libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2 libkrb5support0 libkeyutils1)

rustup target list --installed 2>/dev/null | grep -qx "$TARGET" \
  || rustup target add "$TARGET" >/dev/null 2>&1 \
  || skip "rustup could not install the $TARGET standard library: rustup target add $TARGET"
command -v qemu-aarch64 >/dev/null || skip "no qemu-aarch64: sudo apt-get install qemu-user"
# Checked before the (long) cross build: without the unpacked CPython there is nothing to test on.
if [ ! -x "$DIR/root/usr/bin/python3.11" ] && [ "$(id -u)" != 0 ]; then
  skip "not root: Debian's arm64 CPython comes from dpkg --add-architecture arm64 and apt-get download, which need root: sudo make aarch64-wheel-test"
fi

rm -rf dist-aarch64
# zig links against glibc 2.17's symbols only when it is the linker: a linker set for the
# target in the environment (as `make neon` uses) would link the system's newer glibc.
PATH="$PWD/$VENV/bin:$PATH" env -u CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER \
  "$VENV/bin/maturin" build --release --zig \
  --compatibility manylinux2014 --target "$TARGET" --out dist-aarch64 --quiet

if [ ! -x "$DIR/root/usr/bin/python3.11" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -qq >/dev/null
  fi
  rm -rf "$DIR" && mkdir -p "$DIR/debs" "$DIR/root"
  (cd "$DIR/debs" && apt-get download -qq -o APT::Sandbox::User=root "${DEBS[@]/%/:arm64}" >/dev/null)
  for deb in "$DIR"/debs/*.deb; do dpkg -x "$deb" "$DIR/root"; done
fi

rm -rf "$DIR/site"
"$VENV/bin/python" -m pip install --quiet --target "$DIR/site" --platform manylinux2014_aarch64 \
  --python-version 3.11 --implementation cp --only-binary=:all: \
  numpy "pytest>=7" "hypothesis>=6.80" dist-aarch64/logitkit-*.whl

ROOT="$PWD/$DIR/root"
SITE="$PWD/$DIR/site"
py() { PYTHONPATH="$SITE" qemu-aarch64 -L "$ROOT" "$ROOT/usr/bin/python3.11" "$@"; }
cd tests
py -c "import logitkit, sys; assert '.aarch64/site' in logitkit.__file__, logitkit.__file__; print('testing', logitkit.__file__)"
py cpu_smoke.py neon
LOGITKIT_SIMD=scalar py cpu_smoke.py scalar
# Two shards at once (tests/conftest.py), one per core: qemu-user runs one Python thread at a
# time, and the suite took ~5 minutes of CI in one process. Each shard's output is printed when
# both are done; the step fails when either does.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
for i in 0 1; do
  LOGITKIT_TEST_SHARD=$i/2 py -m pytest -q -p no:cacheprovider --rootdir=.. \
    test_softmax.py test_softmax_properties.py > "$logs/$i" 2>&1 &
done
status=0
for i in 0 1; do wait -n || status=$?; done
for i in 0 1; do echo "== aarch64 pytest, shard $i/2"; cat "$logs/$i"; done
exit $status
