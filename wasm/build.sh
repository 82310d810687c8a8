#!/usr/bin/env bash
# Builds the guest: the C glue linked with libpython into a WASI reactor, the stdlib zip with
# the `gears` runtime added, then a Wizer snapshot (CPython booted, runtime imported) and its
# precompiled .cwasm for the host's engine configuration.
#
# usage: wasm/build.sh <python-wasi output dir>     (prints the guest dir on stdout)
# Cached in $WASMGEARS_CACHE/guest-<hash of every input>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
PY=$1
cache=${WASMGEARS_CACHE:-$HOME/.cache/wasmgears}

inputs_key() {
  { echo "$(basename "$PY")"; cat "$here"/build.sh "$here"/*.c "$here"/*.h "$here"/gears/*.py "$here"/guest-requirements.txt \
      "$top/tools/snapshot/src/main.rs" "$top/tools/snapshot/Cargo.toml" \
      "$top/crates/sandbox/src/engine_config.rs" "$top/Cargo.lock" "$top/Cargo.toml"; } | sha256sum | cut -c1-16
}
key=$(inputs_key)
OUT=$cache/guest-$key
if [ -f "$OUT/.done" ]; then echo "guest: cached at $OUT" >&2; echo "$OUT"; exit 0; fi

echo "guest: building $OUT" >&2
# The whole workspace, so cargo unifies features exactly as for the module (else wasmtime
# would be compiled twice, ~10 min each).
(cd "$top" && cargo build --release -q --workspace >&2)
T=$OUT.tmp && rm -rf "$T" && mkdir -p "$T/lib" "$T/sysroot/include" "$T/sysroot/lib"
S=$T/sysroot
ln -s /usr/include/wasm32-wasi "$S/include/wasm32-wasi"
ln -s /usr/lib/wasm32-wasi "$S/lib/wasm32-wasi"

# The 8 MiB shadow stack is what CPython needs; the wasm default of 64 KiB is far too small.
clang-19 --target=wasm32-wasi --sysroot="$S" -O2 -Wall -Werror -I"$PY/include" \
  -mexec-model=reactor -z stack-size=8388608 -Wl,--stack-first -Wl,--initial-memory=20971520 \
  "$here/glue.c" "$here/codec.c" "$here/gears_dict.c" "$here/records.c" -o "$T/gears-raw.wasm" \
  -L"$PY/lib" -lpython3.13 $(cd "$PY/lib" && ls lib*.a | grep -v -e '^libpython3.13.a$' -e '^libz.a$' | sed 's/^lib\(.*\)\.a$/-l\1/') -lz \
  -ldl -lwasi-emulated-signal -lwasi-emulated-getpid -lwasi-emulated-process-clocks -lm

# The pure-Python packages of guest-requirements.txt, from the machine's package index (pip
# of a venv of the system python3), unpacked next to the runtime's modules.
if [ ! -x "$cache/build-venv/bin/pip" ]; then python3 -m venv "$cache/build-venv" >&2; fi
"$cache/build-venv/bin/pip" download -q --no-deps --only-binary=:all: --python-version 3.13 \
  -d "$T/wheels" -r "$here/guest-requirements.txt" >&2
mkdir -p "$T/site"
for wheel in "$T"/wheels/*.whl; do
  "$PY/native/python" -m zipfile -e "$wheel" "$T/site" >&2
done
rm -rf "$T"/site/*.dist-info

cp "$PY/stdlib/python313.zip" "$T/lib/python313.zip"
"$PY/native/python" - "$top/python-wasi/stdlib-zip.py" "$T/lib/python313.zip" "$here/gears" "$T/site" <<'PYEOF'
import importlib.util, pathlib, sys, zipfile
spec = importlib.util.spec_from_file_location("stdlib_zip", sys.argv[1])
stdlib_zip = importlib.util.module_from_spec(spec); spec.loader.exec_module(stdlib_zip)
with zipfile.ZipFile(sys.argv[2], "a") as zf:
    for root in map(pathlib.Path, sys.argv[3:]):
        for path in sorted(root.rglob("*.py")):
            stdlib_zip.compile_into(zf, root, path)
PYEOF

"$top/target/release/wasmgears-snapshot" "$T/gears-raw.wasm" "$T/lib" "$T/gears.wasm" "$T/gears.cwasm"
rm -rf "$T/sysroot" "$T/gears-raw.wasm" "$T/wheels" "$T/site"
# An input edited while this ran: what was built is neither the old inputs nor the new ones.
if [ "$(inputs_key)" != "$key" ]; then
  rm -rf "$T"
  echo "guest: the inputs changed during the build; not cached, run it again" >&2
  exit 1
fi
rm -rf "$OUT" && mv "$T" "$OUT" && touch "$OUT/.done"
echo "guest: done -> $OUT" >&2
echo "$OUT"
