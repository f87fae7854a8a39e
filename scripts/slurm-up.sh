#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine for the slurm executor's tests, examples
# and benchmark: node `localhost`, partition `debug`, every CPU of the machine.
#
# Installs the Debian packages when missing (without letting their postinst start any daemon),
# writes /etc/slurm/slurm.conf (so sbatch/squeue/sacct/scancel work in every shell, SSH
# sessions included), then starts munged, optionally MariaDB + slurmdbd (so `sacct` works),
# slurmctld and slurmd, each detached (own session, no inherited stdio) with a pid file.
# Idempotent: daemons that are already up (per their pid files) are kept, an unchanged config
# is not rewritten. Needs root and no systemd. Stop it with scripts/slurm-down.sh.
#
# Ends with one line on stdout:
#   SLURM READY node=localhost partition=debug cpus=N accounting=yes|no dir=DIR secs=N
#
#   COVALENT_SLURM_DIR         state, logs and pid files     (default: $TMPDIR/covalent-slurm)
#   COVALENT_SLURM_ACCOUNTING  1: slurmdbd + a private MariaDB so sacct works; 0: none (default 1)
#   COVALENT_SLURM_CPUS        CPUs of the node              (default: nproc)
#   COVALENT_SLURM_FORCE       1: replace an /etc/slurm/slurm.conf not written by this script
set -euo pipefail

DIR=${COVALENT_SLURM_DIR:-${TMPDIR:-/tmp}/covalent-slurm}
ACCOUNTING=${COVALENT_SLURM_ACCOUNTING:-1}
CPUS=${COVALENT_SLURM_CPUS:-$(nproc)}
TAG="# written by covalent scripts/slurm-up.sh"
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
started_at=$(date +%s)

say() { echo "slurm-up: $*" >&2; }
fail() { echo "slurm-up: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (it installs packages and starts daemons)"

# --- packages -------------------------------------------------------------------------------
missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have slurmctld || missing+=(slurmctld)
have slurmd || missing+=(slurmd)
have sbatch || missing+=(slurm-client)
have munged || missing+=(munge)
if [ "$ACCOUNTING" = 1 ]; then
  have slurmdbd || missing+=(slurmdbd)
  have mariadbd || missing+=(mariadb-server)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  mkdir -p "$DIR"
  apt_log="$DIR/apt.log"
  # No systemd here: without a policy-rc.d the packages' postinst would start init.d services.
  guard=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    guard=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  ok=1
  apt-get install -y -q --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1 \
    || { apt-get update -q >>"$apt_log" 2>&1 \
         && apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$apt_log" 2>&1; } \
    || ok=0
  [ $guard = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $ok = 1 ] || { tail -20 "$apt_log" >&2; fail "apt-get install failed (log: $apt_log)"; }
fi

mkdir -p "$DIR"/{pid,log,ctld,slurmd}
chmod 755 "$DIR"

# --- daemon helpers ---------------------------------------------------------------------------
# running NAME: the process named by pid/NAME is alive and its command line mentions NAME.
running() {
  local file="$DIR/pid/$1" pid cmdline
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  if [[ $cmdline == *"$1"* ]]; then
    return 0
  fi
  rm -f "$file"
  return 1
}
# launch NAME CMD...: CMD in its own session, stdio detached, its pid in pid/NAME. The inner
# shell records its own pid and execs, so the file names the daemon even if setsid forks.
launch() {
  local name=$1
  shift
  # shellcheck disable=SC2016  # $$ and $@ are the inner shell's
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$DIR/pid/$name" "$@" \
    </dev/null >>"$DIR/log/$name.out" 2>&1 &
  for _ in $(seq 50); do
    [ -s "$DIR/pid/$name" ] && return 0
    sleep 0.05
  done
  fail "$name did not start (see $DIR/log/$name.out)"
}
# until_ok SECONDS WHAT CMD...: retry CMD every 0.1 s.
until_ok() {
  local secs=$1 what=$2
  shift 2
  for _ in $(seq $((secs * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "timed out after ${secs}s waiting for $what (logs: $DIR/log)"
}

# --- munge ------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null; then
    mungekey --create --force --keyfile=/etc/munge/munge.key
  else
    head -c 1024 /dev/urandom >/etc/munge/munge.key
  fi
fi
chown munge:munge /etc/munge/munge.key
chmod 600 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
munge_works() { munge -n </dev/null | unmunge >/dev/null; }
if running munged; then
  :
elif munge_works 2>/dev/null; then
  say "using a munged that this script did not start"
else
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  # As the munge user, like the package intends; setpriv execs, so the pid stays right.
  launch munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
  until_ok 10 munged munge_works
fi

# --- slurm.conf -------------------------------------------------------------------------------
if [ -e "$CONF" ] && ! head -1 "$CONF" | grep -qF "$TAG" && [ "${COVALENT_SLURM_FORCE:-0}" != 1 ]; then
  fail "$CONF exists and was not written by this script (COVALENT_SLURM_FORCE=1 replaces it)"
fi
if [ "$ACCOUNTING" = 1 ]; then
  accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux"
else
  accounting="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
mkdir -p /etc/slurm
# Latency: the scheduler runs at every event (sched_min_interval=0, batch_sched_delay=0) and
# backfills every second; KillWait=5 makes cancel and time-outs end quickly; finished jobs
# stay visible to squeue/scontrol for 5 minutes (MinJobAge) so pollers see their end state.
# Test jobs mostly sleep or wait: up to 4 share a core (OverSubscribe=FORCE:4), so a slow
# test does not hold back the others on a small machine.
cat >"$CONF.tmp" <<EOF
$TAG (state in $DIR)
ClusterName=covalent
SlurmctldHost=localhost
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmctldPidFile=$DIR/ctld/slurmctld.pid
SlurmdPidFile=$DIR/slurmd/slurmd.pid
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_min_interval=0,batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
$accounting
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
KillWait=5
MinJobAge=300
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
config_changed=0
if cmp -s "$CONF.tmp" "$CONF"; then
  rm -f "$CONF.tmp"
else
  mv "$CONF.tmp" "$CONF"
  config_changed=1
fi

# --- accounting (optional) --------------------------------------------------------------------
if [ "$ACCOUNTING" = 1 ]; then
  db="$DIR/mariadb"
  sock="$DIR/mariadb-run/mysqld.sock"
  install -d -o mysql -g mysql -m 755 "$DIR/mariadb-run"
  if [ ! -d "$db/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$db" --auth-root-authentication-method=socket \
      --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed"
  fi
  db_works() { mariadb --no-defaults --socket="$sock" -u root -e 'select 1'; }
  if ! running mariadbd; then
    launch mariadbd /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$db" \
      --socket="$sock" --skip-networking --pid-file="$DIR/mariadb-run/mariadbd.pid" \
      --log-error="$DIR/log/mariadb.err" --innodb-buffer-pool-size=64M
    until_ok 30 mariadbd db_works
  fi
  # slurmdbd refuses a config readable by others; MariaDB root logs in through its socket.
  umask_was=$(umask)
  umask 077
  cat >"$DBD_CONF.tmp" <<EOF
$TAG
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$DIR/ctld/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=covalent_slurm_acct
EOF
  umask "$umask_was"
  mv "$DBD_CONF.tmp" "$DBD_CONF"
  if ! running slurmdbd; then
    # slurmdbd.conf has no socket setting: the MariaDB client library reads MYSQL_UNIX_PORT.
    launch slurmdbd env MYSQL_UNIX_PORT="$sock" slurmdbd -D
    until_ok 30 slurmdbd sacctmgr -n show cluster
  fi
fi

# --- slurmctld and slurmd ---------------------------------------------------------------------
if running slurmctld && [ $config_changed = 1 ]; then
  # A changed accounting type needs a restart (slurm-down.sh, then this script).
  scontrol reconfigure >/dev/null 2>&1 || say "scontrol reconfigure failed; restart with slurm-down.sh"
fi
running slurmctld || launch slurmctld slurmctld -D -i
until_ok 30 slurmctld scontrol ping
# The host name is not `localhost`: tell slurmd which node it is.
running slurmd || launch slurmd slurmd -D -N localhost
node_ready() { sinfo -h -n localhost -o %t | grep -Eq '^(idle|mix|alloc|comp)'; }
if ! (for _ in $(seq 100); do node_ready && exit 0; sleep 0.1; done; exit 1); then
  # A node left down or drained by an unclean stop comes back with RESUME.
  scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
  until_ok 20 "node localhost to be idle" node_ready
fi

acct_word=no
[ "$ACCOUNTING" = 1 ] && acct_word=yes
echo "SLURM READY node=localhost partition=debug cpus=$CPUS accounting=$acct_word dir=$DIR secs=$(($(date +%s) - started_at))"
