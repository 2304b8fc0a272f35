#!/usr/bin/env bash
# The same unmodified client, Debian's fence_xvm (multicast + TCP callback, sha256 packet hash and
# challenge-response), against two servers in one run, on the same libvirt test-driver domains
# (tests/data/libvirt/demo.xml):
#   fence_xvm -> vguardd     ([fence_xvm] listener; engine, forensic log fsync, persistent replay memory fsync)
#   fence_xvm -> fence_virtd (multicast listener, libvirt backend)
# for -o status and -o off (each off followed by an untimed on). Both servers run in one private network
# namespace with multicast routed to lo there (never in the root namespace), on different ports (fence_virtd
# 1229, vguardd 1239; fence_xvm -p sets both the multicast and the callback port), so only one server hears each
# request; the samples alternate between them, so load drift hits both alike. Prints medians and the ratio
# vguardd / fence_virtd; vguardd must not be slower (ratio <= 1).
# Usage: bench/xvm_bench.sh [RUNS]   (root; builds vguardd with scripts/build first if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
RUNS=${1:-50}
[ "$(id -u)" = 0 ] || { echo "bench/xvm_bench.sh: needs root (network namespaces)" >&2; exit 1; }
BUILD=${VG_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
BIN=$BUILD/bin
[ -x "$BIN/vguardd" ] || scripts/build --target vguardd >/dev/null
command -v fence_virtd >/dev/null && command -v fence_xvm >/dev/null || { echo "fence_virtd/fence_xvm missing (scripts/deps)" >&2; exit 1; }

W=$(mktemp -d /tmp/vguard-xvm-bench.XXXXXX)
NS=vgxb-$$
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link set lo multicast on
ip -n "$NS" route add 224.0.0.0/4 dev lo
URI="test://$SRC/tests/data/libvirt/demo.xml"
# One key for both servers: /etc/cluster/fence_xvm.key style, 4096 random bytes.
dd if=/dev/urandom of="$W/fence_xvm.key" bs=4096 count=1 status=none
chmod 600 "$W/fence_xvm.key"

cat >"$W/vguard.conf" <<CONF
[daemon]
libvirt_uri = $URI
control_socket = $W/vguardd.sock
log_file = $W/forensic.log
log_level = warning
[key.bench]
file = $W/fence_xvm.key
allow = *
[fence_xvm]
enabled = yes
multicast_address = 225.0.0.12
port = 1239
interface = lo
hash = sha256
auth = sha256
keys = bench
CONF
ip netns exec "$NS" "$BIN/vguardd" --config "$W/vguard.conf" 2>"$W/vguardd.err" & PIDS+=($!)

cat >"$W/fence_virt.conf" <<CONF
fence_virtd {
	listener = "multicast";
	backend = "libvirt";
	module_path = "/usr/lib/x86_64-linux-gnu/fence-virt";
}
listeners {
	multicast {
		key_file = "$W/fence_xvm.key";
		address = "225.0.0.12";
		port = "1229";
		family = "ipv4";
		interface = "lo";
		hash = "sha256";
		auth = "sha256";
	}
}
backends {
	libvirt {
		uri = "$URI";
	}
}
CONF
ip netns exec "$NS" fence_virtd -F -w -f "$W/fence_virt.conf" -p "$W/fence_virtd.pid" >"$W/fence_virtd.out" 2>&1 & PIDS+=($!)

XVM=(fence_xvm -k "$W/fence_xvm.key" -a 225.0.0.12 -t 10)
ready() { ip netns exec "$NS" "${XVM[@]}" -p "$1" -o status -H web-1 >/dev/null 2>&1; }
for port in 1239 1229; do
  for _ in $(seq 1 100); do ready "$port" && break; sleep 0.1; done
done
ready 1239 || { echo "vguardd not ready"; cat "$W/vguardd.err"; exit 1; }
ready 1229 || { echo "fence_virtd not ready"; cat "$W/fence_virtd.out"; exit 1; }

# The timing loop runs inside the namespace (one `ip netns exec` for all runs) and alternates the servers.
# Each sample: fork+exec of fence_xvm to its exit, in microseconds.
cat >"$W/loop.sh" <<'LOOP'
set -euo pipefail
runs=$1; shift
t() { local want=$1 label=$2; shift 2; local t0=$EPOCHREALTIME rc=0; "$@" >/dev/null 2>&1 || rc=$?; local t1=$EPOCHREALTIME
      [ "$rc" = "$want" ] || { echo "unexpected exit $rc (want $want): $*" >&2; exit 1; }; echo "$label $(( ${t1/./} - ${t0/./} ))"; }
for _ in $(seq 1 "$runs"); do
  for s in vg:1239 fv:1229; do
    t 0 "${s%%:*}.status" "$@" -p "${s#*:}" -o status -H web-2
  done
  for s in vg:1239 fv:1229; do
    t 0 "${s%%:*}.off" "$@" -p "${s#*:}" -o off -H web-2
    "$@" -p "${s#*:}" -o on -H web-2 >/dev/null 2>&1 || { echo "re-on failed" >&2; exit 1; }
  done
done
LOOP
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ip netns exec "$NS" bash "$W/loop.sh" "$RUNS" "${XVM[@]}" >"$W/samples"
declare -A R
for k in vg.status fv.status vg.off fv.off; do R[$k]=$(awk -v k="$k" '$1 == k {print $2}' "$W/samples" | median); done

printf '\nfence_xvm round trip, median of %d runs each (same client, same machine, same run, alternating, test-driver domains)\n' "$RUNS"
printf '%-10s %16s %18s %10s\n' action "vguardd (ms)" "fence_virtd (ms)" ratio
for a in status off; do
  awk -v a="$a" -v v="${R[vg.$a]}" -v x="${R[fv.$a]}" \
    'BEGIN {printf "%-10s %16.2f %18.2f %10.2f\n", a, v/1000, x/1000, v/x}'
done
awk -v vs="${R[vg.status]}" -v xs="${R[fv.status]}" -v vo="${R[vg.off]}" -v xo="${R[fv.off]}" \
  'BEGIN { ok = (vs <= xs && vo <= xo); printf "\ntarget: vguardd not slower than fence_virtd: %s\n", ok ? "met" : "NOT met"; exit ok ? 0 : 1 }'
