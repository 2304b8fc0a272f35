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
VG_CLEANUP=()      # extra commands run at teardown, after the processes are stopped
VG_PRESTOP=()      # commands run at teardown before any process is stopped (e.g. destroy guests)
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
  for c in "${VG_PRESTOP[@]}"; do eval "$c"; done
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
  # A here-string, not a pipe: under pipefail, grep -q exiting early can SIGPIPE the writer.
  if grep -Eq -- "$2" <<<"$OUT"; then
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

# ---------------------------------------------------------------------------------------------------------------
# Corosync cluster harness (test-harness.md §C): N hosts, each a network namespace with eth0 = 10.77.0.i/24,
# joined by a bridge in a switch namespace that has no route out. Every interface is created inside the run's own
# namespaces (nothing in the root namespace). corosync runs per host in a private mount namespace with a per-host
# directory bind-mounted on /run (corosync 3.1 hard-codes /run/corosync.pid).
# Sets: CL_N, CL_SW (switch namespace), CL_NS[i] (namespace of host i), CL_CSPID[i] (corosync PID of host i),
# CL_TOKEN. Scratch: $VG_IT/cs/hI/{corosync.conf,corosync.log,stdout,corosync.pid,run/,state/}.
CL_NS=()
CL_CSPID=()
CL_N=0
CL_SW=""
CL_TOKEN=1000

# cluster_write_conf I N TOKEN: writes $VG_IT/cs/hI/corosync.conf (knet, no crypto, votequorum).
cluster_write_conf() {
  local i=$1 n=$2 token=$3 d=$VG_IT/cs/h$1 k
  mkdir -p "$d/state" "$d/run"
  {
    cat <<EOC
totem {
    version: 2
    cluster_name: vgtest
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: $token
    token_coefficient: 0
    join: 50
    consensus: $((token * 12 / 10))
    interface {
        linknumber: 0
        knet_ping_interval: 200
        knet_ping_timeout: 1000
    }
}
system {
    state_dir: $d/state
}
logging {
    to_stderr: no
    to_syslog: no
    to_logfile: yes
    logfile: $d/corosync.log
    timestamp: hires
    debug: off
}
quorum {
    provider: corosync_votequorum
}
nodelist {
EOC
    for k in $(seq 1 "$n"); do
      printf '    node {\n        name: h%s\n        nodeid: %s\n        ring0_addr: 10.77.0.%s\n    }\n' "$k" "$k" "$k"
    done
    echo "}"
  } >"$d/corosync.conf"
}

# cluster_start_corosync I: starts corosync of host I (again, after a kill); records its PID in CL_CSPID[I] and
# VG_PIDS, and registers removal of its /dev/shm/qb-<pid>-* files for teardown.
cluster_start_corosync() {
  local i=$1 d=$VG_IT/cs/h$1 ns=${CL_NS[$1]} p
  mkdir -p "$d/run" "$d/state"
  rm -f "$d/corosync.pid" "$d/run/corosync.pid"
  # ip netns exec, unshare (no --fork) and sh all exec: the PID written by sh is corosync's.
  ip netns exec "$ns" unshare --mount --propagation private sh -c \
    "mount --bind '$d/run' /run && echo \$\$ > '$d/corosync.pid' && exec corosync -f -c '$d/corosync.conf'" \
    >>"$d/stdout" 2>&1 &
  local launcher=$!
  if ! wait_for 5 test -s "$d/corosync.pid"; then
    log "corosync of h$i did not start:"; cat "$d/stdout" >&2
    VG_PIDS+=("$launcher")
    return 1
  fi
  p=$(cat "$d/corosync.pid")
  case $p in ''|*[!0-9]*) log "bad corosync pid file for h$i"; return 1 ;; esac
  CL_CSPID[$i]=$p
  VG_PIDS+=("$p")
  # libqb IPC ring buffers (qb-<pid>-<client>-*) and corosync's blackbox (qb-corosync-<pid>-blackbox-*).
  VG_CLEANUP+=("rm -rf /dev/shm/qb-$p-* /dev/shm/qb-corosync-$p-*")
  [ "$launcher" = "$p" ] || VG_PIDS+=("$launcher")
  disown "$launcher" 2>/dev/null || true  # no "Killed" job notice when a test kills it
}

# cluster_stop_corosync I: SIGTERM (then SIGKILL after 5 s) the corosync of host I, by PID.
cluster_stop_corosync() {
  local p=${CL_CSPID[$1]:-}
  [ -n "$p" ] || return 0
  stop_pid "$p"
  rm -rf /dev/shm/qb-"$p"-* /dev/shm/qb-corosync-"$p"-*
  CL_CSPID[$1]=""
}

# cluster_kill_corosync I: kill -9 the corosync of host I (by PID), wait until it is gone, remove its stale
# /dev/shm/qb-<pid>-* ring buffers.
cluster_kill_corosync() {
  local p=${CL_CSPID[$1]:-}
  [ -n "$p" ] || { log "h$1 has no corosync"; return 1; }
  kill -9 "$p" 2>/dev/null || true
  wait_for 5 bash -c "! kill -0 $p" || log "corosync $p of h$1 still alive after SIGKILL"
  rm -rf /dev/shm/qb-"$p"-* /dev/shm/qb-corosync-"$p"-*
  CL_CSPID[$1]=""
}

# cluster_link I down|up: takes host I's only interface down or up (a network partition of that host).
cluster_link() {
  ip -n "${CL_NS[$1]}" link set eth0 "$2"
}

# cluster_nodes_are I N: corosync-quorumtool in host I reports N nodes and quorate.
cluster_nodes_are() {
  local out
  out=$(ip netns exec "${CL_NS[$1]}" corosync-quorumtool -s 2>/dev/null) || true
  grep -Eq "^Nodes:[[:space:]]+$2\$" <<<"$out" && grep -Eq '^Quorate:[[:space:]]+Yes' <<<"$out"
}

# cluster_up N [TOKEN]: namespaces, bridge, configs, corosync on every host; waits (30 s) until host 1 sees all
# N nodes quorate.
cluster_up() {
  local n=$1 i ns prefix="vgc$$"
  CL_TOKEN=${2:-1000}
  CL_N=$n
  CL_SW="$prefix-sw"
  VG_NETNS+=("$CL_SW")
  ip netns add "$CL_SW"
  ip -n "$CL_SW" link set lo up
  ip -n "$CL_SW" link add br0 type bridge
  ip -n "$CL_SW" link set br0 up
  for i in $(seq 1 "$n"); do
    ns="$prefix-h$i"
    CL_NS[$i]=$ns
    VG_NETNS+=("$ns")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Both veth ends are created inside the switch namespace (private interface names), then one end moves.
    ip -n "$CL_SW" link add "p$i" type veth peer name "e$i"
    ip -n "$CL_SW" link set "e$i" netns "$ns"
    ip -n "$ns" link set "e$i" name eth0
    ip -n "$ns" addr add "10.77.0.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$CL_SW" link set "p$i" master br0
    ip -n "$CL_SW" link set "p$i" up
  done
  for i in $(seq 1 "$n"); do
    cluster_write_conf "$i" "$n" "$CL_TOKEN"
    cluster_start_corosync "$i"
  done
  if ! wait_for 30 cluster_nodes_are 1 "$n"; then
    log "cluster of $n did not form; h1 says:"
    ip netns exec "${CL_NS[1]}" corosync-quorumtool -s >&2 || true
    return 1
  fi
  log "cluster of $n up (token $CL_TOKEN ms): ${CL_NS[*]}"
}

# node_xml FILE NAME:UUID:STATE...: a libvirt test-driver node file with the given domains
# (STATE running or shutoff).
node_xml() {
  local f=$1; shift
  {
    echo "<node><cpu><mhz>2000</mhz><model>x86_64</model><active>4</active><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu><memory>8388608</memory>"
    local spec name uuid state
    for spec in "$@"; do
      IFS=: read -r name uuid state <<<"$spec"
      echo "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>$name</name><uuid>$uuid</uuid><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>"
      [ "$state" = shutoff ] && echo "<test:runstate>5</test:runstate>"
      echo "</domain>"
    done
    echo "</node>"
  } >"$f"
}

# vguardd_cluster_up: one vguardd per cluster host (cluster mode, test-driver domains from $VG_IT/hI.xml),
# sharing $VG_IT/cluster.key; guests' key $VG_IT/guest.key allows vm-*. Control socket: $VG_IT/hI/sock.
vguardd_cluster_up() {
  local i
  [ -f "$VG_IT/cluster.key" ] || "$VG_BIN/vguardctl" keygen --out "$VG_IT/cluster.key" >/dev/null
  [ -f "$VG_IT/guest.key" ] || "$VG_BIN/vguardctl" keygen --out "$VG_IT/guest.key" >/dev/null
  for i in $(seq 1 "$CL_N"); do
    mkdir -p "$VG_IT/h$i"
    cat >"$VG_IT/h$i/vguard.conf" <<CONF
[daemon]
libvirt_uri = test://$VG_IT/h$i.xml
listen = 127.0.0.1:1231
control_socket = $VG_IT/h$i/sock
log_file = $VG_IT/h$i/forensic.log
log_level = debug
request_timeout = 10
[cluster]
enabled = yes
key_file = $VG_IT/cluster.key
hostname = h$i
nodes = $(seq -s, 1 "$CL_N")
${CL_EXTRA_CLUSTER_CONF:-}
[key.guests]
file = $VG_IT/guest.key
allow = vm-*
CONF
    # CL_EXTRA_CONF_<i>: sections appended to host i's config only (e.g. a [fence_xvm] listener).
    local extra="CL_EXTRA_CONF_$i"
    [ -z "${!extra:-}" ] || printf '%s\n' "${!extra}" >>"$VG_IT/h$i/vguard.conf"
    start_bg "vguardd-h$i" ip netns exec "${CL_NS[$i]}" "$VG_BIN/vguardd" --config "$VG_IT/h$i/vguard.conf"
  done
}

# wait_for_rc SECONDS RC CMD...: polls CMD until it exits with RC; then exits RC (else the last exit code).
wait_for_rc() {
  local secs=$1 want=$2 rc=0; shift 2
  for _ in $(seq 1 $((secs * 10))); do
    rc=0; "$@" >/dev/null 2>&1 || rc=$?
    [ "$rc" = "$want" ] && return "$rc"
    sleep 0.1
  done
  return "$rc"
}

# start_libvirtd_qemu NAME [NETNS]: a real libvirtd with the QEMU driver (TCG guests), in a private mount
# namespace (tmpfs /run and /var, own /etc/libvirt), optionally inside network namespace NETNS, under tini as
# subreaper (fast destroy). Unix socket only: $VG_IT/NAME/sock/libvirt-sock. Sets LV_SOCK, LV_PID, LV_URI.
# Optional (unset = no change): LV_EXTRA_CONF / LV_EXTRA_QEMU_CONF, lines appended to libvirtd.conf / qemu.conf
# (e.g. host_uuid, migration_address). libvirt's /etc/libvirt inside that namespace is $VG_IT/NAME/etc, so a
# hook must be in $VG_IT/NAME/etc/hooks/ before this is called (libvirtd looks for hooks only at startup).
start_libvirtd_qemu() {
  local d=$VG_IT/$1 ns=${2:-}
  mkdir -p "$d/sock" "$d/etc"
  cat >"$d/etc/libvirtd.conf" <<CONF
unix_sock_dir = "$d/sock"
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
CONF
  # No cgroups, no SELinux/AppArmor labels, guests as root, qemu's output to files (no virtlogd).
  printf 'cgroup_controllers = [ ]\nsecurity_driver = "none"\nuser = "root"\ngroup = "root"\nstdio_handler = "file"\n' \
    >"$d/etc/qemu.conf"
  if [ -n "${LV_EXTRA_CONF:-}" ]; then printf '%s\n' "$LV_EXTRA_CONF" >>"$d/etc/libvirtd.conf"; fi
  if [ -n "${LV_EXTRA_QEMU_CONF:-}" ]; then printf '%s\n' "$LV_EXTRA_QEMU_CONF" >>"$d/etc/qemu.conf"; fi
  local pre=()
  [ -n "$ns" ] && pre=(ip netns exec "$ns")
  "${pre[@]}" unshare --mount --propagation private sh -c "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var && \
    mount --bind $d/etc /etc/libvirt && exec tini -s -- libvirtd -f $d/etc/libvirtd.conf" >>"$d/out" 2>&1 &
  LV_PID=$!
  VG_PIDS+=("$LV_PID")
  LV_SOCK=$d/sock/libvirt-sock
  LV_URI="qemu+unix:///system?socket=$LV_SOCK"
  wait_for 20 test -S "$LV_SOCK" || { cat "$d/out" >&2; return 1; }
  # Destroy the guests before libvirtd goes (teardown runs VG_CLEANUP before deleting namespaces).
  VG_PRESTOP+=("for g in \$(virsh -q -c '$LV_URI' list --name 2>/dev/null); do virsh -q -c '$LV_URI' destroy \$g >/dev/null 2>&1; done")
}

# tiny_guest_xml FILE NAME UUID: a 32 MiB TCG guest with no disk and no network (it idles in the firmware).
tiny_guest_xml() {
  cat >"$1" <<XML
<domain type='qemu'>
  <name>$2</name>
  <uuid>$3</uuid>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator><video><model type='none'/></video><memballoon model='none'/></devices>
</domain>
XML
}

# ---------------------------------------------------------------------------------------------------------------
# Start-guard harness: N hosts, each a network namespace with its own corosync (cluster_up), its own real
# libvirtd with the QEMU driver (TCG guests; start_libvirtd_qemu) whose qemu hook is vguard-hook, and its own
# vguardd in cluster mode on that libvirtd. Every libvirtd has its own host_uuid and listens for incoming
# migrations inside its namespace only, so live migration between hosts works (test-harness.md B.3) with
# unix-socket URIs, client-driven or --p2p.
# Sets: GU_URI[i] (libvirt URI of host i), GU_LVPID[i] (its libvirtd, under tini), GU_VGPID[i] (its vguardd),
# GU_HOOK[i] (the installed hook program). Scratch: $VG_IT/lvI (libvirtd: etc/ = its /etc/libvirt, sock/),
# $VG_IT/hI/{vguard.conf,sock,forensic.log}; vguardd output in $VG_IT/vguardd-hI[.K].out.
GU_URI=()
GU_LVPID=()
GU_VGPID=()
GU_HOOK=()
GU_VGRUNS=0

# guard_write_conf I: $VG_IT/hI/vguard.conf for host I of CL_N: cluster mode, libvirt_uri = host I's qemu
# libvirtd, control socket $VG_IT/hI/sock, forensic log $VG_IT/hI/forensic.log, nodes = 1..CL_N.
# ${GU_EXTRA_CONF:-} is appended (e.g. "log_level = warning" lines go in [daemon] via GU_EXTRA_DAEMON_CONF).
guard_write_conf() {
  local i=$1
  mkdir -p "$VG_IT/h$i"
  cat >"$VG_IT/h$i/vguard.conf" <<CONF
[daemon]
libvirt_uri = qemu+unix:///system?socket=$VG_IT/lv$i/sock/libvirt-sock
listen = 127.0.0.1:1231
control_socket = $VG_IT/h$i/sock
log_file = $VG_IT/h$i/forensic.log
log_level = ${GU_LOG_LEVEL:-debug}
request_timeout = 10
reconnect_interval = 1
${GU_EXTRA_DAEMON_CONF:-}
[cluster]
enabled = yes
key_file = $VG_IT/cluster.key
hostname = h$i
nodes = $(seq -s, 1 "$CL_N")
${CL_EXTRA_CLUSTER_CONF:-}
[key.guests]
file = $VG_IT/guest.key
allow = tiny*
${GU_EXTRA_CONF:-}
CONF
}

# guard_install_hook I: installs vguard-hook as the qemu hook of host I's libvirt ($VG_IT/lvI/etc/hooks/qemu,
# which that libvirtd sees as /etc/libvirt/hooks/qemu) for config $VG_IT/hI/vguard.conf. Uses
# `vguardctl install-hook` when the build has it, else writes the same /bin/sh wrapper itself. Call it before
# that host's libvirtd starts. Sets GU_HOOK[I].
guard_install_hook() {
  local i=$1 dir=$VG_IT/lv$1/etc/hooks conf=$VG_IT/h$1/vguard.conf
  mkdir -p "$dir"
  rm -f "$dir/qemu"
  if "$VG_BIN/vguardctl" install-hook --help >/dev/null 2>&1; then
    # The hook program of this build, named explicitly (vguardctl's default is the one next to it).
    "$VG_BIN/vguardctl" install-hook --hooks-dir "$dir" --config "$conf" --hook "$VG_BIN/vguard-hook" \
      >>"$VG_IT/install-hook.out" 2>&1 || { log "vguardctl install-hook failed:"; cat "$VG_IT/install-hook.out" >&2; return 1; }
  else
    printf '#!/bin/sh\nVGUARD_CONFIG='\''%s'\'' exec '\''%s'\'' "$@"\n' "$conf" "$VG_BIN/vguard-hook" >"$dir/qemu"
    chmod 0755 "$dir/qemu"
  fi
  [ -x "$dir/qemu" ] || { log "no executable hook in $dir"; return 1; }
  GU_HOOK[$i]=$dir/qemu
}

# guard_start_libvirtd I: host I's libvirtd (hook must be installed already), with a per-host host_uuid and
# QEMU migration listening inside the host's namespace. Sets GU_URI[I], GU_LVPID[I].
guard_start_libvirtd() {
  local i=$1
  LV_EXTRA_CONF="host_uuid = \"$(printf 'c0ffee00-0000-4000-8000-%012d' "$i")\"" \
  LV_EXTRA_QEMU_CONF=$'migration_address = "0.0.0.0"\nmigration_port_min = 49152\nmigration_port_max = 49215' \
    start_libvirtd_qemu "lv$i" "${CL_NS[$i]}"
  GU_URI[$i]=$LV_URI
  GU_LVPID[$i]=$LV_PID
}

# guard_start_vguardd I: (re)starts host I's vguardd in host I's namespace. Sets GU_VGPID[I].
guard_start_vguardd() {
  local i=$1 name="vguardd-h$1"
  GU_VGRUNS=$((GU_VGRUNS + 1))
  [ -e "$VG_IT/$name.out" ] && name="$name.$GU_VGRUNS"
  rm -f "$VG_IT/h$i/sock"
  start_bg "$name" ip netns exec "${CL_NS[$i]}" "$VG_BIN/vguardd" --config "$VG_IT/h$i/vguard.conf"
  GU_VGPID[$i]=$(cat "$VG_IT/$name.pid")
}

# guard_stop_vguardd I: stops host I's vguardd by its PID (SIGTERM, SIGKILL after 5 s).
guard_stop_vguardd() {
  local p=${GU_VGPID[$1]:-}
  [ -n "$p" ] || return 0
  stop_pid "$p"
  GU_VGPID[$1]=""
}

# gctl I ARGS...: vguardctl ARGS against host I's vguardd.
gctl() { local i=$1; shift; "$VG_BIN/vguardctl" "$@" --socket "$VG_IT/h$i/sock"; }

# guard_host_is I K STATUS: host I's vguardd lists host K (hK) with STATUS (member, lost, fenced, ...).
guard_host_is() { gctl "$1" hosts 2>/dev/null | grep -E "^ *$2 +h$2 +$3( |\$)" >/dev/null; }

# guard_all_members I: host I's vguardd answers, is quorate, and lists every host 1..CL_N as a member (or self).
guard_all_members() {
  local out k
  out=$(gctl "$1" hosts 2>/dev/null) || return 1
  grep -q '^quorate: yes' <<<"$out" || return 1
  for k in $(seq 1 "$CL_N"); do grep -Eq "^ *$k +h$k +(member|self)( |\$)" <<<"$out" || return 1; done
}

# guard_cluster_up N: cluster_up N, then per host: vguard.conf, hook, libvirtd (caps probed), vguardd; waits
# (30 s) until every vguardd sees all N hosts as members, quorate.
guard_cluster_up() {
  local n=$1 i
  cluster_up "$n" "${2:-1000}"
  [ -f "$VG_IT/cluster.key" ] || "$VG_BIN/vguardctl" keygen --out "$VG_IT/cluster.key" >/dev/null
  [ -f "$VG_IT/guest.key" ] || "$VG_BIN/vguardctl" keygen --out "$VG_IT/guest.key" >/dev/null
  for i in $(seq 1 "$n"); do
    guard_write_conf "$i"
    guard_install_hook "$i"
    guard_start_libvirtd "$i"
  done
  # The first API call probes QEMU's capabilities (~2 s): do it for all hosts at once.
  local probes=()
  for i in $(seq 1 "$n"); do virsh -q -c "${GU_URI[$i]}" version >/dev/null 2>&1 & probes+=($!); done
  wait "${probes[@]}" || true
  for i in $(seq 1 "$n"); do guard_start_vguardd "$i"; done
  for i in $(seq 1 "$n"); do
    if ! wait_for 30 guard_all_members "$i"; then
      log "vguardd of h$i does not see all $n hosts:"; gctl "$i" hosts >&2 || true
      tail -20 "$VG_IT/vguardd-h$i.out" >&2 || true
      return 1
    fi
  done
  log "start guard cluster of $n up: ${GU_URI[*]}"
}

# gvirsh I ARGS...: virsh (quiet) against host I's libvirtd.
gvirsh() { local i=$1; shift; virsh -q -c "${GU_URI[$i]}" "$@"; }

# guard_define_guest NAME UUID: the same tiny TCG guest (same name and UUID), defined persistently on every
# host, as on shared-storage clusters.
guard_define_guest() {
  local i
  tiny_guest_xml "$VG_IT/$1.xml" "$1" "$2"
  for i in $(seq 1 "$CL_N"); do gvirsh "$i" define "$VG_IT/$1.xml" >/dev/null; done
}

# guard_domstate I NAME: libvirt's state of NAME on host I ("running", "shut off", ...; "error" on failure).
guard_domstate() { gvirsh "$1" domstate "$2" 2>/dev/null | sed -n 1p || echo error; }

# guard_active_hosts NAME: the hosts (hI, space separated) whose libvirt reports NAME in any state other than
# "shut off" (a failing query counts as active: it may be).
guard_active_hosts() {
  local i s out=()
  for i in $(seq 1 "$CL_N"); do
    s=$(guard_domstate "$i" "$1")
    [ "$s" = "shut off" ] || out+=("h$i")
  done
  echo "${out[*]}"
}

# guard_active_count NAME: how many hosts' libvirt report NAME active (see guard_active_hosts).
guard_active_count() { local a; a=$(guard_active_hosts "$1"); set -- $a; echo $#; }

# guard_dom_json I UUID: the domain's object from host I's `vguardctl status --json` (one line, no spaces).
guard_dom_json() {
  gctl "$1" status --json 2>/dev/null | tr -d ' \n' | grep -o "{[^{}]*\"uuid\":\"$2\"[^{}]*}" | sed -n 1p
}

# guard_owner I UUID / guard_epoch I UUID / guard_vgstate I UUID: host, epoch, state of UUID in host I's map.
guard_owner() { guard_dom_json "$1" "$2" | sed -n 's/.*"host":"\([^"]*\)".*/\1/p'; }
guard_epoch() { guard_dom_json "$1" "$2" | sed -n 's/.*"epoch":\([0-9]*\).*/\1/p'; }
guard_vgstate() { guard_dom_json "$1" "$2" | sed -n 's/.*"state":"\([^"]*\)".*/\1/p'; }

# guard_owner_on "I J ..." UUID HOST [MIN_EPOCH]: the vguardds of hosts I J ... show UUID with host HOST (and
# epoch >= MIN_EPOCH).
guard_owner_on() {
  local u=$2 h=$3 min=${4:-0} i e
  for i in $1; do
    [ "$(guard_owner "$i" "$u")" = "$h" ] || return 1
    e=$(guard_epoch "$i" "$u"); [ -n "$e" ] && [ "$e" -ge "$min" ] || return 1
  done
}

# guard_running_vguardds: the hosts (numbers) whose vguardd this harness has running.
guard_running_vguardds() {
  local i out=()
  for i in $(seq 1 "$CL_N"); do [ -n "${GU_VGPID[$i]:-}" ] && out+=("$i"); done
  echo "${out[*]}"
}

# guard_all_owner UUID HOST [MIN_EPOCH]: every running vguardd shows UUID with host HOST (and epoch >= MIN_EPOCH).
guard_all_owner() { guard_owner_on "$(guard_running_vguardds)" "$@"; }

# guard_release_logged I UUID EPOCH: host I's forensic log records the release of UUID's claim of EPOCH as
# applied (every member logs it when the owner's release is delivered).
guard_release_logged() {
  grep -F "\"uuid\":\"$2\"" "$VG_IT/h$1/forensic.log" 2>/dev/null |
    grep -Eq "\"type\":\"release\".*\"release_epoch\":$3,.*\"applied\":true"
}
