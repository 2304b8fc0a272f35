#!/usr/bin/env bash
# The start guard on 3 real hypervisor hosts: per host a network namespace with its own corosync (knet), its own
# libvirtd with QEMU/TCG guests whose qemu hook is vguard-hook, and its own vguardd in cluster mode. The same tiny
# guest (same name and UUID) is defined on every host, as on shared storage. Checks, all from libvirt's view:
#  1. a start on h1 of a domain running on h2 is refused by the hook (one active copy, on h2);
#  2. live migration h1 -> h2 (client-driven) and back h2 -> h1 (--p2p): ownership follows with a higher epoch on
#     every host, and a start on the old source is refused;
#  3. racing starts from all 3 hosts, RACE_ROUNDS rounds (default 100): exactly one start wins each round;
#  4. vguardd stopped on a host: a start there is refused (fail-closed); restarted, it rejoins and serves;
#  5. the owner's host lost (kill -9 of its corosync): a start elsewhere is refused until confirm-fenced;
#  6. the forensic log records the claims and refusals and verifies.
# Exits 77 (skip) without root, qemu-system-x86_64, libvirtd or corosync.
source "$(dirname "$0")/lib.sh"
need_root
need_cmd ip unshare tini virsh libvirtd qemu-system-x86_64 corosync corosync-quorumtool \
  "$VG_BIN/vguardd" "$VG_BIN/vguardctl" "$VG_BIN/vguard-hook"

ROUNDS=${RACE_ROUNDS:-100}
DOM=tiny
U=7e570000-0000-4000-8000-000000000001
T0=$SECONDS

guard_cluster_up 3
guard_define_guest "$DOM" "$U"
log "guest $DOM ($U) defined on h1 h2 h3 (setup took $((SECONDS - T0)) s)"

# released: no host's libvirt runs the guest, every running vguardd shows it shut off, and each of them has
# applied the release of the current claim (the owner's release hook, replicated; the forensic log's "release"
# record), so the next claim can be granted.
released() {
  [ "$(guard_active_count "$DOM")" = 0 ] || return 1
  local j e
  for j in $(guard_running_vguardds); do
    [ "$(guard_vgstate "$j" "$U")" = "shutoff" ] || return 1
    e=$(guard_epoch "$j" "$U")
    [ -n "$e" ] && guard_release_logged "$j" "$U" "$e" || return 1
  done
}
# stop_everywhere: destroy the guest wherever libvirt runs it, then wait until the release reached every vguardd.
stop_everywhere() {
  local j
  for j in 1 2 3; do
    [ "$(guard_domstate "$j" "$DOM")" = "shut off" ] || gvirsh "$j" destroy "$DOM" >/dev/null 2>&1 || true
  done
  wait_for 20 released
}
one_copy_on() {  # one_copy_on hI: libvirt reports exactly one active copy, on hI
  [ "$(guard_active_hosts "$DOM")" = "$1" ]
}

# ---------------------------------------------------------------------------------------------------------------
# 1. A domain running on h2 is not started on h1.
check "1: virsh start on h2 succeeds" 0 gvirsh 2 start "$DOM"
check "1: every vguardd shows h2 as the domain's host" 0 wait_for 10 guard_all_owner "$U" h2
check "1: virsh start on h1 of the domain running on h2 is refused" 1 gvirsh 1 start "$DOM"
expect_out "1: libvirt's error carries the hook's line" "vguard: refusing to start $DOM: "
check "1: libvirt on h1 reports it shut off" 0 test "$(guard_domstate 1 "$DOM")" = "shut off"
check "1: libvirt on h2 still reports it running" 0 test "$(guard_domstate 2 "$DOM")" = "running"
check "1: exactly one active copy (h2)" 0 one_copy_on h2
check "1: refused on h3 too" 1 gvirsh 3 start "$DOM"
expect_out "1: h3's refusal names vguard" "vguard"
check "1: still exactly one active copy (h2)" 0 one_copy_on h2
check "1: destroy on h2, released everywhere" 0 stop_everywhere

# ---------------------------------------------------------------------------------------------------------------
# 2. Live migration h1 -> h2 (client-driven) and h2 -> h1 (--p2p): the guard hands ownership over.
check "2: start on h1" 0 gvirsh 1 start "$DOM"
check "2: every vguardd shows h1 as host" 0 wait_for 10 guard_all_owner "$U" h1
E0=$(guard_epoch 1 "$U"); E0=${E0:-0}
log "epoch after the start on h1: $E0"
check "2: virsh migrate --live h1 -> h2 succeeds" 0 virsh -q -c "${GU_URI[1]}" migrate --live "$DOM" "${GU_URI[2]}" tcp://10.77.0.2
check "2: every vguardd shows h2 with an epoch > $E0" 0 wait_for 10 guard_all_owner "$U" h2 $((E0 + 1))
E1=$(guard_epoch 1 "$U"); E1=${E1:-0}
for j in 1 2 3; do log "h$j after h1->h2: $(guard_dom_json "$j" "$U")"; done
check "2: libvirt: exactly one active copy, on h2" 0 wait_for 5 one_copy_on h2
check "2: virsh start on the old source h1 is refused" 1 gvirsh 1 start "$DOM"
expect_out "2: refusal from vguard" "vguard: refusing to start $DOM"
check "2: still exactly one active copy, on h2" 0 one_copy_on h2
check "2: virsh migrate --live --p2p h2 -> h1 succeeds" 0 virsh -q -c "${GU_URI[2]}" migrate --live --p2p "$DOM" "${GU_URI[1]}" tcp://10.77.0.1
check "2: every vguardd shows h1 with an epoch > $E1" 0 wait_for 10 guard_all_owner "$U" h1 $((E1 + 1))
for j in 1 2 3; do log "h$j after h2->h1: $(guard_dom_json "$j" "$U")"; done
check "2: libvirt: exactly one active copy, on h1" 0 wait_for 5 one_copy_on h1
check "2: virsh start on the old source h2 is refused" 1 gvirsh 2 start "$DOM"
expect_out "2: refusal from vguard" "vguard: refusing to start $DOM"
check "2: still exactly one active copy, on h1" 0 one_copy_on h1
check "2: destroy on h1, released everywhere" 0 stop_everywhere

# ---------------------------------------------------------------------------------------------------------------
# 3. Racing starts: each round, virsh start on h1, h2 and h3 at once; exactly one may win.
declare -A WINS=([h1]=0 [h2]=0 [h3]=0)
BAD=0
RACE=$VG_IT/race
mkdir -p "$RACE"
T3=$SECONDS
for r in $(seq 1 "$ROUNDS"); do
  pids=()
  for j in 1 2 3; do
    ( rc=0; gvirsh "$j" start "$DOM" >"$RACE/$j.out" 2>&1 || rc=$?; echo "$rc" >"$RACE/$j.rc" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  ok=()
  for j in 1 2 3; do [ "$(cat "$RACE/$j.rc")" = 0 ] && ok+=("h$j"); done
  active=$(guard_active_hosts "$DOM")
  if [ "${#ok[@]}" = 1 ] && [ "$active" = "${ok[0]}" ]; then
    WINS[${ok[0]}]=$((WINS[${ok[0]}] + 1))
  else
    BAD=$((BAD + 1))
    log "race round $r: starts succeeded on [${ok[*]}], libvirt reports active on [$active]"
    for j in 1 2 3; do log "  h$j rc $(cat "$RACE/$j.rc"): $(tr '\n' ' ' <"$RACE/$j.out")"; done
    [ "$BAD" -ge 5 ] && { log "race: 5 bad rounds, stopping the race early"; break; }
  fi
  if ! stop_everywhere; then
    BAD=$((BAD + 1))
    log "race round $r: not released within 20 s; active on [$(guard_active_hosts "$DOM")]"
    for j in 1 2 3; do log "  h$j: $(guard_dom_json "$j" "$U")"; done
    break
  fi
done
SUMMARY="rounds=$ROUNDS winners: h1=${WINS[h1]} h2=${WINS[h2]} h3=${WINS[h3]} bad=$BAD ($((SECONDS - T3)) s)"
echo "$SUMMARY"
log "race: $SUMMARY"
check "3: every race round had exactly one winner and exactly one active copy" 0 \
  test "$BAD" = 0 -a $((WINS[h1] + WINS[h2] + WINS[h3])) = "$ROUNDS"

# ---------------------------------------------------------------------------------------------------------------
# 4. vguardd stopped on h2: starts there fail closed; restarted, it rejoins.
log "stopping h2's vguardd (PID ${GU_VGPID[2]})"
guard_stop_vguardd 2
not_member() { ! guard_host_is "$1" "$2" member; }
check "4: h1 sees h2's vguardd gone" 0 wait_for 10 not_member 1 2
check "4: virsh start on h2 without its vguardd is refused" 1 gvirsh 2 start "$DOM"
expect_out "4: fail-closed, vguardd named unreachable" "vguard: cannot ask vguardd .*fail-closed"
check "4: libvirt on h2 reports it shut off" 0 test "$(guard_domstate 2 "$DOM")" = "shut off"
check "4: no active copy anywhere" 0 test "$(guard_active_count "$DOM")" = 0
guard_start_vguardd 2
log "h2's vguardd restarted (PID ${GU_VGPID[2]})"
check "4: h2's vguardd rejoined (sees all hosts, quorate)" 0 wait_for 30 guard_all_members 2
check "4: h1 sees h2 a member again" 0 wait_for 30 guard_host_is 1 2 member
check "4: a start on h2 succeeds again" 0 wait_for_rc 20 0 gvirsh 2 start "$DOM"
check "4: every vguardd shows h2 as host" 0 wait_for 10 guard_all_owner "$U" h2
check "4: exactly one active copy, on h2" 0 one_copy_on h2
check "4: destroy on h2, released everywhere" 0 stop_everywhere

# ---------------------------------------------------------------------------------------------------------------
# 5. Lost owner: the guest runs on h3, h3's corosync dies. Nobody can know whether it still runs there.
check "5: start on h3" 0 gvirsh 3 start "$DOM"
check "5: every vguardd shows h3 as host" 0 wait_for 10 guard_all_owner "$U" h3
E3=$(guard_epoch 1 "$U"); E3=${E3:-0}
cluster_kill_corosync 3
check "5: h1 sees h3 lost" 0 wait_for 20 guard_host_is 1 3 lost
check "5: virsh start on h1 refused while h3 is lost and unconfirmed" 1 gvirsh 1 start "$DOM"
expect_out "5: reason: h3 lost, not confirmed fenced" "vguard: refusing to start $DOM: .*(lost|not confirmed fenced)"
check "5: refused on h2 too" 1 gvirsh 2 start "$DOM"
expect_out "5: h2's reason names the loss" "lost|not confirmed fenced"
check "5: libvirt: only h3's copy is active" 0 one_copy_on h3
# The admin powers h3's guest off (here: through h3's own libvirt) and confirms h3 fenced.
gvirsh 3 destroy "$DOM" >/dev/null
check "5: confirm-fenced h3 on h1" 0 gctl 1 host confirm-fenced h3 --yes
check "5: h2 knows h3 is fenced" 0 wait_for 10 guard_host_is 2 3 fenced
check "5: virsh start on h1 now succeeds" 0 wait_for_rc 15 0 gvirsh 1 start "$DOM"
check "5: exactly one active copy, on h1" 0 one_copy_on h1
check "5: h1 and h2 show h1 as host with an epoch > $E3" 0 wait_for 10 guard_owner_on "1 2" "$U" h1 $((E3 + 1))
cluster_start_corosync 3
check "5: h3 rejoins (member on h1)" 0 wait_for 40 guard_host_is 1 3 member
check "5: h3's vguardd sees all hosts" 0 wait_for 30 guard_all_members 3
check "5: h3's vguardd shows h1 as host" 0 wait_for 15 guard_all_owner "$U" h1 $((E3 + 1))
check "5: virsh start on h3 is refused (runs on h1)" 1 gvirsh 3 start "$DOM"
expect_out "5: refusal from vguard" "vguard: refusing to start $DOM"
check "5: exactly one active copy, on h1" 0 one_copy_on h1

# ---------------------------------------------------------------------------------------------------------------
# 6. The forensic log: claims and refusals recorded; the hash chain verifies.
for j in 1 2 3; do
  check "6: forensic log of h$j verifies" 0 "$VG_BIN/vguardctl" log verify --file "$VG_IT/h$j/forensic.log"
done
check "6: h1's log has the hook's prepare requests" 0 grep -q '"action":"hook-prepare"' "$VG_IT/h1/forensic.log"
check "6: h1's log has its own granted start claims" 0 grep -Eq '"type":"claim".*"requester":"h1","kind":"start","decision":"grant"' "$VG_IT/h1/forensic.log"
check "6: h1's log has refused claims" 0 grep -Eq '"type":"claim".*"decision":"refuse","reason":"[^"]*owned by h' "$VG_IT/h1/forensic.log"
check "6: h1's log has the refusal for the lost owner" 0 grep -Eq '"type":"claim".*"decision":"refuse","reason":"[^"]*(lost|not confirmed)' "$VG_IT/h1/forensic.log"
check "6: h1's log answers the hook with the refusal" 0 grep -Eq '"type":"outcome".*"action":"hook-prepare","result":"failure"' "$VG_IT/h1/forensic.log"
check "6: h1's log has the granted migrations and hand-overs" 0 bash -c "grep -Eq '\"kind\":\"migrate\",\"decision\":\"grant\"' '$VG_IT/h1/forensic.log' && grep -q '\"type\":\"handover\"' '$VG_IT/h1/forensic.log'"
check "6: h2's log has refused claims from the race" 0 grep -Eq '"type":"claim".*"decision":"refuse"' "$VG_IT/h2/forensic.log"
check "6: log show lists h1's refusals" 0 bash -c "'$VG_BIN/vguardctl' log show --file '$VG_IT/h1/forensic.log' | grep -E ' claim .*decision=refuse' | grep 'reason=' >/dev/null"
check "6: h1's log records the confirmation" 0 grep -q '"type":"confirm-fenced".*"applied":true' "$VG_IT/h1/forensic.log"
log "whole test: $((SECONDS - T0)) s"
finish
