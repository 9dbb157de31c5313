#!/usr/bin/env bash
# Make sure PostgreSQL 15 (server, client, server-dev headers) and the pgvector extension are
# installed, so that the end-to-end tests can start private throwaway clusters.
#
# Idempotent; must run as root when anything is missing. Debian 12 (bookworm) only.
#
# pgvector is not packaged for bookworm, so it is built from the *source package* of the next
# Debian release (trixie), fetched from the Debian mirror this machine is already configured with.
# apt is pointed at temporary directories for that: nothing under /etc/apt changes.
set -euo pipefail

PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_CONFIG="${PG_BIN}/pg_config"
export DEBIAN_FRONTEND=noninteractive

log() { printf 'setup-postgres: %s\n' "$*" >&2; }
die() {
  printf 'setup-postgres: ERROR: %s\n' "$*" >&2
  exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

pkg_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# Packages we need, with a file each of them must provide (so a half-removed package is noticed).
declare -A PKG_FILE=(
  ["postgresql-${PG_MAJOR}"]="${PG_BIN}/initdb"
  ["postgresql-client-${PG_MAJOR}"]="${PG_BIN}/psql"
  ["postgresql-server-dev-${PG_MAJOR}"]="/usr/lib/postgresql/${PG_MAJOR}/lib/pgxs/src/makefiles/pgxs.mk"
  [make]="/usr/bin/make"
  [gcc]="/usr/bin/gcc"
  [python3]="/usr/bin/python3"
)

missing_pkgs() {
  local p
  for p in "${!PKG_FILE[@]}"; do
    if ! pkg_installed "$p" || [ ! -e "${PKG_FILE[$p]}" ]; then
      printf '%s\n' "$p"
    fi
  done | sort
}

apt_updated=no
apt_install() {
  is_root || die "packages missing: $*. Run this script as root: sudo scripts/setup-postgres.sh"
  command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian 12 only (missing: $*)"
  if [ "$apt_updated" = no ]; then
    log "apt-get update"
    apt-get update -q >/dev/null || die "apt-get update failed (is the network / Debian mirror reachable?)"
    apt_updated=yes
  fi
  log "installing: $*"
  apt-get install -y -q --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

vector_control() { printf '%s/extension/vector.control' "$("$PG_CONFIG" --sharedir)"; }

# --- 1. Debian packages -------------------------------------------------------------------------
mapfile -t missing < <(missing_pkgs)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
  mapfile -t missing < <(missing_pkgs)
  [ "${#missing[@]}" -eq 0 ] || die "still missing after apt-get install: ${missing[*]}"
fi
for b in initdb pg_ctl postgres psql pg_config; do
  [ -x "${PG_BIN}/$b" ] || die "${PG_BIN}/$b is missing although its package is installed"
done

# --- 2. pgvector --------------------------------------------------------------------------------
if [ -f "$(vector_control)" ]; then
  log "PostgreSQL ${PG_MAJOR} and pgvector are installed ($(vector_control))"
  exit 0
fi
is_root || die "pgvector is not installed ($(vector_control) missing). Run this script as root: sudo scripts/setup-postgres.sh"

# apt-get source unpacks with dpkg-source (dpkg-dev).
pkg_installed dpkg-dev || apt_install dpkg-dev

# The mirror URI of the stanza that serves bookworm, read from this machine's own apt config.
mirror_uri() {
  local f=/etc/apt/sources.list.d/debian.sources uri=""
  if [ -f "$f" ]; then
    # deb822 format: paragraphs separated by blank lines; fields may come in any order.
    uri=$(awk '
      function flush() { if (suite_ok && uri != "" && !found) { print uri; found = 1 } uri = ""; suite_ok = 0 }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite_ok = 1 }
      END { flush() }
    ' "$f")
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    # One-line format: deb [options] URI SUITE COMPONENTS...
    uri=$(awk '$1 == "deb" { sub(/\[[^]]*\][[:space:]]*/, ""); if ($3 == "bookworm") { print $2; exit } }' \
      /etc/apt/sources.list)
  fi
  printf '%s' "$uri"
}

MIRROR=$(mirror_uri)
[ -n "$MIRROR" ] || die "could not find the Debian mirror URI for bookworm in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
log "building pgvector from Debian trixie's source package (mirror from local apt config: $MIRROR)"

WORK=$(mktemp -d /tmp/pgvector-build.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/parts" "$WORK/src"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "$KEYRING missing (package debian-archive-keyring)"
cat >"$WORK/parts/trixie-src.sources" <<EOF
Types: deb-src
URIs: $MIRROR
Suites: trixie
Components: main
Signed-By: $KEYRING
EOF

APT_TMP=(
  -o APT::Sandbox::User=root
  -o Acquire::Languages=none
  -o Dir::Etc::SourceList=/dev/null
  -o "Dir::Etc::SourceParts=$WORK/parts"
  -o "Dir::State::Lists=$WORK/lists"
  -o "Dir::Cache::pkgcache=$WORK/pkgcache.bin"
  -o "Dir::Cache::srcpkgcache=$WORK/srcpkgcache.bin"
)
apt-get "${APT_TMP[@]}" update -q >"$WORK/apt-update.log" 2>&1 || {
  cat "$WORK/apt-update.log" >&2
  die "apt-get update for the temporary trixie deb-src entry failed"
}
(cd "$WORK/src" && apt-get "${APT_TMP[@]}" source -q pgvector) >"$WORK/apt-source.log" 2>&1 || {
  cat "$WORK/apt-source.log" >&2
  die "apt-get source pgvector (trixie) failed"
}
SRC=""
for d in "$WORK"/src/pgvector-*/; do
  [ -f "$d/Makefile" ] && SRC=$d && break
done
[ -n "$SRC" ] || die "unpacked pgvector source not found in $WORK/src"
log "building $(basename "$SRC")"

make -C "$SRC" -j2 PG_CONFIG="$PG_CONFIG" with_llvm=no >"$WORK/make.log" 2>&1 || {
  tail -n 40 "$WORK/make.log" >&2
  die "building pgvector failed"
}
make -C "$SRC" PG_CONFIG="$PG_CONFIG" with_llvm=no install >"$WORK/install.log" 2>&1 || {
  tail -n 40 "$WORK/install.log" >&2
  die "installing pgvector failed"
}
[ -f "$(vector_control)" ] || die "pgvector installed but $(vector_control) is still missing"
log "pgvector installed ($(vector_control))"
