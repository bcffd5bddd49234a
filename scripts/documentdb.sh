#!/usr/bin/env bash
# documentdb.sh - a real, index-using MongoDB-wire-compatible test server:
#   FerretDB v2.7.0 (Go, MongoDB wire protocol)  ->  PostgreSQL 15 + DocumentDB 0.107 extension.
#
#   documentdb.sh build        idempotent; installs Debian packages, builds pgvector + DocumentDB
#                              (pg_documentdb_core, pg_documentdb) from ./src tarballs with PGXS,
#                              builds the FerretDB binary; caches everything under $CACHE.
#   documentdb.sh start PORT   PostgreSQL (Unix socket only, temp data dir) + FerretDB on
#                              127.0.0.1:PORT (no auth). Prints nothing; returns once a ping works.
#                              Pids/paths go to $CACHE/run/PORT.pids.
#   documentdb.sh stop [PORT]  stop one instance (or every instance started from this cache)
#                              and delete its temp data dir.
#   documentdb.sh status       list running instances.
#
# Environment: MLTRAIN_REALDB_SRC (folder with the source tarballs; default ../shared/realdb/src
#              beside the checkout), MLTRAIN_REALDB_CACHE (default ~/.cache/mltrain-realdb),
#              MLTRAIN_REALDB_KEEP=1 (stop keeps the data dir), MLTRAIN_REALDB_TMP (default /tmp).
# Versioned copy of ../shared/realdb/documentdb.sh (see its README.md for versions, provenance
# and what was verified); docs/real-server.md says how CI and developers use it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The source tarballs are not in git (about 9 MB, third-party): CI and developers keep them in
# the shared folder beside the checkout, ../shared/realdb/src; MLTRAIN_REALDB_SRC points elsewhere.
# Only 'build' reads them, and only when the build cache is cold.
SRC_DIR="${MLTRAIN_REALDB_SRC:-$HERE/../../shared/realdb/src}"
CACHE="${MLTRAIN_REALDB_CACHE:-$HOME/.cache/mltrain-realdb}"
TMP_BASE="${MLTRAIN_REALDB_TMP:-/tmp}"

PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
DOCDB_COMMIT=3f80da90a9e0b04f214183aa656c4fb0b4bc31e4   # FerretDB/documentdb, branch 'ferretdb', 0.107-0
DOCDB_TARBALL="$SRC_DIR/documentdb-${DOCDB_COMMIT:0:12}.tar.gz"
PGVECTOR_COMMIT=2627c5ff775ae6d7aef0c430121ccf857842d2f2  # pgvector/pgvector tag v0.8.0
PGVECTOR_TARBALL="$SRC_DIR/pgvector-v0.8.0-${PGVECTOR_COMMIT:0:12}.tar.gz"
FERRETDB_VERSION=v2.7.0

BUILD_KEY="pg${PG_MAJOR}-docdb-${DOCDB_COMMIT:0:12}-pgvector-${PGVECTOR_COMMIT:0:12}"
STAGE="$CACHE/stage-$BUILD_KEY"          # DESTDIR of 'make install' (the cached build artifacts)
FERRETDB_BIN="$CACHE/bin/ferretdb-$FERRETDB_VERSION"
TEMPLATE=""   # set in make_template: initdb + CREATE EXTENSION done once per build + config
RUN_DIR="$CACHE/run"

APT_PACKAGES=(
  "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-cron"
  "postgresql-$PG_MAJOR-postgis-3" "postgresql-$PG_MAJOR-rum"
  libbson-dev libintelrdfpmath-dev libpcre2-dev libkrb5-dev build-essential pkg-config
)

die() { echo "documentdb.sh: $*" >&2; exit 1; }
log() { echo "documentdb.sh: $*" >&2; }

# ---------------------------------------------------------------- build
ensure_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing Debian packages (need root to install): ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

build_c_extensions() {
  [ -f "$STAGE/.complete" ] && return 0
  [ -f "$DOCDB_TARBALL" ] || die "missing $DOCDB_TARBALL (set MLTRAIN_REALDB_SRC to the folder holding it)"
  [ -f "$PGVECTOR_TARBALL" ] || die "missing $PGVECTOR_TARBALL (set MLTRAIN_REALDB_SRC to the folder holding it)"
  local b="$CACHE/build-$BUILD_KEY" jobs t0
  jobs="$(nproc 2>/dev/null || echo 2)"
  t0=$(date +%s)
  rm -rf "$b" "$STAGE"
  mkdir -p "$b/pgvector" "$b/documentdb" "$CACHE/pkgconfig"

  # Debian's libintelrdfpmath-dev ships no pkg-config file; DocumentDB's Makefile.cflags asks for
  # 'intelmathlib'. libbidgcc000.a = CALL_BY_REF=0 GLOBAL_RND=0 GLOBAL_FLAGS=0, the same
  # configuration DocumentDB's own scripts/install_setup_intel_decimal_math_lib.sh builds.
  cat > "$CACHE/pkgconfig/intelmathlib.pc" <<'EOF'
prefix=/usr
libdir=/usr/lib/x86_64-linux-gnu
includedir=/usr/include

Name: intelmathlib
Description: Intel Decimal Floating-Point Math Library (Debian libintelrdfpmath-dev)
Version: 2.0 Update 2
Cflags:
Libs: -L${libdir} -lbidgcc000
EOF
  export PKG_CONFIG_PATH="$CACHE/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  # with_llvm=no: skip JIT bitcode (halves compile time; JIT is optional).
  local mk=(make -s "PG_CONFIG=$PG_BIN/pg_config" with_llvm=no)

  log "building pgvector v0.8.0"
  tar -xzf "$PGVECTOR_TARBALL" -C "$b/pgvector"
  "${mk[@]}" -C "$b/pgvector" -j"$jobs" OPTFLAGS="" >&2
  "${mk[@]}" -C "$b/pgvector" install DESTDIR="$STAGE" >&2

  log "building DocumentDB (pg_documentdb_core, pg_documentdb) ${DOCDB_COMMIT:0:10}"
  tar -xzf "$DOCDB_TARBALL" -C "$b/documentdb"
  # Built outside a git checkout, DocumentDB would report "unknown sha:unknown"; record the real commit.
  mkdir -p "$b/documentdb/pg_documentdb/build/include/metadata"
  printf '// Autogenerated header for versioning\n#define EXTENSION_VERSION_STR "0.107.0"\n#define GIT_VERSION "ferretdb sha:%s buildId:0"\n' \
    "${DOCDB_COMMIT:0:10}" > "$b/documentdb/pg_documentdb/build/include/metadata/documentdb_extension_version.h"
  "${mk[@]}" -C "$b/documentdb/pg_documentdb_core" -j"$jobs" >&2
  "${mk[@]}" -C "$b/documentdb/pg_documentdb_core" install DESTDIR="$STAGE" >&2
  # pg_documentdb links against pg_documentdb_core.so in ../pg_documentdb_core (built above).
  # Debian 12 has libbson 1.23, which lacks the BSON binary subtype 8 ("sensitive", libbson >= 1.24):
  # define it on the command line (COPT is PGXS's hook for extra CFLAGS) - no source patch.
  "${mk[@]}" -C "$b/documentdb/pg_documentdb" -j"$jobs" \
    "COPT=-DBSON_SUBTYPE_SENSITIVE=0x08 -Wno-error=switch" >&2
  "${mk[@]}" -C "$b/documentdb/pg_documentdb" install DESTDIR="$STAGE" >&2
  touch "$STAGE/.complete"
  rm -rf "$b"
  log "C extensions built in $(( $(date +%s) - t0 ))s"
}

# Copy the staged files into PostgreSQL's lib/ and share/extension dirs (PG15 has no
# extension_control_path). Only changed files; via rename so a running server is never hurt.
install_c_extensions() {
  local f rel dst
  (cd "$STAGE" && find . -type f ! -name .complete) | while read -r f; do
    rel="${f#./}"; dst="/$rel"
    if ! cmp -s "$STAGE/$rel" "$dst"; then
      # mkdir first: on a clean machine some target dirs (e.g. server/extension/vector) do not exist yet,
      # and a non-existent dir is never writable.
      { mkdir -p "$(dirname "$dst")" 2>/dev/null && [ -w "$(dirname "$dst")" ]; } \
        || die "cannot write $dst (run build as root)"
      cp "$STAGE/$rel" "$dst.tmp.$$" && mv -f "$dst.tmp.$$" "$dst"
    fi
  done
}

build_ferretdb() {
  [ -x "$FERRETDB_BIN" ] && return 0
  command -v go >/dev/null || die "'go' (>= 1.25) is required to build FerretDB $FERRETDB_VERSION"
  log "building FerretDB $FERRETDB_VERSION (go install)"
  local t0; t0=$(date +%s)
  mkdir -p "$CACHE/bin" "$CACHE/gobin"
  GOFLAGS=-mod=mod GOBIN="$CACHE/gobin" go install "github.com/FerretDB/FerretDB/v2/cmd/ferretdb@$FERRETDB_VERSION" >&2
  mv -f "$CACHE/gobin/ferretdb" "$FERRETDB_BIN"
  rmdir "$CACHE/gobin" 2>/dev/null || true
  log "FerretDB built in $(( $(date +%s) - t0 ))s"
}

cmd_build() {
  mkdir -p "$CACHE"
  ensure_packages
  build_c_extensions
  install_c_extensions
  build_ferretdb
  "$FERRETDB_BIN" --version >/dev/null || die "FerretDB binary does not run"
}

# ---------------------------------------------------------------- start / stop
PG_USER=""
as_pg() {  # run a command as the PostgreSQL OS user (postgres refuses to run as root)
  if [ -n "$PG_USER" ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

check_built() {
  [ -x "$FERRETDB_BIN" ] && [ -f "$STAGE/.complete" ] \
    && [ -f "$("$PG_BIN/pg_config" --sharedir)/extension/documentdb.control" ] \
    || die "not built: run '$0 build' first"
}

port_in_use() {  # true if something accepts TCP connections on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# postgresql.conf settings shared by the template and every instance
pg_conf_common() {
  cat <<'EOF'

# ---- added by documentdb.sh (same DocumentDB settings as FerretDB's packaging/10-preload.sh)
listen_addresses = ''
shared_preload_libraries = 'pg_cron,pg_documentdb_core,pg_documentdb'
cron.database_name = 'postgres'
documentdb.enableCompact = true
documentdb.enableLetAndCollationForQueryMatch = true
documentdb.enableNowSystemVariable = true
documentdb.enableSortbyIdPushDownToPrimaryKey = true
documentdb.enableSchemaValidation = true
documentdb.enableBypassDocumentValidation = true
documentdb.enableUserCrud = true
documentdb.maxUserLimit = 100
# Debian 12's pg_cron 1.4 has no sub-minute ('2 seconds') schedules, which CREATE EXTENSION uses for
# the background index-build jobs by default; >= 60 makes DocumentDB schedule them '* * * * *'.
# (FerretDB's createIndexes builds indexes synchronously - create_indexes_non_concurrently - anyway.)
documentdb.indexBuildScheduleInSec = 60
max_connections = 200
# throw-away test database: trade durability for speed
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# per-instance settings: no TCP; the Unix socket lives in the instance dir, and both pg_cron and
# DocumentDB's internal libpq connections back to the server (used by some commands, e.g. a
# count with $mod) must use it too (their defaults are TCP to localhost).
pg_conf_instance() {
  echo "unix_socket_directories = '$1'"
  echo "cron.host = '$1'"
  echo "documentdb.localhost_connection_string = 'host=$1'"
}

make_template() {
  TEMPLATE="$CACHE/pgdata-template-$BUILD_KEY-$(pg_conf_common | md5sum | cut -c1-8)"
  [ -f "$TEMPLATE/.complete" ] && return 0
  local tmp; tmp="$(mktemp -d "$TMP_BASE/mltrain-realdb-template.XXXXXX")"
  # shellcheck disable=SC2064
  trap "as_pg '$PG_BIN/pg_ctl' -D '$tmp/pg' -m immediate -w stop >/dev/null 2>&1; rm -rf '$tmp'" EXIT
  [ -n "$PG_USER" ] && chown "$PG_USER" "$tmp"
  as_pg "$PG_BIN/initdb" -D "$tmp/pg" -U postgres --auth=trust -E UTF8 --no-locale >"$tmp/initdb.log" 2>&1 \
    || { cat "$tmp/initdb.log" >&2; die "initdb failed"; }
  { pg_conf_common; pg_conf_instance "$tmp"; } >> "$tmp/pg/postgresql.conf"
  as_pg "$PG_BIN/pg_ctl" -D "$tmp/pg" -l "$tmp/postgres.log" -w -t 120 start >/dev/null \
    || { cat "$tmp/postgres.log" >&2; die "template postgres failed to start"; }
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$tmp" -U postgres -d postgres \
      -c 'CREATE EXTENSION IF NOT EXISTS documentdb CASCADE' >"$tmp/ext.log" 2>&1 \
    || { cat "$tmp/ext.log" >&2; die "CREATE EXTENSION documentdb failed"; }
  as_pg "$PG_BIN/pg_ctl" -D "$tmp/pg" -m fast -w stop >/dev/null
  rm -rf "$TEMPLATE"
  mv "$tmp/pg" "$TEMPLATE"
  touch "$TEMPLATE/.complete"
  rm -rf "$tmp"
  trap - EXIT
}

cmd_start() {
  local port="${1:-}"
  [[ "$port" =~ ^[0-9]+$ ]] || die "usage: $0 start PORT"
  check_built
  mkdir -p "$RUN_DIR"
  [ -f "$RUN_DIR/$port.pids" ] && die "an instance for port $port is already recorded ($RUN_DIR/$port.pids); stop it first"
  port_in_use "$port" && die "127.0.0.1:$port is already in use"
  if [ "$(id -u)" -eq 0 ]; then
    PG_USER=postgres
    id -u "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$PG_USER"
  fi
  make_template

  local d; d="$(mktemp -d "$TMP_BASE/mltrain-realdb-$port.XXXXXX")"
  chmod 755 "$d"
  cp -a "$TEMPLATE" "$d/pg"
  rm -f "$d/pg/.complete" "$d/pg/postmaster.pid"
  [ -n "$PG_USER" ] && chown -R "$PG_USER" "$d"
  chmod 700 "$d/pg"
  pg_conf_instance "$d" >> "$d/pg/postgresql.conf"   # later lines win
  if ! as_pg "$PG_BIN/pg_ctl" -D "$d/pg" -l "$d/postgres.log" -w -t 120 start >/dev/null; then
    cat "$d/postgres.log" >&2; die "postgres failed to start (data dir kept: $d)"
  fi
  local pg_pid; pg_pid="$(head -1 "$d/pg/postmaster.pid")"

  mkdir -p "$d/ferretdb-state"
  local ferret_args=(
    --listen-addr="127.0.0.1:$port"
    --postgresql-url="postgres://postgres@/postgres?host=$d"
    --no-auth --state-dir="$d/ferretdb-state" --debug-addr= --telemetry=disable
    --log-level="${MLTRAIN_REALDB_LOG_LEVEL:-warn}"
  )
  # FerretDB runs as the invoking user (only PostgreSQL needs a non-root user)
  nohup "$FERRETDB_BIN" "${ferret_args[@]}" >"$d/ferretdb.log" 2>&1 </dev/null &
  local ferret_pid=$!
  {
    echo "PORT=$port"
    echo "DATA_DIR=$d"
    echo "PG_PID=$pg_pid"
    echo "FERRETDB_PID=$ferret_pid"
    echo "PG_USER=$PG_USER"
  } > "$RUN_DIR/$port.pids"

  local i
  for i in $(seq 1 300); do
    if "$FERRETDB_BIN" ping --listen-addr="127.0.0.1:$port" --log-level=error >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$ferret_pid" 2>/dev/null || { cat "$d/ferretdb.log" >&2; cmd_stop "$port"; die "FerretDB exited"; }
    sleep 0.2
  done
  cat "$d/ferretdb.log" >&2
  cmd_stop "$port"
  die "FerretDB did not answer ping on 127.0.0.1:$port within 60s"
}

stop_one() {
  local f="$1" PORT="" DATA_DIR="" PG_PID="" FERRETDB_PID="" PG_USER_REC=""
  # shellcheck disable=SC1090
  PORT="$(sed -n 's/^PORT=//p' "$f")"; DATA_DIR="$(sed -n 's/^DATA_DIR=//p' "$f")"
  FERRETDB_PID="$(sed -n 's/^FERRETDB_PID=//p' "$f")"; PG_USER_REC="$(sed -n 's/^PG_USER=//p' "$f")"
  PG_USER="$PG_USER_REC"
  if [ -n "$FERRETDB_PID" ] && kill -0 "$FERRETDB_PID" 2>/dev/null; then
    kill -TERM "$FERRETDB_PID" 2>/dev/null || true
    local i; for i in $(seq 1 50); do kill -0 "$FERRETDB_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$FERRETDB_PID" 2>/dev/null || true
  fi
  if [ -n "$DATA_DIR" ] && [ -f "$DATA_DIR/pg/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR/pg" -m fast -w -t 60 stop >/dev/null 2>&1 \
      || as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR/pg" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ "${MLTRAIN_REALDB_KEEP:-0}" != 1 ] && [[ "$DATA_DIR" == "$TMP_BASE"/mltrain-realdb-* ]]; then
    rm -rf "$DATA_DIR"
  fi
  rm -f "$f"
}

cmd_stop() {
  local port="${1:-}" f
  if [ -n "$port" ]; then
    [ -f "$RUN_DIR/$port.pids" ] || return 0
    stop_one "$RUN_DIR/$port.pids"
  else
    for f in "$RUN_DIR"/*.pids; do [ -f "$f" ] && stop_one "$f"; done
  fi
  return 0
}

cmd_status() {
  local f
  for f in "$RUN_DIR"/*.pids; do [ -f "$f" ] && { echo "== $f"; cat "$f"; }; done
  return 0
}

case "${1:-}" in
  build)  cmd_build ;;
  start)  shift; cmd_start "$@" ;;
  stop)   shift; cmd_stop "$@" ;;
  status) cmd_status ;;
  *) echo "usage: $0 build | start PORT | stop [PORT] | status" >&2; exit 2 ;;
esac
