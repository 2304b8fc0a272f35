#!/usr/bin/env bash
# Start-guard figures on a real 3-host cluster (network namespaces; per host corosync with knet, token 1000 ms,
# libvirtd with QEMU/TCG and vguard-hook installed as its qemu hook, vguardd in cluster mode), root:
#  (a) hook decision latency: the installed hook run exactly as libvirt runs it (`HOOK tiny prepare begin -` with
#      the domain XML on stdin), timed from process start to exit with CLOCK_MONOTONIC, HOOK_RUNS times,
#      alternating the requesting host h1, h2, h3; after each granted prepare the untimed `HOOK tiny release end -`
#      and a wait until the next requester has applied the release (its forensic log). p50/p99/max of the
#      prepare; target p99 <= 10 ms. Every prepare must be granted.
#  (b) the added time of a real `virsh start` with the hook installed (h1) vs a libvirtd without any hook (a 4th
#      host in its own namespace), START_RUNS starts each, interleaved, each followed by an untimed destroy.
# Usage: bench/hook_bench.sh [HOOK_RUNS] [START_RUNS]   (defaults 1000 and 30; VG_BIN or VG_BUILD name the build)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
HOOK_RUNS=${1:-1000}
START_RUNS=${2:-30}
BASE_RUNS=${BASE_RUNS:-200}
[ "$(id -u)" = 0 ] || { echo "bench/hook_bench.sh: needs root (network namespaces, corosync, libvirtd)" >&2; exit 1; }
for c in corosync libvirtd virsh qemu-system-x86_64 tini g++; do
  command -v "$c" >/dev/null || { echo "bench/hook_bench.sh: $c missing (scripts/deps)" >&2; exit 1; }
done
export VG_BIN=${VG_BIN:-$SRC/${VG_BUILD:-build}/bin} VG_SRC=$SRC
[ -x "$VG_BIN/vguardd" ] && [ -x "$VG_BIN/vguard-hook" ] && [ -x "$VG_BIN/vguardctl" ] ||
  scripts/build --target vguardd vguardctl vguard-hook >/dev/null
source "$SRC/tests/integration/lib.sh"
exec 3>&2 2>"$VG_IT/bench.log"   # harness chatter to a file; results on stdout
fail() { echo "bench/hook_bench.sh: $*" >&3; tail -20 "$VG_IT/bench.log" >&3; exit 1; }

# tm CMD...: runs CMD (stdin inherited), prints its wall time from fork to exit in ns (CLOCK_MONOTONIC) on
# stdout, exits with CMD's status. CMD's own stdout/stderr go to /dev/null.
cat >"$VG_IT/tm.cpp" <<'CPP'
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
static long long now() { timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
int main(int argc, char** argv) {
  if (argc < 2) return 2;
  int null = open("/dev/null", O_WRONLY);
  long long t0 = now();
  pid_t p = fork();
  if (p == 0) { dup2(null, 1); dup2(null, 2); execv(argv[1], argv + 1); _exit(127); }
  int st = 0;
  waitpid(p, &st, 0);
  long long t1 = now();
  std::printf("%lld\n", t1 - t0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}
CPP
g++ -O2 -o "$VG_IT/tm" "$VG_IT/tm.cpp" || fail "cannot compile the timer"
TM=$VG_IT/tm

DOM=tiny
U=7e570000-0000-4000-8000-0000000000be
GU_LOG_LEVEL=warning guard_cluster_up 3 || fail "cluster did not come up"
guard_define_guest "$DOM" "$U"
# The 4th host: same guest, libvirtd without any hook, in its own namespace (never joins the cluster).
make_netns nohook
start_libvirtd_qemu lv0 "$NS"
URI0=$LV_URI
virsh -q -c "$URI0" define "$VG_IT/$DOM.xml" >/dev/null
virsh -q -c "$URI0" version >/dev/null

# wait_release I EPOCH: until host I applied the release of the claim of EPOCH (10 s at most, 5 ms polls).
wait_release() {
  local _
  for _ in $(seq 1 2000); do guard_release_logged "$1" "$U" "$2" && return 0; sleep 0.005; done
  return 1
}
epoch_now() { local e; e=$(guard_epoch 1 "$U"); echo "${e:-0}"; }
# pct FILE P: the P-th percentile (nearest rank) of the numbers in FILE; "max" for the largest.
pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {if (p == "max") {print a[NR]; exit}
  r = int(NR * p / 100); if (r < NR * p / 100) r++; if (r < 1) r = 1; print a[r]}'; }
ms() { awk -v n="$1" 'BEGIN {printf "%.2f", n / 1e6}'; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
# (a) hook decision latency.
E=$(epoch_now)
: >"$VG_IT/prep.ns"
refused=0
for i in $(seq 0 $((HOOK_RUNS - 1))); do
  h=$((i % 3 + 1))
  rc=0
  ns=$("$TM" "${GU_HOOK[$h]}" "$DOM" prepare begin - <"$VG_IT/$DOM.xml") || rc=$?
  if [ "$rc" != 0 ]; then
    refused=$((refused + 1))
    [ "$refused" -ge 10 ] && fail "10 prepares refused (last on h$h, run $i)"
    continue
  fi
  echo "$ns" >>"$VG_IT/prep.ns"
  E=$((E + 1))
  "${GU_HOOK[$h]}" "$DOM" release end - <"$VG_IT/$DOM.xml" >/dev/null 2>&1 || true
  next=$(((i + 1) % 3 + 1))
  wait_release "$next" "$E" || fail "release of epoch $E not applied on h$next"
done
n=$(wc -l <"$VG_IT/prep.ns")
P50=$(pct "$VG_IT/prep.ns" 50); P99=$(pct "$VG_IT/prep.ns" 99); PMAX=$(pct "$VG_IT/prep.ns" max)
# Reference: the same hook for an operation it does not ask about (process start, config read, exit).
: >"$VG_IT/noask.ns"
for i in $(seq 1 "$BASE_RUNS"); do
  "$TM" "${GU_HOOK[$((i % 3 + 1))]}" "$DOM" start begin - <"$VG_IT/$DOM.xml" >>"$VG_IT/noask.ns"
done
B50=$(pct "$VG_IT/noask.ns" 50); B99=$(pct "$VG_IT/noask.ns" 99); BMAX=$(pct "$VG_IT/noask.ns" max)
# Inside vguardd: hook-prepare request to outcome in each requester's forensic log (ms timestamps).
awk '
  function t(l,  s) { match(l, /"ts":"[^"]*"/); s = substr(l, RSTART + 17, 12)
    return (substr(s, 1, 2) * 3600 + substr(s, 4, 2) * 60 + substr(s, 7, 6)) * 1000 }
  function id(l) { match(l, /"request":[0-9]+/); return substr(l, RSTART + 10, RLENGTH - 10) }
  /"type":"request"/ && /"action":"hook-prepare"/ { q[FILENAME ":" id($0)] = t($0) }
  /"type":"outcome"/ && /"action":"hook-prepare"/ { k = FILENAME ":" id($0); if (k in q) printf "%d\n", (t($0) - q[k]) * 1e6 }
' "$VG_IT"/h[123]/forensic.log >"$VG_IT/daemon.ns"
D50=$(pct "$VG_IT/daemon.ns" 50); D99=$(pct "$VG_IT/daemon.ns" 99); DMAX=$(pct "$VG_IT/daemon.ns" max)

# (b) virsh start with the hook (h1, cluster) vs without (no hook), interleaved.
: >"$VG_IT/start_hook.ns"; : >"$VG_IT/start_plain.ns"
for i in $(seq 1 "$START_RUNS"); do
  ns=$("$TM" "$(command -v virsh)" -q -c "${GU_URI[1]}" start "$DOM") || fail "virsh start with the hook failed (run $i)"
  echo "$ns" >>"$VG_IT/start_hook.ns"
  E=$(epoch_now)
  gvirsh 1 destroy "$DOM" >/dev/null
  wait_release 1 "$E" || fail "release of epoch $E not applied on h1"
  ns=$("$TM" "$(command -v virsh)" -q -c "$URI0" start "$DOM") || fail "virsh start without hook failed (run $i)"
  echo "$ns" >>"$VG_IT/start_plain.ns"
  virsh -q -c "$URI0" destroy "$DOM" >/dev/null
done
H50=$(pct "$VG_IT/start_hook.ns" 50); H99=$(pct "$VG_IT/start_hook.ns" 99)
N50=$(pct "$VG_IT/start_plain.ns" 50); N99=$(pct "$VG_IT/start_plain.ns" 99)

printf 'start guard on a 3-host cluster (corosync knet token 1000 ms, libvirtd + QEMU/TCG per host), %s CPUs\n' "$(nproc)"
printf 'load average before: %s, after: %s\n\n' "$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '(a) hook prepare decision, process start to exit, %d granted of %d runs (h1,h2,h3 in turn; %d refused)\n' \
  "$n" "$HOOK_RUNS" "$refused"
printf '    %-28s %10s %10s %10s\n' "" "p50 (ms)" "p99 (ms)" "max (ms)"
printf '    %-28s %10s %10s %10s\n' "prepare (hook start to exit)" "$(ms "$P50")" "$(ms "$P99")" "$(ms "$PMAX")"
printf '    %-28s %10s %10s %10s\n' "  of it inside vguardd (*)" "$(ms "$D50")" "$(ms "$D99")" "$(ms "$DMAX")"
printf '    %-28s %10s %10s %10s\n' "hook that does not ask (**)" "$(ms "$B50")" "$(ms "$B99")" "$(ms "$BMAX")"
printf '    (*) hook-prepare request to outcome in the requester'"'"'s forensic log (1 ms resolution)\n'
printf '    (**) `HOOK tiny start begin -`, %d runs: process start, config read, exit\n' "$BASE_RUNS"
printf '    target p99 <= 10 ms: %s\n\n' "$([ "$P99" -le 10000000 ] && echo met || echo "NOT met")"
printf '(b) virsh start of a 32 MiB TCG guest, %d starts each (interleaved, destroy in between)\n' "$START_RUNS"
printf '    %-22s %10s %10s\n' "" "p50 (ms)" "p99 (ms)"
printf '    %-22s %10s %10s\n' "with vguard-hook (h1)" "$(ms "$H50")" "$(ms "$H99")"
printf '    %-22s %10s %10s\n' "without a hook" "$(ms "$N50")" "$(ms "$N99")"
printf '    %-22s %10s %10s\n' "added by the guard" "$(ms $((H50 - N50)))" "$(ms $((H99 - N99)))"
