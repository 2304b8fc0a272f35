#!/usr/bin/env bash
# Cluster-mode figures on a real 3-host corosync (knet, token 1000 ms, network namespaces) with one vguardd per
# host on libvirt's test driver (root):
#  1. fence round trip, local vs remote: fence_vguard on h1 for a domain on h1 and for one on h2 (status, and
#     off followed by an untimed on), medians; target: remote p50 <= local p50 + 2 ms;
#  2. kill -9 of h3's corosync to "owner lost" on h1 (h1's forensic membership record), next to the time
#     corosync itself reported the membership change on h1 (its log), and the configured token timeout.
# Usage: bench/cluster_bench.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
RUNS=${1:-50}
[ "$(id -u)" = 0 ] || { echo "bench/cluster_bench.sh: needs root" >&2; exit 1; }
export VG_BIN=$SRC/${VG_BUILD:-build}/bin VG_SRC=$SRC
[ -x "$VG_BIN/vguardd" ] || scripts/build --target vguardd fence_vguard vguardctl >/dev/null
source "$SRC/tests/integration/lib.sh"
exec 3>&2 2>"$VG_IT/bench.log"   # harness chatter to a file; results on stdout

node_xml "$VG_IT/h1.xml" "vm-local:11111111-0000-4000-8000-000000000001:running"
node_xml "$VG_IT/h2.xml" "vm-remote:22222222-0000-4000-8000-000000000001:running"
node_xml "$VG_IT/h3.xml" "vm-three:33333333-0000-4000-8000-000000000001:running"
cluster_up 3 1000
vguardd_cluster_up
sed -i 's/^log_level = debug$/log_level = warning/' "$VG_IT"/h*/vguard.conf
ctl() { local i=$1; shift; "$VG_BIN/vguardctl" "$@" --socket "$VG_IT/h$i/sock"; }
sees() { [ "$(ctl 1 status 2>/dev/null | grep -c 'vm-')" -ge 3 ]; }
wait_for 30 sees || { echo "cluster map did not converge" >&3; exit 1; }

cat >"$VG_IT/loop.sh" <<'LOOP'
set -euo pipefail
runs=$1 target=$2; shift 2
t() { local want=$1 label=$2; shift 2; local t0=$EPOCHREALTIME rc=0; "$@" >/dev/null 2>&1 || rc=$?; local t1=$EPOCHREALTIME
      [ "$rc" = "$want" ] || { echo "unexpected exit $rc (want $want): $*" >&2; exit 1; }; echo "$label $(( ${t1/./} - ${t0/./} ))"; }
for _ in $(seq 1 "$runs"); do
  t 0 status "$@" -o status -n "$target"
  t 0 off "$@" -o off -n "$target"
  "$@" -o on -n "$target" >/dev/null 2>&1 || { echo "re-on failed" >&2; exit 1; }
done
LOOP
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
F=("$VG_BIN/fence_vguard" -k "$VG_IT/guest.key" -t 10)
ip netns exec "${CL_NS[1]}" bash "$VG_IT/loop.sh" "$RUNS" vm-local "${F[@]}" >"$VG_IT/local.samples"
ip netns exec "${CL_NS[1]}" bash "$VG_IT/loop.sh" "$RUNS" vm-remote "${F[@]}" >"$VG_IT/remote.samples"
declare -A R
for k in local remote; do for a in status off; do
  R[$k.$a]=$(awk -v a="$a" '$1 == a {print $2}' "$VG_IT/$k.samples" | median)
done; done
printf 'fence round trip on a 3-host cluster, median of %d runs (requested on h1)\n' "$RUNS"
printf '%-8s %12s %12s %12s\n' action "local (ms)" "remote (ms)" "diff (ms)"
for a in status off; do
  awk -v a="$a" -v l="${R[local.$a]}" -v r="${R[remote.$a]}" 'BEGIN {printf "%-8s %12.2f %12.2f %12.2f\n", a, l/1000, r/1000, (r-l)/1000}'
done
awk -v ls="${R[local.status]}" -v rs="${R[remote.status]}" -v lo="${R[local.off]}" -v ro="${R[remote.off]}" \
  'BEGIN {ok = (rs - ls <= 2000 && ro - lo <= 2000); printf "target remote <= local + 2 ms: %s\n", ok ? "met" : "NOT met"}'

# 2. loss detection
t_kill=$(date +%s%3N)
cluster_kill_corosync 3
lost() { ctl 1 hosts 2>/dev/null | grep -E '^ *3 +h3 +lost' >/dev/null; }
wait_for 20 lost || { echo "h3 never reported lost" >&3; exit 1; }
# h1's forensic log: the membership record that dropped h3 (ts in UTC ms).
ts=$(grep '"type":"membership"' "$VG_IT/h1/forensic.log" | grep '"left":"h3' | tail -1 | sed 's/.*"ts":"\([^"]*\)".*/\1/')
t_vg=$(date -d "$ts" +%s%3N)
# corosync's own view of it on h1 (hires log timestamps, local time).
cs_line=$(grep -E 'A new membership|Members left' "$VG_IT/cs/h1/corosync.log" | tail -1 || true)
cs_ts=$(sed -E 's/^([A-Za-z]{3} [0-9 ]{2} [0-9:.]+).*/\1/' <<<"$cs_line")
t_cs=$(date -d "$cs_ts" +%s%3N 2>/dev/null || echo "")
printf '\nloss detection: kill -9 of h3 corosync -> h3 lost in h1 vguardd: %d ms' $((t_vg - t_kill))
[ -n "$t_cs" ] && printf ' (corosync membership change logged on h1 after %d ms; vguard adds %d ms)' $((t_cs - t_kill)) $((t_vg - t_cs))
printf '\ncorosync token: %d ms, consensus: %d ms; target owner-lost <= token + 50 ms: %s\n' 1000 1200 \
  "$([ $((t_vg - t_kill)) -le 1050 ] && echo met || echo "NOT met (corosync itself needs token + consensus to declare the loss)")"
