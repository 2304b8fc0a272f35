#!/usr/bin/env bash
# Lost hosts confirmed from Pacemaker's fencing history: 3 hosts with corosync, pacemaker-fenced (-c, with
# CPG) and vguardd (pacemaker_history = yes). After kill -9 of h3's corosync, h3's domain is owner-lost; a
# Pacemaker fence of h3 (fence_dummy device, stonith_admin --fence) makes vguardd confirm the loss by itself.
source "$(dirname "$0")/lib.sh"
need_root
need_cmd ip corosync stonith_admin /usr/lib/pacemaker/pacemaker-fenced "$VG_BIN/vguardd" "$VG_BIN/fence_vguard"
if ! "$VG_BIN/vguardd" --help >/dev/null 2>&1; then echo "SKIP: vguardd does not run"; exit 77; fi

C1=33333333-0000-4000-8000-000000000001
node_xml "$VG_IT/h1.xml" "vm-a1:11111111-0000-4000-8000-000000000001:running"
node_xml "$VG_IT/h2.xml" "vm-b1:22222222-0000-4000-8000-000000000001:running"
node_xml "$VG_IT/h3.xml" "vm-c1:$C1:running"
cluster_up 3
for i in 1 2 3; do
  start_bg "fenced-h$i" ip netns exec "${CL_NS[$i]}" /usr/lib/pacemaker/pacemaker-fenced -c -l "$VG_IT/fenced-h$i.log"
done
CL_EXTRA_CLUSTER_CONF="pacemaker_history = yes"
vguardd_cluster_up
ctl() { local i=$1; shift; "$VG_BIN/vguardctl" "$@" --socket "$VG_IT/h$i/sock"; }
fence() { local i=$1; shift; ip netns exec "${CL_NS[$i]}" "$VG_BIN/fence_vguard" -k "$VG_IT/guest.key" -t 15 "$@"; }
host_is() { ctl "$1" hosts 2>/dev/null | grep -E "^ *$2 +h$2 +$3" >/dev/null; }
sees() { [ "$(ctl 1 status 2>/dev/null | grep -c ' vm-\|^vm-')" -ge 3 ]; }
check "map converged" 0 wait_for 30 sees
check "fencers up" 0 wait_for 20 ip netns exec "${CL_NS[1]}" stonith_admin -L
printf on >"$VG_IT/dummy.status"
check "register a power fence device for h3 (fence_dummy)" 0 ip netns exec "${CL_NS[1]}" stonith_admin -R dummy3 \
  -a fence_dummy -o type=file -o "status_file=$VG_IT/dummy.status" -o pcmk_host_list=h3

cluster_kill_corosync 3
check "h3 lost" 0 wait_for 20 host_is 1 3 lost
sleep 3  # vguardd takes its baseline of h3's fencing history after the loss
check "vm-c1 owner-lost: status fails" 1 fence 1 -o status -n vm-c1
check "Pacemaker fences h3" 0 ip netns exec "${CL_NS[1]}" stonith_admin --fence h3 -t 30
check "vguardd confirms h3 from the fencing history" 0 wait_for 15 host_is 2 3 fenced
check "vm-c1 now off with evidence" 2 fence 2 -o status -n vm-c1
check "the confirmation names Pacemaker" 0 grep -q '"type":"confirm-fenced".*pacemaker fencing history.*"applied":true' "$VG_IT/h1/forensic.log"
finish
