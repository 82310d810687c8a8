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
if [ ! -f "$src" ]; then
  uri=$(mirror_uri)
  cat > "$src" <<SRC
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
  apt-get update -qq
fi

need=(clang-19 lld-19 llvm-19 libclang-rt-19-dev-wasm32 redis-server libclang-dev clang
      build-essential pkg-config libffi-dev libssl-dev zlib1g-dev dpkg-dev xz-utils)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
dpkg -s wasi-libc >/dev/null 2>&1 || missing+=("wasi-libc/trixie")
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's redis-server package starts a system instance; the tests start their own.
systemctl disable --now redis-server >/dev/null 2>&1 || service redis-server stop >/dev/null 2>&1 || true
