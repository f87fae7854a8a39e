#!/usr/bin/env bash
# Makes podman usable here and builds the container executor's test image offline.
#
# 1. Installs Debian's podman, runc and catatonit when missing (no registry is reachable;
#    crun, the default runtime, does not work on hosts with hybrid cgroups: use `--runtime runc
#    --cgroup-manager cgroupfs`; catatonit is the init of `podman run --init`).
# 2. Builds the image with `podman import` from a tar of this host's files: bash, sh, a few
#    coreutils, the shared libraries they and Rust binaries need (glibc, libgcc_s, libm), the
#    libraries of any binaries named as arguments, /etc/passwd and /etc/group for root, and
#    /tmp. Nothing is pulled. A task binary is bind-mounted into it at run time.
# 3. Runs `/bin/true` in it. If the runtime may not set podman's default rlimits (a sandbox
#    without CAP_SYS_RESOURCE: "error setting rlimit type 7/6"), it writes the drop-in
#    /etc/containers/containers.conf.d/covalent.conf with `default_ulimits = []`, and retries.
#
# Idempotent: an image built from the same files is kept (a content hash is stored as the
# image label `covalent.hash`). Ends with one line on stdout:
#   PODMAN IMAGE READY image=localhost/NAME:latest runtime=runc cgroup_manager=cgroupfs secs=N
#
#   podman-image.sh [BINARY...]   also include the shared libraries these binaries need
#   COVALENT_IMAGE                image name (default: covalent-worker)
set -euo pipefail

NAME=${COVALENT_IMAGE:-covalent-worker}
IMAGE="localhost/$NAME:latest"
DROPIN=/etc/containers/containers.conf.d/covalent.conf
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
started_at=$(date +%s)
say() { echo "podman-image: $*" >&2; }
fail() { echo "podman-image: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (it installs packages and runs rootful podman)"

# --- packages -------------------------------------------------------------------------------
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/libexec/podman/catatonit ] || command -v catatonit >/dev/null || missing+=(catatonit)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt_log="${TMPDIR:-/tmp}/covalent-podman-apt.log"
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

# --- the file list ----------------------------------------------------------------------------
programs=(/bin/bash /bin/sh /usr/bin/env /bin/cat /bin/echo /bin/ls /bin/mkdir /bin/rm
  /bin/sleep /bin/true /bin/false /usr/bin/id)
files=()
add_with_libs() { # a file and every shared library ldd lists for it
  files+=("$1")
  local lib
  for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do files+=("$lib"); done
}
for p in "${programs[@]}"; do
  [ -e "$p" ] && add_with_libs "$p"
done
for b in "$@"; do
  [ -e "$b" ] || fail "no such binary: $b"
  for lib in $(ldd "$b" 2>/dev/null | grep -o '/[^ ]*' || true); do files+=("$lib"); done
done
# What Rust binaries link against, wherever this distribution keeps it.
for soname in libgcc_s.so.1 libm.so.6 libc.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1; do
  # (awk reads to the end: an early exit would SIGPIPE ldconfig and fail the pipeline)
  path=$(ldconfig -p | awk -v s="$soname" '!found && $1 == s && /x86-64|64bit|AArch64/ { print $NF; found = 1 }')
  [ -n "$path" ] && files+=("$path")
done
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)

hash=$( { printf '%s\n' "${files[@]}"; cat "${files[@]}"; echo "passwd+group+tmp v1"; } | sha256sum | cut -c1-16)
current=$(podman image inspect --format '{{ index .Config.Labels "covalent.hash" }}' "$IMAGE" 2>/dev/null || true)

if [ "$current" != "$hash" ]; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  for f in "${files[@]}"; do
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"          # the file itself, not a symlink into the host
  done
  # Merged-/usr hosts: /lib, /lib64 and /bin are symlinks there; the copies above keep the
  # paths ldd printed, which are the ones the binaries ask for.
  mkdir -p "$root/etc" "$root/tmp" "$root/root"
  chmod 1777 "$root/tmp"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  tar -C "$root" -cf "$root.tar" .
  podman image rm -f "$IMAGE" >/dev/null 2>&1 || true
  podman import -q --change "LABEL covalent.hash=$hash" --change "CMD [\"/bin/sh\"]" \
    "$root.tar" "$IMAGE" >/dev/null || fail "podman import failed"
  rm -f "$root.tar"
  say "built $IMAGE from ${#files[@]} host files"
fi

# --- a probe run ------------------------------------------------------------------------------
probe() { "${PODMAN[@]}" run --rm --init --network none "$IMAGE" /bin/true 2>&1; }
if ! out=$(probe); then
  if grep -q "setting rlimit" <<<"$out" && [ ! -e "$DROPIN" ]; then
    say "the runtime may not set podman's default rlimits here: writing $DROPIN"
    mkdir -p "$(dirname "$DROPIN")"
    printf '# written by covalent scripts/podman-image.sh: this host does not let the\n# container runtime raise rlimits, so containers keep podman'"'"'s own.\n[containers]\ndefault_ulimits = []\n' >"$DROPIN"
    out=$(probe) || fail "podman run still fails: $out"
  else
    fail "podman run fails: $out"
  fi
fi

echo "PODMAN IMAGE READY image=$IMAGE runtime=runc cgroup_manager=cgroupfs secs=$(($(date +%s) - started_at))"
