#!/usr/bin/env bash
# Cross-builds CPython 3.13 for wasm32-wasip1 from Debian trixie's python3.13 source package with
# Debian's clang-19/lld-19 and trixie's wasi-libc (python-wasi/apt-setup.sh installs them).
#
# Output (cached, keyed by a hash of this recipe and the exact package versions):
#   $OUT/lib/libpython3.13.a + the static libraries of the built-in extension modules
#   $OUT/include/            CPython headers + the wasm pyconfig.h
#   $OUT/stdlib/python313.zip  the stdlib as .pyc (deflated; zlib is built in)
#   $OUT/native/python       the native build-python, a self-contained prefix (the benchmark's
#                            native baseline; runs the vector tests)
# Prints $OUT on the last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${WASMGEARS_CACHE:-$HOME/.cache/wasmgears}
jobs=$(nproc)

pkgver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo none; }
srcver() { apt-cache showsrc "$1" 2>/dev/null | awk '/^Version:/{print $2}' | sort -V | tail -1; }
key=$( { cat "$here/build.sh" "$here/stdlib-zip.py"; srcver python3.13; srcver zlib;
         pkgver clang-19; pkgver lld-19; pkgver wasi-libc; pkgver libclang-rt-19-dev-wasm32; } | sha256sum | cut -c1-16)
OUT=$cache/python-wasi-$key
if [ -f "$OUT/.done" ]; then echo "python-wasi: cached at $OUT" >&2; echo "$OUT"; exit 0; fi

W=$cache/work-python-wasi-$key
rm -rf "$W" && mkdir -p "$W" && cd "$W"
echo "python-wasi: building in $W (takes ~6 min on 2 cores)" >&2
apt-get source --download-only -qq python3.13 >/dev/null 2>&1 || apt-get source --download-only python3.13 >&2
# Only zlib's orig tarball is used; mirrors have been seen to lag on its .dsc/.debian parts.
apt-get source --download-only -qq zlib >/dev/null 2>&1 || true
ls zlib_*.orig.tar.* >/dev/null 2>&1 || { echo "python-wasi: could not fetch zlib's source package" >&2; exit 1; }
tar xf python3.13_*.orig.tar.xz && SRC=$(ls -d "$W"/Python-3.13*/ | head -1) && SRC=${SRC%/}
tar xf zlib_*.orig.tar.* && ZSRC=$(ls -d "$W"/zlib-*/ | head -1)

# A sysroot holding only the WASI headers and libraries: without it Debian's clang adds
# /usr/include after the WASI headers and configure "finds" host-only headers.
S=$W/sysroot && mkdir -p "$S/include" "$S/lib/pkgconfig"
ln -s /usr/include/wasm32-wasi "$S/include/wasm32-wasi"
ln -s /usr/lib/wasm32-wasi "$S/lib/wasm32-wasi"
# --target=wasm32-wasi (same as wasip1 in clang 19) because Debian ships compiler-rt under lib/wasi/.
WCC="clang-19 --target=wasm32-wasi --sysroot=$S"

echo "python-wasi: native build-python" >&2
mkdir -p build-native && (cd build-native && "$SRC/configure" -q >/dev/null && make -s -j"$jobs" all >/dev/null 2>&1)

echo "python-wasi: zlib for wasm" >&2
DEPS=$W/deps
(cd "$ZSRC" && CC="$WCC" AR=llvm-ar-19 RANLIB=llvm-ranlib-19 CFLAGS=-O2 CHOST=wasm32-wasi \
   ./configure --static --prefix="$DEPS" >/dev/null && make -s libz.a >/dev/null && make -s install >/dev/null)

echo "python-wasi: cross build for wasm32-wasip1" >&2
mkdir -p build-wasi && cd build-wasi
# -g builds cannot be stripped by llvm-strip-19; -O2 without -g is smaller and builds 2x faster.
ZLIB_CFLAGS="-I$DEPS/include" ZLIB_LIBS="-L$DEPS/lib -lz" \
CC="$WCC" CXX="clang++-19 --target=wasm32-wasi --sysroot=$S" AR=llvm-ar-19 RANLIB=llvm-ranlib-19 \
PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=$S/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$S \
CONFIG_SITE=$SRC/Tools/wasm/config.site-wasm32-wasi OPT="-DNDEBUG -O2" \
  "$SRC/configure" -q -C --host=wasm32-wasip1 --build="$("$SRC/config.guess")" \
  --with-build-python="$W/build-native/python" >/dev/null
make -s -j"$jobs" all >/dev/null 2>&1 || make -j"$jobs" all >&2
cd "$W"

B=$W/build-wasi
T=$OUT.tmp && rm -rf "$T" && mkdir -p "$T/lib" "$T/include" "$T/stdlib" "$T/native"
cp "$B/libpython3.13.a" "$DEPS/lib/libz.a" "$T/lib/"
find "$B/Modules" -name '*.a' -exec cp {} "$T/lib/" \;
cp -r "$SRC/Include/." "$T/include/" && cp "$B/pyconfig.h" "$T/include/"
# grep -c reads all its input (grep -q would end the pipe early and pipefail would trip).
llvm-nm-19 "$T/lib/libpython3.13.a" 2>/dev/null | grep -c ' T Py_NewInterpreter$' >/dev/null \
  || { echo "python-wasi: Py_NewInterpreter missing from libpython3.13.a" >&2; exit 1; }
"$W/build-native/python" "$here/stdlib-zip.py" "$SRC/Lib" "$(ls -d "$B"/build/lib.wasi-wasm32-3.13)" "$T/stdlib/python313.zip"
# The native interpreter, runnable from the cache (benchmark baseline for _interpreters) and
# self-contained: an installed-style prefix (bin/, lib/python3.13/ with lib-dynload/), so it
# finds its stdlib from its own location, not from the work dir it was built in.
mkdir -p "$T/native/bin" "$T/native/lib"
cp -a "$W/build-native/python" "$T/native/bin/python3.13"
cp -a "$SRC/Lib" "$T/native/lib/python3.13"
mkdir -p "$T/native/lib/python3.13/lib-dynload"
cp -aL "$(ls -d "$W"/build-native/build/lib.*-3.13)/." "$T/native/lib/python3.13/lib-dynload/"  # -L: .so symlinks
ln -s bin/python3.13 "$T/native/python"
"$T/native/python" -c 'import encodings, zlib, _interpreters' \
  || { echo "python-wasi: the native interpreter cannot find its stdlib" >&2; exit 1; }
mv "$T" "$OUT" && touch "$OUT/.done"
rm -rf "$W"  # ~1 GB; the output holds all that is used
echo "python-wasi: done -> $OUT" >&2
echo "$OUT"
