#!/usr/bin/env bash
# Installs every Debian package the build and tests need. Adds Debian trixie as a
# low-priority (Pin 100) deb + deb-src source whose mirror is taken from this machine's own
# bookworm entry, so only what we ask for comes from trixie. Idempotent; safe to re-run.
set -euo pipefail

mirror_uri() {
  # deb822 files first, then one-line sources.list entries.
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk 'BEGIN{RS="";FS="\n"} /Suites:[^\n]*bookworm([ \n]|$)/ && !/security/ {
            for(i=1;i<=NF;i++) if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/,"",$i); split($i,a," "); print a[1]; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1=="deb" && $0 !~ /security/ && $0 ~ / bookworm / { for(i=2;i<=NF;i++) if ($i !~ /^\[/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  echo "apt-setup: no bookworm entry found in /etc/apt to derive a mirror from" >&2
  exit 1
}

src=/etc/apt/sources.list.d/wasmgears-trixie.sources
# Set up (again) unless trixie's lists are in: a source whose first `apt-get update` failed is
# not taken as done.
if [ ! -f "$src" ] || ! ls /var/lib/apt/lists/*_dists_trixie_*Release* >/dev/null 2>&1; then
  uri=$(mirror_uri)
  cat > "$src.tmp" <<SRC
Types: deb deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat > /etc/apt/preferences.d/wasmgears-trixie <<PIN
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
  mv "$src.tmp" "$src"
  apt-get update -qq || { rm -f "$src"; echo "apt-setup: apt-get update with trixie failed" >&2; exit 1; }
fi

need=(clang-19 lld-19 llvm-19 libclang-rt-19-dev-wasm32 redis-server libclang-dev clang
      build-essential pkg-config libffi-dev libssl-dev zlib1g-dev dpkg-dev xz-utils
      python3 python3-venv)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# The recipe needs trixie's wasi-libc (bookworm's 2022 one lacks what CPython 3.13 uses).
wasi_min=0.0~git20241209
have=$(dpkg-query -W -f '${Version}' wasi-libc 2>/dev/null || true)
if [ -z "$have" ] || ! dpkg --compare-versions "$have" ge "$wasi_min"; then missing+=("wasi-libc/trixie"); fi
new_redis=0
dpkg -s redis-server >/dev/null 2>&1 || new_redis=1
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's redis-server package starts a system instance when installed; the tests start their
# own. An instance that was there before us is left alone.
if [ "$new_redis" = 1 ]; then
  systemctl disable --now redis-server >/dev/null 2>&1 || service redis-server stop >/dev/null 2>&1 || true
fi
