#!/usr/bin/env bash
# vguardd as a drop-in for fence_virtd: Debian's unmodified fence_xvm (multicast + TCP callback) and fence_virt
# (TCP, vsock where the kernel allows it) against vguardd's [fence_xvm] / [fence_virt_*] listeners, on libvirt's
# test driver, inside a private network namespace (multicast routed to lo in that namespace only). Then the
# refusals, each with nothing changed and a forensic record: wrong key, a hash weaker than configured, a captured
# packet replayed (at once, after 11 s, and after a vguardd restart), a truncated datagram / stream, a domain
# outside the key's allow set; and the serial listener with a guest socket played by xvm_peer.
source "$(dirname "$0")/lib.sh"
need_root
need_cmd ip fence_xvm fence_virt "$VG_BIN/vguardd" "$VG_BIN/vguardctl" "$VG_BIN/xvm_peer"

make_netns xvm
ip -n "$NS" link set lo multicast on
ip -n "$NS" route add 224.0.0.0/4 dev lo   # inside the test's namespace only
IN=(ip netns exec "$NS")

ALPHA=11111111-1111-1111-1111-111111111111
BETA=22222222-2222-2222-2222-222222222222
GAMMA=33333333-3333-3333-3333-333333333333
OTHER=44444444-4444-4444-4444-444444444444
VPORT=$((30000 + $$ % 20000))   # vsock has no namespaces: a per-run port
mkdir -p "$VG_IT/serial"

dom() {  # NAME UUID STATE [SERIAL_SOCKET]
  echo "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>$1</name><uuid>$2</uuid>"
  echo "<memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>"
  [ "$3" = shutoff ] && echo "<test:runstate>5</test:runstate>"
  [ -n "${4:-}" ] && echo "<devices><serial type='unix'><source mode='bind' path='$4'/><target port='0'/></serial></devices>"
  echo "</domain>"
}
{
  echo "<node><cpu><mhz>2000</mhz><model>x86_64</model><active>4</active><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu><memory>8388608</memory>"
  dom vm-alpha "$ALPHA" running "$VG_IT/serial/vm-alpha.sock"
  dom vm-beta "$BETA" running
  dom vm-gamma "$GAMMA" shutoff
  dom other-1 "$OTHER" running "$VG_IT/serial/other-1.sock"
  echo "</node>"
} >"$VG_IT/node.xml"

# /etc/cluster/fence_xvm.key style keys: 4096 random bytes, used as is.
dd if=/dev/urandom of="$VG_IT/fence_xvm.key" bs=4096 count=1 status=none
dd if=/dev/urandom of="$VG_IT/wrong.key" bs=4096 count=1 status=none
chmod 600 "$VG_IT"/*.key
cat >"$VG_IT/vguard.conf" <<CONF
[daemon]
libvirt_uri = test://$VG_IT/node.xml
control_socket = $VG_IT/vguardd.sock
log_file = $VG_IT/forensic.log
log_level = debug
request_timeout = 10
[key.guests]
file = $VG_IT/fence_xvm.key
allow = vm-*
[fence_xvm]
enabled = yes
multicast_address = 225.0.0.12
port = 1229
interface = lo
hash = sha256
auth = sha256
keys = guests
[fence_virt_tcp]
enabled = yes
listen = 127.0.0.1:1230
keys = guests
[fence_virt_vsock]
enabled = yes
port = $VPORT
keys = guests
[fence_virt_serial]
enabled = yes
path = $VG_IT/serial
rescan_interval = 1
group = vm-alpha, vm-beta
CONF

VGRUNS=0
start_vguardd() {
  VGRUNS=$((VGRUNS + 1))
  rm -f "$VG_IT/vguardd.sock"
  start_bg "vguardd.$VGRUNS" "${IN[@]}" "$VG_BIN/vguardd" --config "$VG_IT/vguard.conf"
  VGPID=$(cat "$VG_IT/vguardd.$VGRUNS.pid")
  wait_for 10 "$VG_BIN/vguardctl" status --socket "$VG_IT/vguardd.sock" ||
    { log "vguardd did not start:"; cat "$VG_IT/vguardd.$VGRUNS.out" >&2; exit 1; }
}
start_vguardd

X=("${IN[@]}" fence_xvm -k "$VG_IT/fence_xvm.key" -a 225.0.0.12 -t 5)
T=("${IN[@]}" fence_virt -k "$VG_IT/fence_xvm.key" -T 127.0.0.1 -p 1230 -t 5)
P=("${IN[@]}" "$VG_BIN/xvm_peer")
# state NAME: the domain's state as vguardd's native control socket reports it (the test driver's state lives
# inside vguardd's process).
state() { "$VG_BIN/vguardctl" status --socket "$VG_IT/vguardd.sock" 2>/dev/null | awk -v n="$1" '$1 == n {$1 = ""; $2 = ""; sub(/^ +/, ""); print; exit}'; }
expect_state() {  # LABEL NAME STATE
  local s; s=$(state "$2")
  if [ "$s" = "$3" ]; then VG_PASSES=$((VG_PASSES + 1)); log "ok   $1 ($2 $s)"
  else VG_FAILS=$((VG_FAILS + 1)); log "FAIL $1: $2 is '$s', want '$3'"; fi
}
# logged LABEL REGEX: a forensic record matching REGEX exists (and count how many).
logged() {
  local n; n=$(grep -Ec -- "$2" "$VG_IT/forensic.log" || true)
  if [ "$n" -gt 0 ]; then VG_PASSES=$((VG_PASSES + 1)); log "ok   $1 ($n records)"
  else VG_FAILS=$((VG_FAILS + 1)); log "FAIL $1: no forensic record matches /$2/"; fi
}
count() { grep -Ec -- "$1" "$VG_IT/forensic.log" || true; }

# ---- Debian's fence_xvm: list, status, off, on, reboot ----
check "fence_xvm list" 0 "${X[@]}" -o list
expect_out "list shows vm-alpha on" "^vm-alpha +$ALPHA on"
expect_out "list shows vm-gamma off" "^vm-gamma +$GAMMA off"
if grep -q other-1 <<<"$OUT"; then VG_FAILS=$((VG_FAILS + 1)); log "FAIL list leaks other-1"; fi
check "fence_xvm status" 0 "${X[@]}" -o status -H vm-alpha
expect_out "Status: ON" "Status: ON"
check "fence_xvm off" 0 "${X[@]}" -o off -H vm-alpha
expect_state "off took effect" vm-alpha "shut off"
check "fence_xvm status after off" 2 "${X[@]}" -o status -H vm-alpha
expect_out "Status: OFF" "Status: OFF"
check "fence_xvm on (by UUID)" 0 "${X[@]}" -o on -H "$ALPHA"
expect_state "on took effect" vm-alpha running
check "fence_xvm reboot" 0 "${X[@]}" -o reboot -H vm-alpha
expect_state "reboot leaves it running" vm-alpha running
check "fence_xvm reboot of an off domain" 0 "${X[@]}" -o reboot -H vm-gamma
expect_state "reboot does not start an off domain" vm-gamma "shut off"
check "fence_xvm monitor" 0 "${X[@]}" -o monitor
check "fence_xvm null is a failure" 1 "${X[@]}" -o null -H vm-alpha
check "unknown domain is never off" 1 "${X[@]}" -o status -H vm-missing
check "off of an unknown domain fails" 1 "${X[@]}" -o off -H vm-missing
logged "engine records fence_xvm requests" '"type":"request".*"requester":"fence_xvm [^"]*".*"key":"guests","action":"off","target":"vm-alpha"'
check "host list records are zero-filled" 0 "${P[@]}" mcast --key "$VG_IT/fence_xvm.key" --op list
expect_out "list answer ends with the trailing byte" "^response 253 trailing"
if grep -q NOT-ZERO-FILLED <<<"$OUT"; then VG_FAILS=$((VG_FAILS + 1)); log "FAIL host records carry garbage"; fi

# ---- Debian's fence_virt over TCP ----
check "fence_virt -T status" 0 "${T[@]}" -o status -H vm-beta
check "fence_virt -T off" 0 "${T[@]}" -o off -H vm-beta
expect_state "tcp off took effect" vm-beta "shut off"
check "fence_virt -T status after off" 2 "${T[@]}" -o status -H vm-beta
check "fence_virt -T on" 0 "${T[@]}" -o on -H vm-beta
check "fence_virt -T list" 0 "${T[@]}" -o list
expect_out "tcp list" "^vm-beta +$BETA on"

# ---- fence_virt over vsock, where the kernel allows a local connection ----
if CID=$("$VG_BIN/xvm_peer" vsock-cid 2>/dev/null) && ! grep -q "no vsock support" "$VG_IT/vguardd.$VGRUNS.out"; then
  set +e
  VOUT=$(timeout 10 fence_virt -k "$VG_IT/fence_xvm.key" -S"$CID" -p "$VPORT" -t 5 -o status -H vm-beta 2>&1); vrc=$?
  set -e
  if [ "$vrc" = 0 ]; then
    VG_PASSES=$((VG_PASSES + 1)); log "ok   fence_virt -S$CID status over vsock"
    check "fence_virt vsock off" 0 timeout 10 fence_virt -k "$VG_IT/fence_xvm.key" -S"$CID" -p "$VPORT" -t 5 -o off -H vm-beta
    check "fence_virt vsock on" 0 timeout 10 fence_virt -k "$VG_IT/fence_xvm.key" -S"$CID" -p "$VPORT" -t 5 -o on -H vm-beta
  else
    log "SKIP vsock part: this kernel cannot connect to its own CID $CID (no vsock loopback transport): rc $vrc: $VOUT"
  fi
else
  log "SKIP vsock part: the kernel has no vsock"
fi

# ---- refusals: nothing changes, and each is in the forensic log ----
check "wrong key gets no answer" 1 "${IN[@]}" fence_xvm -k "$VG_IT/wrong.key" -t 3 -o off -H vm-beta
expect_state "wrong key changed nothing" vm-beta running
logged "wrong key logged" '"type":"refused".*"listener":"fence_xvm".*does not verify with any key'
check "sha1 below the sha256 minimum" 1 "${X[@]}" -t 3 -c sha1 -o off -H vm-beta
expect_state "weak hash changed nothing" vm-beta running
logged "weak hash logged" '"type":"refused".*hash sha1 is weaker than the configured minimum sha256'
check "wrong key over tcp" 1 "${IN[@]}" fence_virt -k "$VG_IT/wrong.key" -T 127.0.0.1 -p 1230 -t 3 -o off -H vm-beta
logged "tcp wrong key logged" '"type":"refused".*"listener":"fence_virt_tcp".*does not verify'

check "domain outside the key's allow set" 3 "${X[@]}" -o off -H other-1
expect_out "permission denied printed" "Permission denied"
expect_state "other-1 untouched" other-1 running
logged "denial logged" '"type":"outcome".*"action":"off","domain":"other-1".*"result":"denied"'

check "truncated 175-byte datagram: no callback" 10 "${P[@]}" mcast --key "$VG_IT/fence_xvm.key" --op off --domain vm-beta --truncate 175 --wait 3
expect_state "truncated datagram changed nothing" vm-beta running
logged "truncated datagram logged" '"type":"refused".*datagram of 175 bytes'
check "truncated stream request: closed unanswered" 10 "${P[@]}" tcp --key "$VG_IT/fence_xvm.key" --port 1230 --op off --domain vm-beta --truncate 175 --wait 8
logged "truncated stream logged" '"type":"refused".*truncated request: 175 of 176 bytes'

# A captured packet, replayed byte for byte.
check "signed off (captured)" 0 "${P[@]}" mcast --key "$VG_IT/fence_xvm.key" --op off --domain vm-beta --save "$VG_IT/captured.pkt"
expect_out "captured request executed" "^response 0"
expect_state "captured request took effect" vm-beta "shut off"
check "vm-beta on again" 0 "${X[@]}" -o on -H vm-beta
before=$(count '"type":"refused".*replayed packet')
check "replay at once: no callback" 10 "${P[@]}" mcast --key "$VG_IT/fence_xvm.key" --packet "$VG_IT/captured.pkt" --wait 3
expect_state "replay at once changed nothing" vm-beta running
check "replay over tcp: closed unanswered" 10 "${P[@]}" tcp --key "$VG_IT/fence_xvm.key" --port 1230 --packet "$VG_IT/captured.pkt" --wait 3
log "waiting 11 s (fence_virtd forgets a request after 10 s)"
sleep 11
check "replay after 11 s: no callback" 10 "${P[@]}" mcast --key "$VG_IT/fence_xvm.key" --packet "$VG_IT/captured.pkt" --wait 3
expect_state "replay after 11 s changed nothing" vm-beta running
stop_pid "$VGPID"
start_vguardd
check "replay after a vguardd restart: no callback" 10 "${P[@]}" mcast --key "$VG_IT/fence_xvm.key" --packet "$VG_IT/captured.pkt" --wait 3
expect_state "replay after restart changed nothing" vm-beta running
after=$(count '"type":"refused".*replayed packet')
if [ "$((after - before))" -ge 4 ]; then VG_PASSES=$((VG_PASSES + 1)); log "ok   every replay logged ($((after - before)))"
else VG_FAILS=$((VG_FAILS + 1)); log "FAIL replays logged: $((after - before)), want 4"; fi

# Duplicate suppression: the same (op, seqno, domain) re-signed within 10 s is dropped silently.
check "first copy served" 0 "${P[@]}" mcast --key "$VG_IT/fence_xvm.key" --op status --domain vm-beta --seqno 777
check "second copy (re-signed, same seqno) dropped" 10 "${P[@]}" mcast --key "$VG_IT/fence_xvm.key" --op status --domain VM-BETA --seqno 777 --wait 3

# ---- serial listener: the guest is the requester; its group decides ----
check "serial: vm-alpha may act on vm-beta" 0 "${P[@]}" serial --socket "$VG_IT/serial/vm-alpha.sock" --op status --domain vm-beta --wait 10
expect_out "serial answer on" "^response 0"
check "serial: vm-alpha may not act on other-1" 0 "${P[@]}" serial --socket "$VG_IT/serial/vm-alpha.sock" --op off --domain other-1 --seqno 4343 --wait 10
expect_out "serial permission denied" "^response 3"
check "serial: other-1 is in no group" 0 "${P[@]}" serial --socket "$VG_IT/serial/other-1.sock" --op off --domain vm-beta --seqno 4444 --wait 10
expect_out "serial requester outside the groups refused" "^response 3"
# Debian's fence_virt in vmchannel mode (TCP to channel_address:ipport, as through QEMU's guestfwd), bridged
# to vm-alpha's socket.
vmchannel() {  # OP: one fence_virt call through a fresh bridge
  local name="bridge.$1.$RANDOM"
  start_bg "$name" "${P[@]}" bridge --socket "$VG_IT/serial/vm-alpha.sock" --tcp-port 1240 --wait 15
  wait_for 15 grep -q ready "$VG_IT/$name.out" || { log "bridge not connected:"; cat "$VG_IT/$name.out" >&2; return 1; }
  "${IN[@]}" fence_virt -A 127.0.0.1 -p 1240 -t 5 -o "$1" -H "$2"
}
check "fence_virt vmchannel status" 0 vmchannel status vm-beta
expect_out "vmchannel Status: ON" "Status: ON"
check "fence_virt vmchannel off" 0 vmchannel off vm-beta
expect_state "vmchannel off took effect" vm-beta "shut off"
check "fence_virt vmchannel on" 0 vmchannel on vm-beta
check "fence_virt vmchannel: outside the group" 3 vmchannel off other-1
expect_state "serial refusals changed nothing" vm-beta running
expect_state "other-1 still untouched" other-1 running
logged "serial refusal logged" '"type":"refused".*"listener":"fence_virt_serial".*in no \[fence_virt_serial\] group'

# ---- an IPv6 group on a chosen interface: a veth pair created inside the test's namespace ----
stop_pid "$VGPID"
ip -n "$NS" link add xva type veth peer name xvb
ip -n "$NS" link set xva up
ip -n "$NS" link set xvb up
ip -n "$NS" addr add fd00:77::1/64 dev xva nodad   # fence_xvm sends from global IPv6 addresses only
sed -i -e 's/^multicast_address = 225.0.0.12$/multicast_address = ff05::3:1/' -e 's/^interface = lo$/interface = xva/' \
  "$VG_IT/vguard.conf"
start_vguardd
X6=("${IN[@]}" fence_xvm -k "$VG_IT/fence_xvm.key" -a ff05::3:1 -t 3)
wait_for 10 "${X6[@]}" -o monitor || log "IPv6 monitor did not answer within 10 s"
check "IPv6 group: status" 0 "${X6[@]}" -o status -H vm-beta
check "IPv6 group: off" 0 "${X6[@]}" -o off -H vm-beta
expect_state "IPv6 off took effect" vm-beta "shut off"
check "IPv6 group: on" 0 "${X6[@]}" -o on -H vm-beta
check "IPv6 group: list" 0 "${X6[@]}" -o list
expect_out "IPv6 list" "^vm-beta +$BETA on"
logged "IPv6 callback recorded" '"requester":"fence_xvm [^"]* callback \[fd00:77::1\]:1229'

check "forensic log verifies" 0 "$VG_BIN/vguardctl" log verify --file "$VG_IT/forensic.log"
finish
