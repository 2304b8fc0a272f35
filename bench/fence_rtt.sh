#!/usr/bin/env bash
# Round trip of a fence request, vguard vs the peer, measured in one run on the same machine and the same
# libvirt test-driver domain set (tests/data/libvirt/demo.xml):
#   fence_vguard -> vguardd (TCP, loopback)  vs  fence_xvm -> fence_virtd (multicast on loopback + TCP callback)
# for -o status and -o off (each off is followed by an untimed on). Everything runs inside a private network
# namespace (multicast never touches the root namespace). Prints medians and the ratio vguard/fence_xvm.
# Usage: bench/fence_rtt.sh [RUNS]   (root; builds with scripts/build first if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
RUNS=${1:-50}
[ "$(id -u)" = 0 ] || { echo "bench/fence_rtt.sh: needs root (network namespace)" >&2; exit 1; }
BIN=$SRC/${VG_BUILD:-build}/bin
[ -x "$BIN/vguardd" ] && [ -x "$BIN/fence_vguard" ] || scripts/build --target vguardd fence_vguard vguardctl >/dev/null
command -v fence_virtd >/dev/null && command -v fence_xvm >/dev/null || { echo "fence_virtd/fence_xvm missing (scripts/deps)" >&2; exit 1; }

W=$(mktemp -d /tmp/vguard-bench.XXXXXX)
NS=vgbench-$$
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
IN=(ip netns exec "$NS")
URI="test://$SRC/tests/data/libvirt/demo.xml"

# vguardd
"$BIN/vguardctl" keygen --out "$W/vguard.key" >/dev/null
cat >"$W/vguard.conf" <<CONF
[daemon]
libvirt_uri = $URI
listen = 127.0.0.1:1231
control_socket = $W/vguardd.sock
log_file = $W/forensic.log
log_level = warning
[key.bench]
file = $W/vguard.key
allow = *
CONF
"${IN[@]}" "$BIN/vguardd" --config "$W/vguard.conf" 2>"$W/vguardd.err" & PIDS+=($!)

# fence_virtd, libvirt backend on the same domain file, multicast listener on lo
dd if=/dev/urandom of="$W/fence_xvm.key" bs=4096 count=1 status=none
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
	}
}
backends {
	libvirt {
		uri = "$URI";
	}
}
CONF
"${IN[@]}" fence_virtd -F -w -f "$W/fence_virt.conf" -p "$W/fence_virtd.pid" >"$W/fence_virtd.out" 2>&1 & PIDS+=($!)

VG=("${IN[@]}" "$BIN/fence_vguard" -k "$W/vguard.key" -T 127.0.0.1 -p 1231 -t 10)
XVM=("${IN[@]}" fence_xvm -k "$W/fence_xvm.key" -t 10)
ready() { "$@" >/dev/null 2>&1; }
for _ in $(seq 1 100); do ready "${VG[@]}" -o status -n web-1 && break; sleep 0.1; done
for _ in $(seq 1 100); do ready "${XVM[@]}" -o status -H web-1 && break; sleep 0.1; done
ready "${VG[@]}" -o status -n web-1 || { echo "vguardd not ready"; cat "$W/vguardd.err"; exit 1; }
ready "${XVM[@]}" -o status -H web-1 || { echo "fence_virtd not ready"; cat "$W/fence_virtd.out"; exit 1; }

# The timing loop runs inside the namespace (one `ip netns exec` for all runs), so neither client pays for
# entering the namespace. Each sample: fork+exec of the client to its exit, in microseconds.
cat >"$W/loop.sh" <<'LOOP'
set -euo pipefail
runs=$1 flag=$2; shift 2
t() { local want=$1 label=$2; shift 2; local t0=$EPOCHREALTIME rc=0; "$@" >/dev/null 2>&1 || rc=$?; local t1=$EPOCHREALTIME
      [ "$rc" = "$want" ] || { echo "unexpected exit $rc (want $want): $*" >&2; exit 1; }; echo "$label $(( ${t1/./} - ${t0/./} ))"; }
for _ in $(seq 1 "$runs"); do
  t 0 status "$@" -o status "$flag" web-2
  t 0 off "$@" -o off "$flag" web-2
  "$@" -o on "$flag" web-2 >/dev/null 2>&1 || { echo "re-on failed" >&2; exit 1; }
done
LOOP
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
declare -A R
measure() {  # label domain-flag client...
  local label=$1 flag=$2; shift 2
  "${IN[@]}" bash "$W/loop.sh" "$RUNS" "$flag" "$@" >"$W/$label.samples"
  R[$label.status]=$(awk '$1 == "status" {print $2}' "$W/$label.samples" | median)
  R[$label.off]=$(awk '$1 == "off" {print $2}' "$W/$label.samples" | median)
}
VGC=("$BIN/fence_vguard" -k "$W/vguard.key" -T 127.0.0.1 -p 1231 -t 10)
XVMC=(fence_xvm -k "$W/fence_xvm.key" -t 10)
measure xvm -H "${XVMC[@]}"
measure vg -n "${VGC[@]}"
# Spawn baseline: what fork+exec of a do-nothing program costs in the same loop.
"${IN[@]}" bash -c 'for _ in $(seq 1 '"$RUNS"'); do t0=$EPOCHREALTIME; /bin/true; t1=$EPOCHREALTIME; echo $(( ${t1/./} - ${t0/./} )); done' >"$W/true.samples"
R[true]=$(median <"$W/true.samples")

printf '\nfence round trip, median of %d runs each (same machine, same run, test-driver domains)\n' "$RUNS"
printf '%-10s %18s %18s %10s\n' action "fence_vguard (ms)" "fence_xvm (ms)" ratio
for a in status off; do
  awk -v a="$a" -v v="${R[vg.$a]}" -v x="${R[xvm.$a]}" \
    'BEGIN {printf "%-10s %18.2f %18.2f %10.2f\n", a, v/1000, x/1000, v/x}'
done
awk -v b="${R[true]}" 'BEGIN {printf "(spawn baseline: /bin/true takes %.2f ms in the same loop; both columns include it)\n", b/1000}'
awk -v vs="${R[vg.status]}" -v xs="${R[xvm.status]}" -v vo="${R[vg.off]}" -v xo="${R[xvm.off]}" \
  'BEGIN { ok = (vs/xs <= 1/3 && vo/xo <= 1/3); printf "\ntarget: vguard at most 1/3 of fence_xvm: %s\n", ok ? "met" : "NOT met" }'
