#!/usr/bin/env bash
# Removes what deploy/install.sh installed: units and binaries. Configuration (/etc/kombinat) and
# data (/var/lib/kombinat*) stay unless --purge is given (take a backup first:
# `kombinat backup FILE`).
#
#   sudo deploy/uninstall.sh [--purge]
#   deploy/uninstall.sh --root DIR [--purge]
set -euo pipefail

root=""
purge=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --purge) purge=1; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
live=0
if [ -z "$root" ]; then
  live=1
  if [ "$(id -u)" -ne 0 ]; then
    echo "uninstall.sh: run as root (sudo), or with --root DIR" >&2
    exit 1
  fi
fi

for u in kombinat kombinat-door-node kombinat-sensor-node; do
  f="$root/etc/systemd/system/$u.service"
  [ -e "$f" ] || continue
  if [ "$live" -eq 1 ]; then
    systemctl disable --now "$u.service" >/dev/null 2>&1 || true
  fi
  rm -f "$f"
  echo "== $u removed"
done
[ "$live" -eq 1 ] && systemctl daemon-reload
for b in kombinat door-node sensor-node; do
  rm -f "$root/usr/local/bin/$b"
done
rm -rf "$root/usr/local/share/doc/kombinat"
if [ "$purge" -eq 1 ]; then
  rm -rf "$root/etc/kombinat" "$root/var/lib/kombinat" "$root/var/lib/kombinat-door" "$root/var/lib/kombinat-sensor"
  if [ "$live" -eq 1 ]; then
    for u in kombinat kombinat-node; do
      id "$u" >/dev/null 2>&1 && userdel "$u"
    done
  fi
  echo "== configuration and data removed"
else
  echo "== configuration (/etc/kombinat) and data (/var/lib/kombinat*) kept"
fi
