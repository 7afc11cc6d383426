#!/usr/bin/env bash
# pg-cluster.sh PORT DATADIR - a throwaway PostgreSQL cluster on 127.0.0.1:PORT.
#
# initdb runs only when DATADIR/PG_VERSION is missing, so running this again after a crash
# reuses the data directory and PostgreSQL does its own crash recovery. The last step execs
# the postmaster (through setpriv when run as root), so this script's PID IS the postmaster:
# SIGINT = fast shutdown, SIGQUIT = immediate, SIGTERM = smart (waits for clients to leave).
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 PORT DATADIR" >&2
    exit 2
fi
port=$1
datadir=$2
case "$port" in
    '' | *[!0-9]*) echo "pg-cluster.sh: PORT must be a number, got '$port'" >&2; exit 2 ;;
esac

# The bindir: pg_config's when it holds the server (Debian's libpq-dev pg_config may point at a
# bindir without one), else the highest /usr/lib/postgresql/*/bin.
bindir=""
if command -v pg_config >/dev/null 2>&1; then
    candidate=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$candidate" ] && [ -x "$candidate/postgres" ] && [ -x "$candidate/initdb" ]; then
        bindir=$candidate
    fi
fi
if [ -z "$bindir" ]; then
    candidate=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$candidate" ] && [ -x "$candidate/postgres" ] && [ -x "$candidate/initdb" ]; then
        bindir=$candidate
    fi
fi
if [ -z "$bindir" ]; then
    echo "pg-cluster.sh: PostgreSQL server not found (no pg_config --bindir with postgres, no /usr/lib/postgresql/*/bin); install it, e.g. apt-get install postgresql" >&2
    exit 2
fi

mkdir -p "$datadir"
datadir=$(cd "$datadir" && pwd -P)
cd /   # the server user may not be allowed into the caller's working directory

# PostgreSQL refuses to run as root: as root, run as 'postgres' (or 'nobody') through setpriv,
# which changes user and execs without forking.
run=()
if [ "$(id -u)" -eq 0 ]; then
    if id -u postgres >/dev/null 2>&1; then
        user=postgres
    else
        user=nobody
    fi
    uid=$(id -u "$user")
    gid=$(id -g "$user")
    chown "$uid:$gid" "$datadir"
    run=(setpriv "--reuid=$uid" "--regid=$gid" --init-groups)
    if ! "${run[@]}" test -w "$datadir" -a -x "$datadir"; then
        echo "pg-cluster.sh: user '$user' cannot reach $datadir; every parent directory must be searchable by it (e.g. chmod o+x on a 0700 temp dir)" >&2
        exit 2
    fi
fi

if [ ! -f "$datadir/PG_VERSION" ]; then
    "${run[@]}" "$bindir/initdb" -D "$datadir" -U shop --auth=trust -E UTF8 --locale=C \
        --no-sync >/dev/null
fi

# A postmaster.pid left by a SIGKILL: PostgreSQL ignores it when that PID is gone, but refuses
# to start while the PID still exists - a killed postmaster that is still exiting, a zombie
# its parent has not reaped yet, or a reused PID. Wait (bounded) while it is a live postgres
# working in this data directory; otherwise remove the stale file. A running server is never
# touched: then the file stays and PostgreSQL says which PID holds the directory.
live_postgres_here() {
    local pid=$1 state cwd
    state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)
    case "$state" in '' | Z | X) return 1 ;; esac
    [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = postgres ] || return 1
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || echo unknown)
    [ "$cwd" = "$datadir" ] || [ "$cwd" = unknown ]
}
pidfile="$datadir/postmaster.pid"
if [ -f "$pidfile" ]; then
    oldpid=$(head -n 1 "$pidfile" 2>/dev/null || true)
    case "$oldpid" in
        '' | *[!0-9]*) rm -f "$pidfile" ;;
        *)
            for _ in $(seq 50); do
                live_postgres_here "$oldpid" || break
                sleep 0.1
            done
            if ! live_postgres_here "$oldpid"; then
                rm -f "$pidfile" "$datadir/.s.PGSQL.$port.lock"
            fi
            ;;
    esac
fi

# The Unix socket goes into DATADIR; a path too long for a socket (about 107 bytes) would stop
# the server, so then there is no Unix socket (everything here uses TCP on 127.0.0.1 anyway).
sockdir=$datadir
if [ "${#datadir}" -gt 90 ]; then
    sockdir=""
fi

exec "${run[@]}" "$bindir/postgres" -D "$datadir" -p "$port" -k "$sockdir" \
    -c listen_addresses=127.0.0.1 \
    -c max_connections=200 \
    -c shared_buffers=64MB \
    -c fsync=on \
    -c synchronous_commit=on \
    -c full_page_writes=on \
    -c logging_collector=off \
    -c log_destination=stderr \
    -c 'log_line_prefix=%m [%p] ' \
    -c huge_pages=off \
    -c ssl=off
