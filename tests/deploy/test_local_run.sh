#!/usr/bin/env bash
# deploy/local/run as a user meets it, on a copy of the runner in a folder
# of its own (its .retain/ there, so a developer's own run is untouched):
#
# - a port another program holds stops the run within seconds, before any
#   package is looked at or anything is built, naming the port and the
#   variable to set; for every address of every daemon in its list;
# - while retain runs, the runner says when a daemon stops being ready and
#   when it is ready again: ingestd, with PostgreSQL taken away and back.
#
#   tests/deploy/test_local_run.sh BINDIR    (BINDIR: a build's bin/, with
#                                             retainctl and the daemons)
# Run from the checkout's root (ctest does).
set -uo pipefail

bindir=${1:?usage: test_local_run.sh BINDIR}
src=$(pwd)
failures=0
ok() { echo "ok - $1"; }
fail() {
  echo "not ok - $1"
  failures=$((failures + 1))
}

base=${RETAIN_TEST_TMP:-/tmp}
tmp=$(mktemp -d "$base/local-run.XXXXXX")
root=$tmp/checkout
listener="" runner=""
. "$src/deploy/lib/pg.sh"
cleanup() {
  if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then
    kill -TERM "$runner" 2>/dev/null
    for _ in $(seq 1 300); do kill -0 "$runner" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$runner" 2>/dev/null
  fi
  [ -z "$listener" ] || kill "$listener" 2>/dev/null
  pg_cluster_stop "$root/.retain/pg" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# The runner and what it reads, nothing else: no CMakeLists.txt, so a
# build would fail, and a deploy/deps that leaves a mark when it runs.
mkdir -p "$root/deploy/local" "$root/deploy/lib"
cp "$src/deploy/local/run" "$root/deploy/local/run"
cp "$src/deploy/lib/pg.sh" "$root/deploy/lib/pg.sh"
cp "$src/deploy/postgres.conf" "$root/deploy/postgres.conf"
printf '#!/bin/sh\ntouch "%s/deps-ran"\n' "$root" >"$root/deploy/deps"
chmod +x "$root/deploy/local/run" "$root/deploy/deps"

# Every address the runner's daemons list declares: VARIABLE=default.
mapfile -t addresses < <(sed -n '/^daemons=(/,/^)/p' "$src/deploy/local/run" |
  grep -o 'RETAIN_[A-Z0-9_]*=[^ "]*')
[ ${#addresses[@]} -ge 2 ] || fail "no addresses found in the daemons list of deploy/local/run"

# Free loopback ports, held together while chosen so they differ.
free_ports() {
  python3 -c '
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))' "$1"
}

# Exports every daemon address on a free port, in its default's form
# (tcp://host:port or host:port), so no test depends on 7701 being free.
move_all() {
  local ports i var value
  read -r -a ports <<<"$(free_ports ${#addresses[@]})"
  for i in "${!addresses[@]}"; do
    var=${addresses[i]%%=*} value=${addresses[i]#*=}
    export "$var=${value%:*}:${ports[i]}"
  done
}

# A program holding a port: another checkout's daemon, for the runner.
python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(1024)  # every check connects once and is never accepted: room for them all
print(s.getsockname()[1], flush=True)
time.sleep(600)' >"$tmp/listener.port" &
listener=$!
for _ in $(seq 1 50); do [ -s "$tmp/listener.port" ] && break; sleep 0.1; done
taken=$(cat "$tmp/listener.port")
[ -n "$taken" ] || { fail "the listener did not start"; exit 1; }

for kv in "${addresses[@]}"; do
  var=${kv%%=*} value=${kv#*=}
  move_all
  export "$var=${value%:*}:$taken"
  rm -f "$root/deps-ran"
  start=$SECONDS
  timeout 30 "$root/deploy/local/run" >"$tmp/out" 2>"$tmp/err"
  rc=$? took=$((SECONDS - start))
  if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then
    fail "$var on a taken port: the runner exited $rc (124: still running after 30s)"
  elif [ $took -gt 15 ]; then
    fail "$var on a taken port: the runner took ${took}s to say so"
  elif ! grep -q "port $taken" "$tmp/err" || ! grep -q "$var" "$tmp/err"; then
    fail "$var on a taken port: the message does not name port $taken and $var: $(cat "$tmp/err")"
  elif [ -e "$root/deps-ran" ] || [ -e "$root/.retain/build.log" ] || grep -q '== build' "$tmp/out"; then
    fail "$var on a taken port: the runner went on to packages or the build first"
  else
    ok "$var on a taken port: exit $rc in ${took}s, before packages and the build: $(cat "$tmp/err")"
  fi
done
kill "$listener" 2>/dev/null
wait "$listener" 2>/dev/null
listener=""

# Readiness while running, on the binaries given (no build).
for b in retainctl retain-busd retain-ingestd; do
  [ -x "$bindir/$b" ] || { fail "$bindir/$b is not built"; exit 1; }
done
move_all
export RETAIN_LOCAL_BINDIR=$bindir RETAIN_LOCAL_STOP_TIMEOUT=20
"$root/deploy/local/run" >"$tmp/run.out" 2>&1 &
runner=$!

# Waits up to $2 seconds for a line matching $1 in the runner's output.
wait_line() {
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    grep -q -- "$1" "$tmp/run.out" && return 0
    kill -0 "$runner" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

if ! wait_line '^== retain is running' 180; then
  fail "retain did not start under the runner: $(tail -n 30 "$tmp/run.out")"
  exit 1
fi
ok "retain runs under the runner on the given binaries"

pg_cluster_stop "$root/.retain/pg"
if wait_line '^== ingest not ready: PostgreSQL unreachable' 60; then
  ok "PostgreSQL away: $(grep '^== ingest not ready' "$tmp/run.out" | head -n 1)"
else
  fail "PostgreSQL away: the runner did not say ingest is not ready: $(tail -n 30 "$tmp/run.out")"
fi

pg_cluster_start "$root/.retain/pg" >/dev/null
if wait_line '^== ingest ready again' 60; then
  ok "PostgreSQL back: the runner says ingest is ready again"
else
  fail "PostgreSQL back: no \"== ingest ready again\": $(tail -n 30 "$tmp/run.out")"
fi

kill -TERM "$runner"
rc=0
for _ in $(seq 1 300); do kill -0 "$runner" 2>/dev/null || break; sleep 0.2; done
wait "$runner" || rc=$?
runner=""
if [ $rc -eq 0 ] && grep -q '^== PostgreSQL stopped' "$tmp/run.out"; then
  ok "SIGTERM: every daemon stopped cleanly, then PostgreSQL"
else
  fail "SIGTERM: exit $rc: $(tail -n 30 "$tmp/run.out")"
fi
# What the runner said, for the log.
grep '^== ' "$tmp/run.out" | sed 's/^/# /'
# Daemons that stop are not readiness news.
if sed -n '/^== SIGTERM/,$p' "$tmp/run.out" | grep -q 'not ready'; then
  fail "the runner reported readiness while stopping: $(sed -n '/^== SIGTERM/,$p' "$tmp/run.out")"
fi

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all passed"
