#!/bin/bash
# CpgBus against a real 3-node corosync (knet) in network namespaces (test-harness.md §C):
#  1. every host sees the 3-member view, quorum, and all 15 messages in the same (agreed) order, each sender's
#     messages in FIFO order;
#  2. kill -9 corosync on h3: h1/h2 get a view without 3 (reason nodedown), h3's probe reports LOST;
#  3. corosync on h3 again: the SAME h3 probe process reconnects and gets a fresh 3-member view; h1/h2 see 3 join;
#  4. SIGTERM: every probe exits 0 after destroying its bus;
#  5. flow control: 9000 messages of 20 KB sent at once arrive complete, in one order, FIFO per sender.
# Needs root, ip, unshare, corosync; exits 77 otherwise.
source "$(dirname "$0")/lib.sh"

need_root
need_cmd ip unshare corosync corosync-quorumtool "$VG_BIN/cpg_probe"

cluster_up 3 1000

GROUP=vguard-test
for i in 1 2 3; do
  start_bg "probe$i" ip netns exec "${CL_NS[$i]}" "$VG_BIN/cpg_probe" --group "$GROUP" --send 5 --seconds 240 \
    --min-members 3
done
P=$VG_IT

msgs() { grep -E '^MSG ' "$P/probe$1.out" || true; }
count_msgs() { [ "$(msgs "$1" | wc -l)" -ge "$2" ]; }
has_line() { grep -Eq -- "$2" "$P/probe$1.out"; }
# has_line_after I PATTERN AFTER: PATTERN on a line after the last line matching AFTER.
has_line_after() {
  awk -v pat="$2" -v after="$3" '$0 ~ after { seen = 1; found = 0; next } seen && $0 ~ pat { found = 1 } END { exit !found }' \
    "$P/probe$1.out"
}

# --- 1. membership, quorum, agreed order ---------------------------------------------------------------------
for i in 1 2 3; do
  check "h$i: 15 messages delivered" 0 wait_for 30 count_msgs "$i" 15
  check "h$i: 3-member view" 0 has_line "$i" '^VIEW members=1,2,3 '
  check "h$i: quorate" 0 has_line "$i" '^QUORUM 1$'
  check "h$i: no send error" 1 has_line "$i" '^SENDERR'
done
check "exactly 15 messages on h1" 0 test "$(msgs 1 | wc -l)" -eq 15
check "h2 saw h1's order" 0 cmp <(msgs 1) <(msgs 2)
check "h3 saw h1's order" 0 cmp <(msgs 1) <(msgs 3)
fifo_ok() {  # fifo_ok I N: on host I every sender's messages appear as hello-S-0..N-1 in order, with from=S
  msgs "$1" | awk -v n="$2" '{ split($4, d, "="); split(d[2], f, "-"); s = substr($2, 6)
                  if (f[2] != s || f[3] != next_i[s] + 0) bad = 1; next_i[s]++ }
                END { for (s in next_i) if (next_i[s] != n) bad = 1; exit bad }'
}
check "per-sender FIFO order and sender ids" 0 fifo_ok 1 5
log "agreed order on every host: $(msgs 1 | awk '{print $4}' | sed 's/data=//' | tr '\n' ' ')"

# --- 2. corosync on h3 dies ----------------------------------------------------------------------------------
cluster_kill_corosync 3
for i in 1 2; do
  check "h$i: view without 3, reason nodedown" 0 wait_for 20 has_line "$i" '^VIEW members=1,2 joined= left=3\(nodedown\)$'
done
check "h3: LOST reported" 0 wait_for 10 has_line 3 '^LOST '
check "h3: LOST reported once" 0 test "$(grep -c '^LOST ' "$P/probe3.out")" -eq 1
check "h3: quorum 0 after LOST" 0 has_line_after 3 '^QUORUM 0$' '^LOST '
check "h1: still quorate (2 of 3)" 0 cluster_nodes_are 1 2

# --- 3. corosync on h3 back: the same probe reconnects --------------------------------------------------------
sleep 2  # a few failed reconnect attempts first (they must not report LOST again)
cluster_start_corosync 3
check "cluster of 3 again" 0 wait_for 30 cluster_nodes_are 1 3
check "h3: same probe gets a 3-member view after LOST" 0 wait_for 30 has_line_after 3 '^VIEW members=1,2,3 ' '^LOST '
check "h3: quorate again" 0 wait_for 10 has_line_after 3 '^QUORUM 1$' '^LOST '
check "h3: still one LOST" 0 test "$(grep -c '^LOST ' "$P/probe3.out")" -eq 1
for i in 1 2; do
  check "h$i: sees 3 join" 0 wait_for 20 has_line "$i" '^VIEW members=1,2,3 joined=3 left=$'
done

# --- 4. clean shutdown ---------------------------------------------------------------------------------------
for i in 1 2 3; do
  pid=$(cat "$P/probe$i.pid")
  kill -TERM "$pid" 2>/dev/null || true
  set +e; wait "$pid"; rc=$?; set -e
  check "h$i: probe exits 0 on SIGTERM" 0 test "$rc" -eq 0
  check "h$i: probe reached EXIT" 0 has_line "$i" '^EXIT$'
done

# --- 5. flow control: 3 x 3000 messages of 20 KB at once (CS_ERR_TRY_AGAIN -> timer backoff, order kept) -------
if [ "$VG_FAILS" != 0 ]; then
  for i in 1 2 3; do log "--- probe$i.out"; cat "$P/probe$i.out" >&2; done
fi
for i in 1 2 3; do
  mv "$P/probe$i.out" "$P/probe$i.phase1.out"
  start_bg "probe$i" ip netns exec "${CL_NS[$i]}" "$VG_BIN/cpg_probe" --group vguard-test-flow --send 3000 \
    --pad 20000 --seconds 120 --min-members 3
done
for i in 1 2 3; do
  check "flow h$i: 9000 messages delivered" 0 wait_for 90 count_msgs "$i" 9000
  check "flow h$i: no send error" 1 has_line "$i" '^SENDERR'
done
check "flow: h2 saw h1's order" 0 cmp <(msgs 1) <(msgs 2)
check "flow: h3 saw h1's order" 0 cmp <(msgs 1) <(msgs 3)
check "flow: per-sender FIFO order" 0 fifo_ok 1 3000
log "flow control retries (CS_ERR_TRY_AGAIN) per host: $(for i in 1 2 3; do grep -c 'flow control' "$P/probe$i.out" || true; done | tr '\n' ' ')"
for i in 1 2 3; do
  pid=$(cat "$P/probe$i.pid")
  kill -TERM "$pid" 2>/dev/null || true
  set +e; wait "$pid"; rc=$?; set -e
  check "flow h$i: probe exits 0 on SIGTERM" 0 test "$rc" -eq 0
done
finish
