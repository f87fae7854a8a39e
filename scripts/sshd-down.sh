#!/usr/bin/env bash
# Stops the server sshd-up.sh started (same COVALENT_SSHD_DIR) and its sessions.
set -euo pipefail
DIR=${COVALENT_SSHD_DIR:-${TMPDIR:-/tmp}/covalent-sshd}
[ -s "$DIR/sshd.pid" ] || { echo "sshd-down: not running"; exit 0; }
pid=$(cat "$DIR/sshd.pid")
pkill -P "$pid" 2>/dev/null || true
kill "$pid" 2>/dev/null || true
rm -f "$DIR/sshd.pid"
echo "sshd-down: stopped $pid"
