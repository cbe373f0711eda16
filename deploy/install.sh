#!/usr/bin/env bash
# Installs Kombinat on Raspberry Pi OS (Bookworm, 64-bit) or another systemd Debian. Idempotent:
# run it again after an upgrade; configuration already in /etc/kombinat is never overwritten.
#
#   sudo deploy/install.sh [--bin DIR] [--no-gateway] [--door-node] [--sensor-node] [--no-start]
#   deploy/install.sh --root DIR ...   # into DIR only (no users, no systemctl): for packaging, tests
#
# --bin DIR: where the built binaries are (default: target/release beside this script, e.g. after
# `cargo build --release -p kombinat-gateway` and, for nodes,
# `cargo build --release -p kombinat-firmware --features rpi --bins`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin_dir="$here/../target/release"
root=""
gateway=1
door=0
sensor=0
start=1

while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin_dir=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --no-gateway) gateway=0; shift ;;
    --door-node) door=1; shift ;;
    --sensor-node) sensor=1; shift ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

live=0
if [ -z "$root" ]; then
  live=1
  if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo), or with --root DIR" >&2
    exit 1
  fi
fi

etc="$root/etc/kombinat"
units="$root/etc/systemd/system"
bindest="$root/usr/local/bin"
docdest="$root/usr/local/share/doc/kombinat"

say() { echo "== $*"; }

system_user() {
  # $1 user, $2 home; system account without a login shell
  if [ "$live" -eq 1 ] && ! id "$1" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$2" --no-create-home --shell /usr/sbin/nologin "$1"
    say "user $1 created"
  fi
}

owned() {
  # install a file or directory with a mode, owned by root and a group when live
  local mode=$1 group=$2; shift 2
  if [ "$live" -eq 1 ]; then
    install -o root -g "$group" -m "$mode" "$@"
  else
    install -m "$mode" "$@"
  fi
}

binary() {
  local name=$1
  if [ ! -x "$bin_dir/$name" ]; then
    echo "install.sh: $bin_dir/$name is missing; build it first (see --help)" >&2
    exit 1
  fi
  install -d "$bindest"
  install -m 0755 "$bin_dir/$name" "$bindest/$name"
  say "$bindest/$name"
}

config() {
  # $1 example, $2 installed name, $3 group, then sed expressions for a first install
  local example=$1 name=$2 group=$3; shift 3
  if [ -e "$etc/$name" ]; then
    say "$etc/$name kept"
    return
  fi
  local tmp
  tmp=$(mktemp)
  sed "$@" "$here/$example" > "$tmp"
  owned 0640 "$group" "$tmp" "$etc/$name"
  rm -f "$tmp"
  say "$etc/$name written from $example: edit it"
}

unit() {
  install -d "$units"
  install -m 0644 "$here/systemd/$1" "$units/$1"
  say "$units/$1"
}

group_for_etc=root
if [ "$gateway" -eq 1 ]; then
  system_user kombinat /var/lib/kombinat
  group_for_etc=kombinat
fi
if [ "$door" -eq 1 ] || [ "$sensor" -eq 1 ]; then
  system_user kombinat-node /var/lib/kombinat-door
  if [ "$gateway" -eq 0 ]; then group_for_etc=kombinat-node; fi
fi
if [ "$live" -eq 1 ]; then
  install -d -o root -g "$group_for_etc" -m 0750 "$etc"
else
  install -d -m 0750 "$etc"
fi

if [ "$gateway" -eq 1 ]; then
  binary kombinat
  config site.example.toml site.toml kombinat -e ''
  config kombinat.example.toml kombinat.toml kombinat \
    -e 's|^site = .*|site = "/etc/kombinat/site.toml"|' \
    -e 's|^data = .*|data = "/var/lib/kombinat"|'
  unit kombinat.service
  install -d "$docdest"
  install -m 0644 "$here/../README.md" "$docdest/README.md"
fi
if [ "$door" -eq 1 ]; then
  binary door-node
  config door-node.example.toml door-node.toml kombinat-node -e ''
  unit kombinat-door-node.service
fi
if [ "$sensor" -eq 1 ]; then
  binary sensor-node
  config sensor-node.example.toml sensor-node.toml kombinat-node -e ''
  unit kombinat-sensor-node.service
fi

if [ "$live" -eq 1 ]; then
  systemctl daemon-reload
  for u in kombinat kombinat-door-node kombinat-sensor-node; do
    [ -e "$units/$u.service" ] || continue
    systemctl enable "$u.service" >/dev/null
    if [ "$start" -eq 1 ]; then
      systemctl restart "$u.service"
      say "$u started (journalctl -u $u -f)"
    fi
  done
fi
say "done"
