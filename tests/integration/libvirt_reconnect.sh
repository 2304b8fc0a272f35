#!/usr/bin/env bash
# vguardd against a real libvirtd (serving the test driver over its Unix socket): domain changes made by
# another libvirt client reach vguardd as events; when libvirtd goes away every state is unknown (never
# "off") and fences fail with the reason; when libvirtd is back, vguardd reconnects and lists again.
source "$(dirname "$0")/lib.sh"
need_root
need_cmd libvirtd virsh unshare "$VG_BIN/vguardd" "$VG_BIN/fence_vguard" "$VG_BIN/vguardctl"

start_libvirtd lv1
URI="test+unix:///default?socket=$LV_SOCK"
"$VG_BIN/vguardctl" keygen --out "$VG_IT/guest.key" >/dev/null
write_vguard_conf "$VG_IT/vguard.conf" "$URI" "$VG_IT/vguardd.sock" "$VG_IT/forensic.log" "" "$VG_IT/guest.key" "test"
sed -i 's/^log_level = debug$/log_level = debug\nreconnect_interval = 1/' "$VG_IT/vguard.conf"
start_bg vguardd "$VG_BIN/vguardd" --config "$VG_IT/vguard.conf"
A=("$VG_BIN/fence_vguard" -k "$VG_IT/guest.key" -U "$VG_IT/vguardd.sock" -t 5)
wait_for 20 "${A[@]}" -o monitor || { cat "$VG_IT/vguardd.out"; exit 1; }

check "status: running" 0 "${A[@]}" -o status -n test
# A change made by another client (virsh) arrives as a libvirt event; vguardd never polls.
virsh -q -c "$URI" destroy test >/dev/null
status_is() { local rc=0; "${A[@]}" -o status -n test >/dev/null 2>&1 || rc=$?; [ "$rc" = "$1" ]; }
check "event from another client reached vguardd" 0 wait_for 5 status_is 2
check "status after virsh destroy" 2 "${A[@]}" -o status -n test
virsh -q -c "$URI" start test >/dev/null
check "start event reached vguardd" 0 wait_for 5 status_is 0
check "status after virsh start" 0 "${A[@]}" -o status -n test

log "stopping libvirtd (PID $LV_PID)"
stop_pid "$LV_PID"
check "loss noticed" 0 wait_for 10 status_is 1
check "libvirt down: status is a failure, not off" 1 "${A[@]}" -o status -n test
expect_out "reason named" "libvirt connection is down"
check "libvirt down: off fails" 1 "${A[@]}" -o off -n test
check "libvirt down: vguardctl status fails" 1 "$VG_BIN/vguardctl" status --socket "$VG_IT/vguardd.sock"

start_libvirtd lv1
log "libvirtd restarted (PID $LV_PID)"
check "reconnected and listed again" 0 wait_for 15 "${A[@]}" -o status -n test
check "off works again" 0 "${A[@]}" -o off -n test
check "status off" 2 "${A[@]}" -o status -n test
check "log records the loss" 0 grep -q '"event":"lost"' "$VG_IT/forensic.log"
check "log verify" 0 "$VG_BIN/vguardctl" log verify --file "$VG_IT/forensic.log"
finish
