#!/usr/bin/env bash
# The outside-producer door, end to end, with a real third-party client:
# the Python examples (examples/python) against a throw-away busd.
#
#   tests/e2e/test_python_client.sh BIN_DIR     (ctest passes build/<dir>/bin)
#
# Needs RETAIN_TEST_PG (a libpq DSN without dbname; ./tests/run exports it),
# protoc and the system python3 with python3-zmq and python3-protobuf
# (deploy/deps --test). It checks that publish.py, started before busd is
# up, times out, sends the same id again and gets OK once busd listens; that
# retainctl tail shows the event once, payload fields included; that the same
# id again is answered DUPLICATE and not logged twice; that with two
# endpoints (busd and a standby) the retry finds busd; that subscribe.py
# prints an event published while it runs; and that busd stops with status 0
# on SIGTERM (an ASan build exits non-zero on a leak).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BIN_DIR" >&2; exit 2; }
bin=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
: "${RETAIN_TEST_PG:?run through ./tests/run, or export RETAIN_TEST_PG (libpq DSN without dbname)}"
# The Debian packages install the bindings for the system interpreter.
py=/usr/bin/python3
[ -x "$py" ] || py=python3

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "-- $*"; }

tmp=$(mktemp -d "${RETAIN_TEST_TMP:-/tmp}/py-client.XXXXXX")
db=retain_py_$$
busd_pid="" sub_pid="" pub_pid=""
cleanup() {
  local rc=$?
  for pid in $sub_pid $pub_pid $busd_pid; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ] && [ -f "$tmp/busd.log" ]; then
    echo "== busd log (last 30 lines)" >&2
    tail -n 30 "$tmp/busd.log" >&2
  fi
  psql "$RETAIN_TEST_PG dbname=postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

"$py" -c 'import zmq, google.protobuf' 2>/dev/null ||
  fail "$py lacks zmq or protobuf: apt-get install python3-zmq python3-protobuf (deploy/deps --test)"
command -v protoc >/dev/null || fail "protoc not found: apt-get install protobuf-compiler"

step "protoc --python_out into a temp dir"
mkdir -p "$tmp/py"
protoc --python_out="$tmp/py" -I "$root/proto" "$root"/proto/retain/v1/*.proto
export PYTHONPATH=$tmp/py

psql "$RETAIN_TEST_PG dbname=postgres" -qc "CREATE DATABASE $db" >/dev/null
export RETAIN_PG_DSN="$RETAIN_TEST_PG dbname=$db"
read -r p_ingress p_pub p_admin p_dead < <("$py" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
ingress=tcp://127.0.0.1:$p_ingress
pub=tcp://127.0.0.1:$p_pub
key=customer-e2e-$$

step "publish.py before busd is up: it must retry with the same id"
"$py" "$root/examples/python/publish.py" --bus "$ingress" --key "$key" --order-id order-e2e-1 \
  --timeout 1 --retries 60 >"$tmp/pub1.out" 2>"$tmp/pub1.err" &
pub_pid=$!
sleep 2.5

step "start busd"
"$bin/retain-busd" --ingress "$ingress" --pub "$pub" --admin "127.0.0.1:$p_admin" \
  >"$tmp/busd.log" 2>&1 &
busd_pid=$!
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$p_admin/readyz" 2>/dev/null && break
  kill -0 $busd_pid 2>/dev/null || fail "busd exited at start"
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$p_admin/readyz" || fail "busd not ready after 30s"

rc=0
wait $pub_pid || rc=$?
pub_pid=""
[ $rc -eq 0 ] || fail "publish.py exited $rc: $(cat "$tmp/pub1.out" "$tmp/pub1.err")"
grep -q "again" "$tmp/pub1.err" || fail "publish.py did not retry: $(cat "$tmp/pub1.err")"
ack=$(cat "$tmp/pub1.out")
[[ $ack =~ ^ack\ id=([0-9a-f-]{36})\ status=OK\ seq=([0-9]+)\ partition=[0-9]+\ pseq=[0-9]+$ ]] ||
  fail "unexpected first ack: $ack"
id=${BASH_REMATCH[1]}
seq=${BASH_REMATCH[2]}
[ "${id:14:1}" = 7 ] || fail "id $id is not a UUIDv7"
echo "   $ack"

step "retainctl tail shows the event once, with its payload"
check_log() {
  "$bin/retainctl" tail --stream order >"$tmp/tail.out" || fail "retainctl tail failed"
  "$py" - "$tmp/tail.out" "$id" "$seq" "$key" <<'PY' || fail "retainctl tail: $(cat "$tmp/tail.out")"
import json, sys
path, id, seq, key = sys.argv[1:]
events = [json.loads(l) for l in open(path) if l.strip()]
mine = [e for e in events if e["id"] == id]
assert len(mine) == 1, f"{len(mine)} events with id {id}"
e = mine[0]
assert e["seq"] == int(seq) and e["type"] == "OrderPlaced" and e["key"] == key, e
assert e["stream"] == "order" and e["producer"] == "shop-example", e
p = e["payload"]
assert p["orderId"] == "order-e2e-1" and p["customerId"] == key, p
assert int(p["total"]["amountMinor"]) == 129900 and p["total"]["currency"] == "UAH", p
assert p["lines"][0]["sku"] == "KETTLE-1" and int(p["lines"][0]["quantity"]) == 1, p
PY
}
check_log

step "the same id again: DUPLICATE, not a second event"
out=$("$py" "$root/examples/python/publish.py" --bus "$ingress" --key "$key" \
  --order-id order-e2e-1 --id "$id" --timeout 10 --retries 1) || fail "publish.py (duplicate): $out"
[[ $out =~ ^ack\ id=$id\ status=DUPLICATE\ seq=$seq\  ]] || fail "unexpected duplicate ack: $out"
echo "   $out"
check_log

step "two endpoints, the first with nobody there (a standby): the retry reaches busd"
out=$("$py" "$root/examples/python/publish.py" --bus "tcp://127.0.0.1:$p_dead,$ingress" \
  --key "$key" --order-id order-e2e-2 --timeout 1 --retries 4 2>"$tmp/pub2.err") ||
  fail "publish.py with two endpoints: $out $(cat "$tmp/pub2.err")"
[[ $out =~ ^ack\ id=[0-9a-f-]{36}\ status=OK\  ]] || fail "unexpected ack: $out"
echo "   $out"

step "subscribe.py prints an event published while it runs"
"$py" "$root/examples/python/subscribe.py" --pub "$pub" --topic order. \
  >"$tmp/sub.out" 2>"$tmp/sub.err" &
sub_pid=$!
# A SUB socket sees only what is published after its subscription reached
# busd, which takes a moment: publish fresh events until one arrives.
seen=""
for n in $(seq 1 10); do
  order=order-e2e-sub-$n
  out=$("$py" "$root/examples/python/publish.py" --bus "$ingress" --key "$key" \
    --order-id "$order" --timeout 10 --retries 1) || fail "publish.py: $out"
  for _ in $(seq 1 20); do
    if grep -q "\"orderId\": \"$order\"" "$tmp/sub.out"; then
      seen=$(grep "\"orderId\": \"$order\"" "$tmp/sub.out")
      break 2
    fi
    kill -0 $sub_pid 2>/dev/null || fail "subscribe.py exited: $(cat "$tmp/sub.err")"
    sleep 0.1
  done
done
[ -n "$seen" ] || fail "subscribe.py printed none of 10 events: $(cat "$tmp/sub.out" "$tmp/sub.err")"
[[ $out =~ seq=([0-9]+)\ partition=([0-9]+)\ pseq=([0-9]+) ]] || fail "unexpected ack: $out"
topic=$(printf 'order.%04d' "${BASH_REMATCH[2]}")
[[ $seen =~ ^$topic\ seq=${BASH_REMATCH[1]}\ pseq=${BASH_REMATCH[3]}\ OrderPlaced\ \{.*\"customerId\":\ \"$key\" ]] ||
  fail "subscribe.py line does not match the ack ($out): $seen"
echo "   $seen"
kill -TERM $sub_pid
wait $sub_pid 2>/dev/null || true
sub_pid=""

step "busd stops cleanly on SIGTERM"
kill -TERM $busd_pid
rc=0
wait $busd_pid || rc=$?
busd_pid=""
[ $rc -eq 0 ] || fail "busd exited with status $rc after SIGTERM"
echo "PASS"
