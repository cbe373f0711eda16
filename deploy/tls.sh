#!/usr/bin/env bash
# Makes the TLS material for one site with openssl: a site CA (kept offline after use), a
# certificate for the MQTT broker (mosquitto's TLS listener) and one for the dashboard (served
# through a TLS proxy), each for the names and addresses the Pi is reached by. ECDSA P-256,
# certificates for 825 days, the CA for 10 years. An existing file is never overwritten: run it
# again with new names and only what is missing is made.
#
#   deploy/tls.sh --out DIR --name kombinat.local [--name …] [--ip 192.168.1.10 …]
set -euo pipefail

out=""
names=()
ips=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --name) names+=("$2"); shift 2 ;;
    --ip) ips+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "tls.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "tls.sh: --out DIR is needed" >&2; exit 2; }
[ ${#names[@]} -gt 0 ] || { echo "tls.sh: at least one --name is needed" >&2; exit 2; }
command -v openssl >/dev/null 2>&1 || { echo "tls.sh: openssl is not installed (apt install openssl)" >&2; exit 1; }

mkdir -p "$out"
umask 077

san=""
for n in "${names[@]}"; do san+="DNS:$n,"; done
for i in "${ips[@]}"; do san+="IP:$i,"; done
san=${san%,}

if [ ! -f "$out/ca.key" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca.key"
  openssl req -x509 -new -key "$out/ca.key" -sha256 -days 3650 \
    -subj "/CN=Kombinat site CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/ca.crt"
  echo "made $out/ca.crt (give it to the door nodes and browsers; keep ca.key offline)"
fi

make_cert() {
  local what=$1 usage=$2
  if [ -f "$out/$what.crt" ]; then
    echo "kept $out/$what.crt"
    return
  fi
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/$what.key"
  openssl req -new -key "$out/$what.key" -subj "/CN=${names[0]}" -out "$out/$what.csr"
  local ext="$out/$what.ext"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$usage" "$san" > "$ext"
  openssl x509 -req -in "$out/$what.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days 825 -sha256 -extfile "$ext" -out "$out/$what.crt" 2>/dev/null
  rm -f "$out/$what.csr" "$out/$what.ext"
  openssl verify -CAfile "$out/ca.crt" "$out/$what.crt" >/dev/null
  echo "made $out/$what.crt for $san"
}

make_cert broker serverAuth
make_cert dashboard serverAuth
chmod 0644 "$out"/*.crt
