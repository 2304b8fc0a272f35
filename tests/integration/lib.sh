# Shared helpers for vguard's integration tests (sourced, bash).
# Rules (test-harness.md): every process started is recorded by PID and stopped by that PID; teardown always
# runs (trap EXIT); scratch files live under $VG_IT only; traffic stays on loopback or inside namespaces we made.
set -euo pipefail

: "${VG_BIN:?VG_BIN (directory with vguardd, fence_vguard, vguardctl) must be set}"
: "${VG_SRC:?VG_SRC (source tree) must be set}"
VG_IT=$(mktemp -d "${TMPDIR:-/tmp}/vguard-it.XXXXXX")
[ -n "$VG_IT" ] && [ "$VG_IT" != "/" ] || { echo "refusing to run without a scratch dir" >&2; exit 1; }
export VG_IT
VG_PIDS=()         # PIDs to stop, in reverse order
VG_NETNS=()        # namespaces to delete
VG_CLEANUP=()      # extra commands run at teardown
VG_FAILS=0
VG_PASSES=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }

stop_pid() {  # SIGTERM, wait up to 5 s, then SIGKILL that same PID
  local p=$1
  kill -0 "$p" 2>/dev/null || return 0
  kill "$p" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  log "PID $p ignored SIGTERM; SIGKILL"
  kill -9 "$p" 2>/dev/null || true
}

teardown() {
  local rc=$?
  set +e
  for ((i=${#VG_PIDS[@]}-1; i>=0; i--)); do stop_pid "${VG_PIDS[$i]}"; done
  for c in "${VG_CLEANUP[@]}"; do eval "$c"; done
  for ns in "${VG_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [ "${VG_KEEP:-0}" = 1 ]; then log "kept $VG_IT"; else rm -rf "$VG_IT"; fi
  exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

need_root() {
  if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root"; exit 77; fi
}
need_cmd() {
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || { echo "SKIP: $c not installed"; exit 77; }; done
}

# make_netns TAG: creates a private network namespace with loopback up and sets NS to its name.
# (Not called in $(...): the namespace must be recorded in this shell for teardown.)
make_netns() {
  NS="vgit-$$-$1"
  VG_NETNS+=("$NS")
  ip netns add "$NS"
  ip -n "$NS" link set lo up
}

# start_bg NAME CMD...: runs CMD in the background, output to $VG_IT/NAME.out, records its PID.
start_bg() {
  local name=$1; shift
  "$@" >"$VG_IT/$name.out" 2>&1 &
  local pid=$!
  VG_PIDS+=("$pid")
  echo "$pid" >"$VG_IT/$name.pid"
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s.
wait_for() {
  local secs=$1; shift
  local n=$((secs * 10))
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# check NAME WANT_RC CMD...: runs CMD, compares its exit code; output in $OUT.
check() {
  local name=$1 want=$2; shift 2
  set +e
  OUT=$("$@" 2>&1)
  local rc=$?
  set -e
  if [ "$rc" = "$want" ]; then
    VG_PASSES=$((VG_PASSES + 1)); log "ok   $name (rc $rc)"
  else
    VG_FAILS=$((VG_FAILS + 1)); log "FAIL $name: rc $rc, want $want; output:"; printf '%s\n' "$OUT" >&2
  fi
}
# expect_out NAME PATTERN: the last check's output matches the extended regex.
expect_out() {
  if printf '%s\n' "$OUT" | grep -Eq -- "$2"; then
    VG_PASSES=$((VG_PASSES + 1)); log "ok   $1"
  else
    VG_FAILS=$((VG_FAILS + 1)); log "FAIL $1: output does not match /$2/:"; printf '%s\n' "$OUT" >&2
  fi
}

finish() {
  echo "$VG_PASSES passed, $VG_FAILS failed"
  [ "$VG_FAILS" = 0 ]
}

# write_vguard_conf FILE URI CONTROL_SOCKET LOG LISTEN KEYFILE ALLOW...
write_vguard_conf() {
  local f=$1 uri=$2 sock=$3 logf=$4 listen=$5 key=$6; shift 6
  {
    echo "[daemon]"
    echo "libvirt_uri = $uri"
    echo "control_socket = $sock"
    echo "log_file = $logf"
    [ -n "$listen" ] && echo "listen = $listen"
    echo "log_level = debug"
    echo
    echo "[key.guests]"
    echo "file = $key"
    for a in "$@"; do echo "allow = $a"; done
  } >"$f"
}

# start_libvirtd NAME: a real libvirtd in a private mount namespace (private tmpfs /run and /var, its own
# /etc/libvirt), listening only on a Unix socket under $VG_IT/NAME/sock. Sets LV_SOCK and LV_PID.
# Serves the test driver as test+unix:///default?socket=$LV_SOCK (state shared by all its clients).
start_libvirtd() {
  local d=$VG_IT/$1
  mkdir -p "$d/sock" "$d/etc"
  cat >"$d/etc/libvirtd.conf" <<CONF
unix_sock_dir = "$d/sock"
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
CONF
  printf 'cgroup_controllers = [ ]\nsecurity_driver = "none"\n' >"$d/etc/qemu.conf"
  rm -f "$d/sock/libvirt-sock"
  # unshare and sh exec, so $! is libvirtd itself.
  unshare --mount --propagation private sh -c "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var && \
    mount --bind $d/etc /etc/libvirt && exec libvirtd -f $d/etc/libvirtd.conf" >>"$d/out" 2>&1 &
  LV_PID=$!
  VG_PIDS+=("$LV_PID")
  LV_SOCK=$d/sock/libvirt-sock
  wait_for 20 test -S "$LV_SOCK" || { cat "$d/out" >&2; return 1; }
}
