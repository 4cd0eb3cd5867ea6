#!/usr/bin/env bash
# Checks the deployment files without a container engine: docker-compose.yml
# renders under Debian's docker-compose (v1.29) and refuses to render without
# the CURVE and password settings, and its postgres service runs
# deploy/postgres.conf's settings; deploy/Dockerfile has a build stage and a
# runtime stage and runs as a non-root user; deploy/local/run is executable
# and parses. Run from the checkout's root (ctest does).
set -uo pipefail

failures=0
ok() { echo "ok - $1"; }
fail() {
  echo "not ok - $1"
  failures=$((failures + 1))
}

required=(RETAIN_PG_PASSWORD=dummy-password
  RETAIN_BUSD_CURVE_SECRET=0000000000000000000000000000000000000000
  RETAIN_BUSD_CURVE_CLIENTS_FILE=/nonexistent/curve-clients
  RETAIN_BUS_CURVE_SERVER_KEY=1111111111111111111111111111111111111111
  RETAIN_INGEST_CURVE_CLIENT_PUBLIC=8888888888888888888888888888888888888888
  RETAIN_INGEST_CURVE_CLIENT_SECRET=9999999999999999999999999999999999999999
  RETAIN_ROUTER_CURVE_CLIENT_PUBLIC=2222222222222222222222222222222222222222
  RETAIN_ROUTER_CURVE_CLIENT_SECRET=3333333333333333333333333333333333333333
  RETAIN_NOTIFY_CURVE_CLIENT_PUBLIC=4444444444444444444444444444444444444444
  RETAIN_NOTIFY_CURVE_CLIENT_SECRET=5555555555555555555555555555555555555555
  RETAIN_TRACKER_CURVE_CLIENT_PUBLIC=6666666666666666666666666666666666666666
  RETAIN_TRACKER_CURVE_CLIENT_SECRET=7777777777777777777777777777777777777777)

if out=$(env "${required[@]}" docker-compose -f docker-compose.yml config -q 2>&1); then
  ok "docker-compose config accepts docker-compose.yml"
else
  fail "docker-compose config rejects docker-compose.yml: $out"
fi

# Every required variable is really required: production never runs
# without CURVE or with an empty password by accident.
for i in "${!required[@]}"; do
  var=${required[i]%%=*}
  others=("${required[@]:0:i}" "${required[@]:i+1}")
  if out=$(env -u "$var" "${others[@]}" docker-compose -f docker-compose.yml config -q 2>&1); then
    fail "docker-compose config renders without $var"
  elif grep -q "$var" <<<"$out"; then
    ok "docker-compose config names $var when it is missing"
  else
    fail "docker-compose config fails without $var but does not name it: $out"
  fi
done

# What the rendered file promises: busd with CURVE and a /readyz
# healthcheck, started only after the migrations succeeded; no service
# sets a variable the daemons no longer read (they would refuse to start).
rendered=$(env "${required[@]}" docker-compose -f docker-compose.yml config 2>/dev/null)
if out=$(/usr/bin/python3 - "$rendered" <<'PY' 2>&1
import sys, yaml
c = yaml.safe_load(sys.argv[1])["services"]
problems = []
for name in ("busd", "busd-standby"):
    s = c.get(name)
    if not s:
        problems.append(f"no service {name}")
        continue
    env = s.get("environment", {})
    for var in ("RETAIN_PG_DSN", "RETAIN_BUSD_CURVE_SECRET", "RETAIN_BUSD_CURVE_CLIENTS"):
        if not env.get(var):
            problems.append(f"{name}: {var} is not set")
    if env.get("RETAIN_BUS_INGRESS") != "tcp://0.0.0.0:7701":
        problems.append(f"{name}: ingress is not tcp://0.0.0.0:7701")
retired = ("RETAIN_BUS_CURVE_SECRET_KEY", "RETAIN_BUS_CURVE_PUBLIC_KEY", "RETAIN_BUS_CURVE_CLIENTS")
for name, s in c.items():
    for var in retired:
        if var in (s.get("environment") or {}):
            problems.append(f"{name}: sets {var}, which retain no longer reads")
if "/readyz" not in " ".join(c.get("busd", {}).get("healthcheck", {}).get("test", [])):
    problems.append("busd: the healthcheck does not ask /readyz")
if c.get("busd", {}).get("depends_on", {}).get("migrate", {}).get("condition") != "service_completed_successfully":
    problems.append("busd does not wait for migrate to complete")
if c.get("migrate", {}).get("command") != ["retainctl", "migrate"]:
    problems.append("migrate does not run retainctl migrate")
for svc in ("routerd", "notifyd", "trackerd"):
    r = c.get(svc)
    if not r:
        problems.append(f"no service {svc}")
        continue
    renv = r.get("environment", {})
    for var in ("RETAIN_PG_DSN", "RETAIN_BUS_PUB", "RETAIN_BUS_CURVE_SERVER_KEY",
                "RETAIN_BUS_CURVE_CLIENT_PUBLIC", "RETAIN_BUS_CURVE_CLIENT_SECRET"):
        if not renv.get(var):
            problems.append(f"{svc}: {var} is not set")
    if "container_name" in r or r.get("ports"):
        problems.append(f"{svc} cannot scale: it has a container name or host ports")
    if "/readyz" not in " ".join(r.get("healthcheck", {}).get("test", [])):
        problems.append(f"{svc}: the healthcheck does not ask /readyz")
    if r.get("depends_on", {}).get("migrate", {}).get("condition") != "service_completed_successfully":
        problems.append(f"{svc} does not wait for migrate to complete")
if not c.get("postgres", {}).get("healthcheck"):
    problems.append("postgres has no healthcheck")
print("; ".join(problems))
sys.exit(1 if problems else 0)
PY
); then
  ok "busd and busd-standby use CURVE, busd is checked on /readyz and waits for migrate, routerd, notifyd and trackerd are scalable CURVE clients, no retired variable is set"
else
  fail "rendered compose file: $out"
fi

# The postgres service runs deploy/postgres.conf's settings, no more and
# no fewer: the file is the one list, the command its copy.
want=$(. deploy/lib/pg.sh && pg_settings deploy/postgres.conf)
have=$(/usr/bin/python3 -c '
import sys, yaml
cmd = yaml.safe_load(sys.argv[1])["services"]["postgres"].get("command") or []
print(" ".join(cmd[1:]) if cmd[:1] == ["postgres"] else "(not postgres: %s)" % cmd)
' "$rendered" 2>&1)
if [ -n "$want" ] && [ "$want" = "$have" ]; then
  ok "the postgres service runs deploy/postgres.conf's settings"
else
  fail "the postgres service's command is '$have', deploy/postgres.conf says '$want'"
fi

froms=$(grep -ciE '^[[:space:]]*FROM[[:space:]]' deploy/Dockerfile)
if [ "$froms" -eq 2 ]; then
  ok "deploy/Dockerfile has two stages"
else
  fail "deploy/Dockerfile has $froms FROM lines, expected 2 (build and runtime)"
fi
if grep -qE '^[[:space:]]*FROM[[:space:]]+debian:bookworm-slim([[:space:]]|$)' deploy/Dockerfile &&
  [ "$(grep -iE '^[[:space:]]*FROM[[:space:]]' deploy/Dockerfile | tail -n 1 | awk '{print $2}')" = debian:bookworm-slim ]; then
  ok "the runtime stage is debian:bookworm-slim"
else
  fail "the last stage of deploy/Dockerfile is not debian:bookworm-slim"
fi
# The USER in force is the last one after the last FROM.
user=$(awk 'toupper($1) == "FROM" { u = "" } toupper($1) == "USER" { u = $2 } END { print u }' deploy/Dockerfile)
case "${user%%:*}" in
  "") fail "the runtime stage of deploy/Dockerfile has no USER (it would run as root)" ;;
  root | 0) fail "the runtime stage of deploy/Dockerfile runs as $user" ;;
  *) ok "the runtime stage runs as $user" ;;
esac

if [ -x deploy/local/run ]; then
  ok "deploy/local/run is executable"
else
  fail "deploy/local/run is not executable"
fi
if out=$(bash -n deploy/local/run 2>&1); then
  ok "deploy/local/run parses (bash -n)"
else
  fail "deploy/local/run does not parse: $out"
fi

[ $failures -eq 0 ] || echo "$failures check(s) failed"
exit $((failures > 0))
