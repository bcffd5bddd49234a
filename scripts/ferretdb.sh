#!/usr/bin/env bash
# Build / start / stop a local FerretDB v1 (MongoDB wire protocol on SQLite)
# for tests. Used by CI (.ci/run) and by developers.
#
# Usage:
#   scripts/ferretdb.sh build          build (once, cached) and print the binary path
#   scripts/ferretdb.sh start [PORT]   start on 127.0.0.1:PORT (default 27017),
#                                      print MONGODB_URI=mongodb://127.0.0.1:PORT
#   scripts/ferretdb.sh stop  [PORT]   stop it and delete its state dir (safe if not running)
#   scripts/ferretdb.sh restart [PORT] stop + start (fresh, empty database)
#   scripts/ferretdb.sh status [PORT]  exit 0 and print the URI if running
#   scripts/ferretdb.sh log   [PORT]   print the server log (it is deleted by stop)
#   scripts/ferretdb.sh path           print the binary path (no build)
#
# Environment:
#   MLTRAIN_CACHE_DIR  cache root (default $HOME/.cache/mltrain)
#   FERRETDB_BIN       use this binary instead of building one
#   GO                 go command (default: go on PATH, else /usr/local/go/bin/go)
#   GO_BUILD_JOBS      go build -p value (default 2)
#   FERRETDB_START_TIMEOUT  seconds to wait for the server (default 60)
#   FERRETDB_LOG_LEVEL      DEBUG|INFO|WARN|ERROR (default WARN)
set -euo pipefail

FERRETDB_VERSION="v1.24.2"
FERRETDB_MODULE="github.com/FerretDB/FerretDB"

CACHE_ROOT="${MLTRAIN_CACHE_DIR:-${HOME:-/tmp}/.cache/mltrain}"
FERRETDB_DIR="${CACHE_ROOT}/ferretdb-${FERRETDB_VERSION}"
FERRETDB_CACHED_BIN="${FERRETDB_DIR}/bin/ferretdb"
STATE_ROOT="${TMPDIR:-/tmp}"
STATE_ROOT="${STATE_ROOT%/}"

log() { printf 'ferretdb.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}" >&2
}

find_go() {
    if [[ -n "${GO:-}" ]]; then
        printf '%s\n' "$GO"
    elif command -v go >/dev/null 2>&1; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        printf '%s\n' /usr/local/go/bin/go
    else
        return 1
    fi
}

binary_path() {
    if [[ -n "${FERRETDB_BIN:-}" ]]; then
        printf '%s\n' "$FERRETDB_BIN"
    else
        printf '%s\n' "$FERRETDB_CACHED_BIN"
    fi
}

binary_ok() {
    [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1
}

cmd_build() {
    local bin
    bin="$(binary_path)"
    if binary_ok "$bin"; then
        printf '%s\n' "$bin"
        return 0
    fi
    if [[ -n "${FERRETDB_BIN:-}" ]]; then
        die "FERRETDB_BIN=${FERRETDB_BIN} is not an executable ferretdb binary"
    fi

    local go
    go="$(find_go)" || die "go not found (set GO=/path/to/go or install Go >= 1.21)"

    mkdir -p "${FERRETDB_DIR}/bin" "${CACHE_ROOT}/go"
    # Serialise concurrent builds (e.g. two CI steps) on the same cache dir.
    local lock="${FERRETDB_DIR}/.build.lock"
    exec 9>"$lock"
    if command -v flock >/dev/null 2>&1; then
        flock 9
        if binary_ok "$bin"; then   # someone else built it while we waited
            printf '%s\n' "$bin"
            return 0
        fi
    fi

    log "building ferretdb ${FERRETDB_VERSION} with $("$go" version) (takes a few minutes the first time)"
    local start=$SECONDS
    # Module and build caches live in the cache dir (kept between runs, so
    # rebuilds are fast) unless the caller already points Go at its own.
    export GOPATH="${FERRETDB_GOPATH:-${CACHE_ROOT}/go/path}"
    export GOMODCACHE="${GOMODCACHE:-${CACHE_ROOT}/go/mod}"
    export GOCACHE="${GOCACHE:-${CACHE_ROOT}/go/build}"
    export GOFLAGS="-mod=mod -buildvcs=false"
    export GOTOOLCHAIN=local
    export CGO_ENABLED=0

    # `go install ...@v1.24.2` builds a binary that panics at startup
    # ("Invalid build/version/version.txt file content"): the generated
    # build/version/version.txt is not part of the module zip. So build from
    # a writable copy of the module source with that file filled in.
    local moddir
    moddir="$("$go" mod download -json "${FERRETDB_MODULE}@${FERRETDB_VERSION}" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')" ||
        die "go mod download ${FERRETDB_MODULE}@${FERRETDB_VERSION} failed"
    [[ -n "$moddir" && -d "$moddir" ]] || die "could not locate module source for ${FERRETDB_MODULE}@${FERRETDB_VERSION}"

    local src="${FERRETDB_DIR}/src"
    [[ -e "$src" ]] && chmod -R u+w "$src" 2>/dev/null
    rm -rf "$src"
    cp -R "$moddir" "$src"
    chmod -R u+w "$src"
    printf '%s\n' "$FERRETDB_VERSION" >"${src}/build/version/version.txt"
    printf '%s\n' "mltrain" >"${src}/build/version/package.txt"

    local tmpbin="${FERRETDB_DIR}/bin/ferretdb.tmp.$$"
    if ! (cd "$src" && "$go" build -p "${GO_BUILD_JOBS:-2}" -trimpath -o "$tmpbin" ./cmd/ferretdb) >&2; then
        rm -f "$tmpbin"
        die "go build of ferretdb ${FERRETDB_VERSION} failed"
    fi
    mv -f "$tmpbin" "$bin"
    rm -rf "$src"
    binary_ok "$bin" || die "built binary ${bin} does not run"
    log "built ${bin} in $((SECONDS - start))s"
    printf '%s\n' "$bin"
}

parse_port() {
    local port="${1:-27017}"
    if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
        die "invalid port: ${port}"
    fi
    printf '%s\n' "$((10#$port))"
}

state_file() { printf '%s/mltrain-ferretdb-%s.env\n' "$STATE_ROOT" "$1"; }

# Reads PID and DIR from the state file into globals; returns 1 if absent.
read_state() {
    local f
    f="$(state_file "$1")"
    PID="" DIR=""
    [[ -f "$f" ]] || return 1
    local line
    while IFS= read -r line; do
        case "$line" in
            PID=*) PID="${line#PID=}" ;;
            DIR=*) DIR="${line#DIR=}" ;;
        esac
    done <"$f"
    return 0
}

pid_is_ferretdb() {
    local pid="$1"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against pid reuse: the process must be a ferretdb binary.
    if [[ -r "/proc/${pid}/comm" ]]; then
        [[ "$(cat "/proc/${pid}/comm" 2>/dev/null)" == ferretdb* ]] || return 1
    fi
    return 0
}

PING_PYTHON=""
find_ping_python() {
    [[ -n "$PING_PYTHON" ]] && return 0
    local repo_py cand
    repo_py="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python"
    for cand in "${PYTHON:-}" "$repo_py" python3; do
        [[ -n "$cand" ]] || continue
        if "$cand" -c 'import pymongo' >/dev/null 2>&1; then
            PING_PYTHON="$cand"
            return 0
        fi
    done
    PING_PYTHON="none"
}

# MongoDB `ping` via pymongo if some python has it, else a plain TCP connect.
ping_server() {
    local port="$1"
    find_ping_python
    if [[ "$PING_PYTHON" != none ]]; then
        "$PING_PYTHON" - "$port" >/dev/null 2>&1 <<'EOF'
import sys
from pymongo import MongoClient
c = MongoClient("127.0.0.1", int(sys.argv[1]), serverSelectionTimeoutMS=1000,
                connectTimeoutMS=1000, directConnection=True)
c.admin.command("ping")
EOF
    else
        (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/${1}") 2>/dev/null
}

cmd_start() {
    local port
    port="$(parse_port "${1:-}")"
    local sf
    sf="$(state_file "$port")"

    if read_state "$port" && pid_is_ferretdb "$PID"; then
        if ping_server "$port"; then
            log "already running on port ${port} (pid ${PID}, dir ${DIR}); data is NOT fresh (use restart)"
            printf 'MONGODB_URI=mongodb://127.0.0.1:%s\n' "$port"
            return 0
        fi
        log "stale ferretdb (pid ${PID}) on port ${port} does not answer; restarting"
        cmd_stop "$port"
    elif [[ -f "$sf" ]]; then
        cmd_stop "$port" # clean up a stale state file / dir
    fi

    if port_in_use "$port"; then
        die "port ${port} on 127.0.0.1 is already in use by another process"
    fi

    local bin
    bin="$(cmd_build)"

    local dir
    dir="$(mktemp -d "${STATE_ROOT}/mltrain-ferretdb-${port}.XXXXXX")"
    mkdir -p "${dir}/data"
    local logfile="${dir}/ferretdb.log"

    # Flags for FerretDB v1.24.2 (see `ferretdb --help`):
    #  --listen-addr       loopback only
    #  --debug-addr=-      disable the debug HTTP handler (default 127.0.0.1:8088,
    #                      which would clash between instances)
    #  --state-dir         state.json (telemetry uuid etc.) goes in the temp dir
    #  --telemetry=disable no network calls
    local level
    level="$(printf '%s' "${FERRETDB_LOG_LEVEL:-WARN}" | tr '[:lower:]' '[:upper:]')"
    local -a args=(
        --handler=sqlite
        --sqlite-url="file:${dir}/data/"
        --listen-addr="127.0.0.1:${port}"
        --listen-unix=
        --debug-addr=-
        --state-dir="${dir}"
        --telemetry=disable
        --log-level="${level}"
        --no-log-uuid
        --mode=normal
    )
    # Detach into its own session (no SIGINT from the caller's terminal); the
    # wrapper shell records its own pid and then execs ferretdb, so the pid
    # file holds the ferretdb pid whether or not setsid forks.
    local pidfile="${dir}/ferretdb.pid"
    local -a detach=()
    if command -v setsid >/dev/null 2>&1; then
        detach=(setsid)
    else
        detach=(nohup)
    fi
    # shellcheck disable=SC2016  # $$ and $@ expand in the inner shell
    "${detach[@]}" bash -c 'echo $$ >"$1"; shift; exec "$@"' ferretdb-launcher \
        "$pidfile" "$bin" "${args[@]}" </dev/null >"$logfile" 2>&1 &
    local i pid=""
    for ((i = 0; i < 50; i++)); do
        [[ -s "$pidfile" ]] && pid="$(cat "$pidfile")" && [[ -n "$pid" ]] && break
        sleep 0.1
    done
    [[ -n "$pid" ]] || { cat "$logfile" >&2 || true; rm -rf "$dir"; die "could not start ${bin}"; }

    printf 'PID=%s\nDIR=%s\nPORT=%s\nMONGODB_URI=mongodb://127.0.0.1:%s\n' \
        "$pid" "$dir" "$port" "$port" >"${sf}.tmp"
    mv -f "${sf}.tmp" "$sf"

    local timeout="${FERRETDB_START_TIMEOUT:-60}" deadline=$((SECONDS + ${FERRETDB_START_TIMEOUT:-60}))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "ferretdb exited during startup; log tail:"
            tail -n 40 "$logfile" >&2 || true
            rm -rf "$dir" "$sf"
            exit 1
        fi
        if ping_server "$port"; then
            log "ferretdb ${FERRETDB_VERSION} running on 127.0.0.1:${port} (pid ${pid}, dir ${dir})"
            printf 'MONGODB_URI=mongodb://127.0.0.1:%s\n' "$port"
            return 0
        fi
        sleep 0.3
    done

    log "ferretdb did not answer ping on 127.0.0.1:${port} within ${timeout}s; log tail (${logfile}):"
    tail -n 40 "$logfile" >&2 || true
    kill_pid "$pid"
    rm -rf "$dir" "$sf"
    exit 1
}

# SIGTERM, wait up to 10s, then SIGKILL.
kill_pid() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "pid ${pid} did not exit after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
    local port
    port="$(parse_port "${1:-}")"
    local sf
    sf="$(state_file "$port")"
    if ! read_state "$port"; then
        log "not running on port ${port} (no ${sf})"
        return 0
    fi
    if pid_is_ferretdb "$PID"; then
        kill_pid "$PID"
        log "stopped ferretdb on port ${port} (pid ${PID})"
    fi
    # Only remove directories this script created.
    if [[ -n "$DIR" && -d "$DIR" && "$(basename "$DIR")" == mltrain-ferretdb-"${port}".* ]]; then
        rm -rf "$DIR"
    fi
    rm -f "$sf"
}

cmd_status() {
    local port
    port="$(parse_port "${1:-}")"
    if read_state "$port" && pid_is_ferretdb "$PID" && ping_server "$port"; then
        printf 'MONGODB_URI=mongodb://127.0.0.1:%s\n' "$port"
        return 0
    fi
    log "not running on port ${port}"
    return 1
}

cmd_log() {
    local port
    port="$(parse_port "${1:-}")"
    read_state "$port" || die "not running on port ${port}"
    cat "${DIR}/ferretdb.log"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        build) cmd_build ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        restart)
            cmd_stop "$@"
            cmd_start "$@"
            ;;
        status) cmd_status "$@" ;;
        path) binary_path ;;
        log) cmd_log "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage
            exit 2
            ;;
    esac
}

main "$@"
