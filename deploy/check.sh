#!/usr/bin/env bash
# Checks deploy/: shellcheck on every script, the install script run twice into a scratch root
# (idempotent, configuration kept), the uninstall, and `systemd-analyze verify` on the units where
# systemd-analyze exists. Needs the binaries built (--bin DIR, default target/debug).
#
#   deploy/check.sh [--bin DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin_dir="$here/../target/debug"
[ "${1:-}" = "--bin" ] && bin_dir=$2
bin_dir=$(cd "$bin_dir" && pwd)

echo "== shellcheck"
shellcheck "$here"/*.sh "$here/../scripts/bench" "$here/../scripts/fuzz" "$here/../scripts/test-ahead" "$here/../.ci/run"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "== install into a scratch root, twice"
bash "$here/install.sh" --root "$scratch/root" --bin "$bin_dir" --door-node --sensor-node >/dev/null
echo "# edited by the operator" >> "$scratch/root/etc/kombinat/kombinat.toml"
bash "$here/install.sh" --root "$scratch/root" --bin "$bin_dir" --door-node --sensor-node >/dev/null
grep -q '^# edited by the operator$' "$scratch/root/etc/kombinat/kombinat.toml" \
  || { echo "install.sh overwrote an edited configuration" >&2; exit 1; }
grep -q '^data = "/var/lib/kombinat"$' "$scratch/root/etc/kombinat/kombinat.toml" \
  || { echo "install.sh did not point the data at /var/lib/kombinat" >&2; exit 1; }
"$bin_dir/kombinat" --site "$scratch/root/etc/kombinat/site.toml" --data "$scratch/data" check-config >/dev/null

if command -v systemd-analyze >/dev/null 2>&1; then
  echo "== systemd-analyze verify"
  for u in "$scratch"/root/etc/systemd/system/*.service; do
    sed "s|/usr/local/bin/|$bin_dir/|" "$u" > "$scratch/$(basename "$u")"
  done
  systemd-analyze verify "$scratch"/*.service
else
  echo "== systemd-analyze not here: units not verified"
fi

echo "== TLS material: made, kept on a second run, verified against the site CA"
bash "$here/tls.sh" --out "$scratch/tls" --name kombinat.local --ip 127.0.0.1 >/dev/null
before=$(sha256sum "$scratch/tls/broker.crt")
bash "$here/tls.sh" --out "$scratch/tls" --name kombinat.local >/dev/null
[ "$before" = "$(sha256sum "$scratch/tls/broker.crt")" ] || { echo "tls.sh replaced a certificate" >&2; exit 1; }
for c in broker dashboard; do
  openssl verify -CAfile "$scratch/tls/ca.crt" "$scratch/tls/$c.crt" >/dev/null
done

echo "== the generated mosquitto configuration, started for real as the service starts it"
# mosquitto 2 starts as root and drops to its own user before it reads the password file: the
# generated files must be readable to it (0640 root:mosquitto), or it exits at once.
if [ "$(id -u)" -eq 0 ] && command -v mosquitto >/dev/null 2>&1 && getent passwd mosquitto >/dev/null; then
  mq=$(mktemp -d /tmp/kombinat-check-mq.XXXXXX)
  chmod 755 "$mq"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'a-long-gateway-password-for-the-check\n' > "$scratch/gateway-password"
  "$bin_dir/kombinat" --site "$here/site.example.toml" --data "$scratch/mq-data" \
    devices mosquitto-config --out "$mq" --gateway-password-file "$scratch/gateway-password" \
    --listen "127.0.0.1:$port" >/dev/null
  (cd "$mq" && exec mosquitto -c "$mq/kombinat.conf" >"$scratch/mosquitto.log" 2>&1) &
  mq_pid=$!
  up=""
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=yes; break; fi
    sleep 0.1
  done
  sleep 0.5
  if [ -z "$up" ] || ! kill -0 "$mq_pid" 2>/dev/null; then
    cat "$scratch/mosquitto.log" >&2
    echo "mosquitto did not run on the generated configuration" >&2
    exit 1
  fi
  kill "$mq_pid"; wait "$mq_pid" 2>/dev/null || true
  rm -rf "$mq"
elif [ -n "${CI:-}" ]; then
  echo "CI: the mosquitto check needs root, mosquitto and its user" >&2
  exit 1
else
  echo "   skipped: needs root, mosquitto and the mosquitto user"
fi

echo "== uninstall --purge"
bash "$here/uninstall.sh" --root "$scratch/root" --purge >/dev/null
left=$(find "$scratch/root" -type f | wc -l)
[ "$left" -eq 0 ] || { echo "uninstall.sh left $left files" >&2; exit 1; }
echo "== deploy/ checks passed"
