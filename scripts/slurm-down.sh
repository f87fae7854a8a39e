#!/usr/bin/env bash
# Stops the single-node Slurm cluster that scripts/slurm-up.sh started (same
# COVALENT_SLURM_DIR): cancels every job still queued or running (scancel, so no slurmstepd
# outlives it), then stops exactly the daemons named by its pid files, clients first:
# slurmd, slurmctld, slurmdbd, mariadbd, munged (SIGTERM, SIGKILL after 15 s).
#
#   --purge   also delete the state directory (job state, accounting database, logs) and the
#             /etc/slurm/*.conf files slurm-up.sh wrote.
#
# Idempotent: with nothing running it only says so. Ends with `SLURM DOWN stopped=...`.
set -uo pipefail

DIR=${COVALENT_SLURM_DIR:-${TMPDIR:-/tmp}/covalent-slurm}
TAG="# written by covalent scripts/slurm-up.sh"
purge=0
[ "${1:-}" = "--purge" ] && purge=1
say() { echo "slurm-down: $*" >&2; }

# pid_of NAME: the pid in pid/NAME when that process is alive and is NAME.
pid_of() {
  local file="$DIR/pid/$1" pid cmdline
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  if [[ $cmdline == *"$1"* ]]; then
    echo "$pid"
    return 0
  fi
  rm -f "$file"
  return 1
}

if pid_of slurmctld >/dev/null && timeout 10 scontrol ping >/dev/null 2>&1; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    say "cancelling jobs $jobs"
    # shellcheck disable=SC2086  # one argument per job id
    timeout 10 scancel $jobs 2>/dev/null || true
    for _ in $(seq 200); do
      [ -z "$(timeout 10 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.1
    done
    left=$(timeout 10 squeue -h -o '%i:%T' 2>/dev/null | tr '\n' ' ')
    [ -n "${left// /}" ] && say "warning: still listed: $left"
  fi
fi

stopped=()
for name in slurmd slurmctld slurmdbd mariadbd munged; do
  pid=$(pid_of "$name") || continue
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name ($pid) ignored SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$DIR/pid/$name"
  stopped+=("$name")
done

if [ $purge = 1 ]; then
  rm -rf "$DIR"
  for f in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf; do
    [ -e "$f" ] && head -1 "$f" | grep -qF "$TAG" && rm -f "$f"
  done
fi
echo "SLURM DOWN stopped=${stopped[*]:-none} purge=$purge"
