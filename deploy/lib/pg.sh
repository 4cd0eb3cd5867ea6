# A private PostgreSQL cluster in a folder, for the local runner, the tests
# and the benchmarks. Source this file; then:
#
#   pg_cluster_start DIR   initdb on first use, start on a free loopback port,
#                          create the database "retain"; sets PG_DSN and
#                          PG_SERVER_DSN (no database: append dbname=...)
#   pg_cluster_stop DIR    stop it (fast shutdown)
#   pg_settings FILE       the settings of FILE (postgresql.conf syntax, e.g.
#                          deploy/postgres.conf) as server options
#                          ("-c name=value ..."), for PG_EXTRA_OPTS, which
#                          pg_cluster_start adds to its own
#
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# "postgres" user of Debian's package and runs as that user.

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; return 1; }
  echo "$d"
}

pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_free_port() {
  python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}

pg_cluster_start() {
  local dir=$1 bin port extra=${PG_EXTRA_OPTS:-}
  bin=$(pg_bindir) || return 1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    # The server must reach its folder through every parent.
    local p=$dir
    while [ "$p" != "/" ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    pg_as_owner "$bin/initdb" -D "$dir/data" -U retain -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  pg_as_owner mkdir -p "$dir/sock"
  port=$(cat "$dir/port" 2>/dev/null || true)
  if [ -n "$port" ] && pg_as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    : # already running (a previous run left it up): reuse it
  else
    if [ -z "$port" ] || ! pg_port_free "$port"; then
      port=$(pg_free_port)
    fi
    pg_as_owner sh -c "echo $port > '$dir/port'" 2>/dev/null || echo "$port" >"$dir/port"
    pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir/sock -c listen_addresses=127.0.0.1 -c max_connections=200 $extra" start >/dev/null \
      || { tail -n 20 "$dir/server.log" >&2; return 1; }
  fi
  PG_SERVER_DSN="host=$dir/sock port=$port user=retain"
  PG_DSN="$PG_SERVER_DSN dbname=retain"
  PG_PORT=$port
  if ! psql "$PG_SERVER_DSN dbname=postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'retain'" | grep -q 1; then
    psql "$PG_SERVER_DSN dbname=postgres" -qc "CREATE DATABASE retain" >/dev/null
  fi
  export PG_DSN PG_SERVER_DSN PG_PORT
}

pg_settings() {
  local line name value out=
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%%#*}
    case "$line" in *=*) ;; *) continue ;; esac
    name=${line%%=*}
    value=${line#*=}
    name=${name//[[:space:]]/}
    value=${value//[[:space:]]/}
    [ -n "$name" ] && [ -n "$value" ] || continue
    out+="${out:+ }-c $name=$value"
  done <"$1" || return 1
  echo "$out"
}

pg_port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_cluster_stop() {
  local dir=$1 bin
  bin=$(pg_bindir) || return 1
  [ -f "$dir/data/postmaster.pid" ] || return 0
  pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}
