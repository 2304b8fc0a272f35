#!/usr/bin/env bash
# Cluster mode on a real 3-host corosync (knet, network namespaces) with one vguardd per host on libvirt's
# test driver: the replicated map; a fence of a domain on h2 requested on h1 and on h3; h1 cut off (link
# down) refuses starts and remote actions while h2 and h3 keep serving; heal gives one consistent map;
# kill -9 of h3's corosync makes h3's domains owner-lost: off is refused until confirm-fenced. Debian's
# unmodified fence_xvm, talking to h1's [fence_xvm] listener (multicast on lo inside h1's namespace only), is
# routed through the cluster the same way: its off of a domain on h2 is carried out by h2, and an owner-lost
# domain is a failure, never "off", until confirmed fenced.
source "$(dirname "$0")/lib.sh"
need_root
need_cmd ip corosync corosync-quorumtool fence_xvm "$VG_BIN/vguardd" "$VG_BIN/fence_vguard" "$VG_BIN/vguardctl"

A1=11111111-0000-4000-8000-000000000001
B1=22222222-0000-4000-8000-000000000001
B2=22222222-0000-4000-8000-000000000002
C1=33333333-0000-4000-8000-000000000001
node_xml "$VG_IT/h1.xml" "vm-a1:$A1:running"
node_xml "$VG_IT/h2.xml" "vm-b1:$B1:running" "vm-b2:$B2:running"
node_xml "$VG_IT/h3.xml" "vm-c1:$C1:running"

cluster_up 3
ip -n "${CL_NS[1]}" link set lo multicast on
ip -n "${CL_NS[1]}" route add 224.0.0.0/4 dev lo   # h1's namespace only
dd if=/dev/urandom of="$VG_IT/fence_xvm.key" bs=4096 count=1 status=none
chmod 600 "$VG_IT/fence_xvm.key"
CL_EXTRA_CONF_1="[key.xvm-guests]
file = $VG_IT/fence_xvm.key
allow = vm-*
[fence_xvm]
enabled = yes
multicast_address = 225.0.0.12
interface = lo
keys = xvm-guests"
vguardd_cluster_up

ctl() { local i=$1; shift; "$VG_BIN/vguardctl" "$@" --socket "$VG_IT/h$i/sock"; }
fence() { local i=$1; shift; ip netns exec "${CL_NS[$i]}" "$VG_BIN/fence_vguard" -k "$VG_IT/guest.key" -t 15 "$@"; }
xvm() { ip netns exec "${CL_NS[1]}" fence_xvm -k "$VG_IT/fence_xvm.key" -a 225.0.0.12 -t 15 "$@"; }
map_of() { ctl "$1" status --json 2>/dev/null | tr -d ' \n' | grep -o '"name":"vm-[a-z0-9]*","uuid":"[^"]*","state":"[^"]*","host":"[^"]*","epoch":[0-9]*' | sort; }
sees_domains() { [ "$(ctl "$1" status 2>/dev/null | grep -c ' vm-')" -ge "$2" ] || [ "$(ctl "$1" status 2>/dev/null | grep -c '^vm-')" -ge "$2" ]; }
host_is() { ctl "$1" hosts 2>/dev/null | grep -E "^ *$2 +h$2 +$3" >/dev/null; }

for i in 1 2 3; do
  check "h$i vguardd sees the whole map" 0 wait_for 30 sees_domains "$i" 4
done
check "status on h1 lists the cluster" 0 ctl 1 status
expect_out "vm-b1 runs on h2" "vm-b1 .* h2 "
check "maps agree h1/h2" 0 bash -c "diff <($(declare -f ctl map_of); VG_BIN=$VG_BIN VG_IT=$VG_IT; map_of 1) <($(declare -f ctl map_of); VG_BIN=$VG_BIN VG_IT=$VG_IT; map_of 2)"

# Cross-host fencing: requested on h1 and on h3, carried out by h2.
check "status of vm-b1 from h1: on" 0 fence 1 -o status -n vm-b1
check "off vm-b1 requested on h1" 0 fence 1 -o off -n vm-b1
check "h2's own libvirt reports it off" 2 fence 2 -o status -n vm-b1
check "status from h3: off" 2 fence 3 -o status -n vm-b1
check "off vm-b2 requested on h3" 0 fence 3 -o off -n "$B2" -u
check "on vm-b2 requested on h1" 0 fence 1 -o on -n vm-b2
check "status from h3: on" 0 fence 3 -o status -n vm-b2
check "unknown domain is not off" 1 fence 1 -o status -n vm-nowhere
# Debian's fence_xvm to h1's multicast listener, for a domain that runs on h2.
check "fence_xvm to h1: status of vm-b2 (on h2)" 0 xvm -o status -H vm-b2
check "fence_xvm to h1: off vm-b2" 0 xvm -o off -H vm-b2
check "h2's own libvirt reports vm-b2 off" 2 fence 2 -o status -n vm-b2
check "fence_xvm to h1: status of vm-b2 off" 2 xvm -o status -H vm-b2
check "fence_xvm to h1: on vm-b2 (by UUID)" 0 xvm -o on -H "$B2"
check "h2's own libvirt reports vm-b2 on" 0 fence 2 -o status -n vm-b2
check "fence_xvm: unknown domain is not off" 1 xvm -o status -H vm-nowhere

# h1 cut off: it loses quorum and refuses remote actions and starts; h2 and h3 keep serving.
cluster_link 1 down
check "h2 sees h1 lost" 0 wait_for 20 host_is 2 1 lost
check "h1 refuses a remote off" 1 fence 1 -o off -n vm-b2
check "vm-b2 untouched" 0 fence 2 -o status -n vm-b2
check "h1 hook refuses a start (vguard-hook in build dir)" 1 bash -c "printf '<domain><uuid>$C1</uuid></domain>' | VGUARD_CONTROL_SOCKET=$VG_IT/h1/sock $VG_BIN/vguard-hook vm-c1 prepare begin -"
expect_out "reason given" "quorum|no cluster view|lost"
check "h2 serves: off vm-b2 requested on h3" 0 fence 3 -o off -n vm-b2
check "h2 serves: status of vm-a1 (owner h1 lost) is a failure" 1 fence 2 -o status -n vm-a1
expect_out "owner lost named" "lost"
cluster_link 1 up
check "healed: h1 member again on h2" 0 wait_for 30 host_is 2 1 member
check "healed: h1 serves status of vm-b2 (off)" 2 wait_for_rc 20 2 fence 1 -o status -n vm-b2
sleep 1
M1=$(map_of 1); M2=$(map_of 2); M3=$(map_of 3)
check "one consistent map after heal (h1=h2)" 0 test "$M1" = "$M2"
check "one consistent map after heal (h2=h3)" 0 test "$M2" = "$M3"

# kill -9 of h3's corosync: h3's domain is owner-lost until confirmed fenced.
cluster_kill_corosync 3
check "h1 sees h3 lost" 0 wait_for 20 host_is 1 3 lost
check "status of vm-c1 is a failure, not off" 1 fence 1 -o status -n vm-c1
expect_out "reason: owner lost" "h3.*lost"
check "off of vm-c1 refused" 1 fence 1 -o off -n vm-c1
check "fence_xvm: status of owner-lost vm-c1 is a failure, not off" 1 xvm -o status -H vm-c1
check "fence_xvm: off of owner-lost vm-c1 refused" 1 xvm -o off -H vm-c1
check "confirm without --yes does nothing" 1 ctl 1 host confirm-fenced h3
check "still refused" 1 fence 2 -o off -n vm-c1
check "confirm-fenced h3" 0 ctl 1 host confirm-fenced h3 --yes
check "h2 knows h3 is fenced" 0 wait_for 10 host_is 2 3 fenced
check "off of vm-c1 now succeeds" 0 fence 2 -o off -n vm-c1
check "status of vm-c1 now off" 2 fence 1 -o status -n vm-c1
check "fence_xvm: vm-c1 off once confirmed" 2 xvm -o status -H vm-c1
# corosync back on h3: its vguardd reconnects, rejoins as a joiner, and reports its domains itself.
cluster_start_corosync 3
check "h3 member again (vguardd reconnected to corosync)" 0 wait_for 30 host_is 1 3 member
check "h3 reports vm-c1 itself: status on (h3's test driver still runs it)" 0 wait_for_rc 20 0 fence 1 -o status -n vm-c1
check "forensic log of h1 verifies" 0 "$VG_BIN/vguardctl" log verify --file "$VG_IT/h1/forensic.log"
check "h1 logged the confirmation" 0 grep -q '"type":"confirm-fenced".*"applied":true' "$VG_IT/h1/forensic.log"
check "h1 logged the fence_xvm requests" 0 grep -Eq "\"type\":\"request\".*fence_xvm" "$VG_IT/h1/forensic.log"
finish
