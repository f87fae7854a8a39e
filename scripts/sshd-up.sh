#!/usr/bin/env bash
# Starts a private OpenSSH server on 127.0.0.1 for the ssh executor's tests and examples.
#
# Installs openssh-server/-client and rsync with apt-get when missing (without letting the package start
# a system sshd), creates a login user with a plain shell, an ed25519 host key and client key,
# a known_hosts file (so strict host-key checking stays on) and an ssh_config with a
# `covalent-test` host entry, then starts sshd detached. Idempotent: a running server from an
# earlier call is reused. Prints `SSHD READY ...` and writes "$DIR/env" (shell variables).
#
#   COVALENT_SSHD_DIR   where keys, config, pid and log go   (default: $TMPDIR/covalent-sshd)
#   COVALENT_SSHD_PORT  port on 127.0.0.1                    (default: 2222)
#   COVALENT_SSHD_USER  login user, created if missing       (default: covalent-ssh)
set -euo pipefail

DIR=${COVALENT_SSHD_DIR:-${TMPDIR:-/tmp}/covalent-sshd}
PORT=${COVALENT_SSHD_PORT:-2222}
USER_NAME=${COVALENT_SSHD_USER:-covalent-ssh}
say() { echo "sshd-up: $*" >&2; }
fail() { echo "sshd-up: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (it installs packages and creates a user)"

if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null \
   || ! command -v rsync >/dev/null; then
  say "installing openssh-server, openssh-client and rsync (file transfers)"
  guard=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Keep the package's postinst from starting a system-wide sshd on port 22.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    guard=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q --no-install-recommends openssh-server openssh-client rsync \
    || { apt-get update -q && apt-get install -y -q --no-install-recommends openssh-server openssh-client rsync; }
  } >"$DIR.apt.log" 2>&1 || { [ $guard = 1 ] && rm -f /usr/sbin/policy-rc.d; tail -20 "$DIR.apt.log" >&2; fail "apt-get failed"; }
  [ $guard = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/sh "$USER_NAME"
  usermod -p '*' "$USER_NAME"      # unlocked for key logins (sshd refuses locked accounts)
fi
HOME_DIR=$(getent passwd "$USER_NAME" | cut -d: -f6)

mkdir -p "$DIR"
chmod 711 "$DIR"
install -d -m 755 /run/sshd
[ -s "$DIR/host_key" ] || ssh-keygen -q -t ed25519 -N '' -C covalent-test-host -f "$DIR/host_key"
[ -s "$DIR/client_key" ] || ssh-keygen -q -t ed25519 -N '' -C covalent-test-client -f "$DIR/client_key"
install -m 600 -o "$USER_NAME" "$DIR/client_key.pub" "$DIR/authorized_keys.$USER_NAME"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/host_key.pub")" > "$DIR/known_hosts"

cat > "$DIR/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/host_key
PidFile $DIR/sshd.child.pid
AuthorizedKeysFile $DIR/authorized_keys.%u
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
X11Forwarding no
# As distributions ship it: scp (OpenSSH 9: over SFTP) and sftp work.
Subsystem sftp internal-sftp
# OpenSSH's own limits, as users' servers have them: MaxSessions 10, MaxStartups 10:30:100.
LogLevel INFO
CONF
cat > "$DIR/ssh_config" <<CONF
Host covalent-test
  HostName 127.0.0.1
  Port $PORT
  User $USER_NAME
  IdentityFile $DIR/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $DIR/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
CONF
cat > "$DIR/env" <<CONF
COVALENT_SSH_HOST=127.0.0.1
COVALENT_SSH_PORT=$PORT
COVALENT_SSH_USER=$USER_NAME
COVALENT_SSH_HOME=$HOME_DIR
COVALENT_SSH_KEY=$DIR/client_key
COVALENT_SSH_KNOWN_HOSTS=$DIR/known_hosts
COVALENT_SSH_CONFIG=$DIR/ssh_config
CONF

running() {
  [ -s "$DIR/sshd.pid" ] || return 1
  local pid; pid=$(cat "$DIR/sshd.pid")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "$DIR/sshd_config"
}
/usr/sbin/sshd -t -f "$DIR/sshd_config" || fail "the sshd configuration does not validate"
if running; then
  kill -HUP "$(cat "$DIR/sshd.pid")"
else
  # Detached, in its own session, with no inherited stdio: a CI step does not wait on it.
  setsid bash -c 'echo $$ > "$0"; exec /usr/sbin/sshd -D -e -f "$1"' "$DIR/sshd.pid" "$DIR/sshd_config" \
    </dev/null >>"$DIR/sshd.log" 2>&1 &
fi
for _ in $(seq 1 100); do
  if ssh -F "$DIR/ssh_config" covalent-test true </dev/null >/dev/null 2>&1; then
    echo "SSHD READY host=127.0.0.1 port=$PORT user=$USER_NAME env=$DIR/env"
    exit 0
  fi
  sleep 0.1
done
tail -5 "$DIR/sshd.log" >&2
fail "no key login to $USER_NAME@127.0.0.1:$PORT"
