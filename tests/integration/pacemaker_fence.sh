#!/usr/bin/env bash
# Pacemaker's fencer through fence_vguard: pacemaker-fenced -s (stand-alone) and stonith_admin in a private
# network namespace, fence_vguard installed as /usr/sbin/fence_vguard (removed at teardown), vguardd on the
# libvirt test driver. stonith_admin --fence must destroy the domain; metadata and validate must succeed.
source "$(dirname "$0")/lib.sh"
need_root
need_cmd ip stonith_admin /usr/lib/pacemaker/pacemaker-fenced "$VG_BIN/vguardd" "$VG_BIN/fence_vguard"

AGENT=/usr/sbin/fence_vguard
if [ -e "$AGENT" ] && ! cmp -s "$AGENT" "$VG_BIN/fence_vguard"; then
  # An installed fence_vguard of another build: keep it and put it back afterwards.
  cp -a "$AGENT" "$VG_IT/fence_vguard.saved"
  VG_CLEANUP+=("cp -a '$VG_IT/fence_vguard.saved' '$AGENT'")
elif [ ! -e "$AGENT" ]; then
  VG_CLEANUP+=("rm -f '$AGENT'")
fi
install -m 0755 "$VG_BIN/fence_vguard" "$AGENT"

make_netns pcmk
IN=(ip netns exec "$NS")
"$VG_BIN/vguardctl" keygen --out "$VG_IT/guest.key" >/dev/null
write_vguard_conf "$VG_IT/vguard.conf" "test://$VG_SRC/tests/data/libvirt/testnode.xml" "$VG_IT/vguardd.sock" \
  "$VG_IT/forensic.log" "127.0.0.1:1231" "$VG_IT/guest.key" "vm-*"
start_bg vguardd "${IN[@]}" "$VG_BIN/vguardd" --config "$VG_IT/vguard.conf"
wait_for 10 "${IN[@]}" "$AGENT" -k "$VG_IT/guest.key" -o monitor || { cat "$VG_IT/vguardd.out"; exit 1; }

# Discovery, metadata and validation need no fencer.
check "stonith_admin --metadata" 0 "${IN[@]}" stonith_admin --metadata -a fence_vguard
expect_out "metadata names the agent" 'resource-agent name="fence_vguard"'
check "stonith_admin --validate" 0 "${IN[@]}" stonith_admin --validate -a fence_vguard -o "key_file=$VG_IT/guest.key"
check "stonith_admin --validate with a missing key file fails" 1 "${IN[@]}" stonith_admin --validate -a fence_vguard -o key_file=/nonexistent/key
expect_out "missing key file named" "/nonexistent/key"

# The fencer, stand-alone: its IPC is an abstract socket, so it is private to the namespace.
start_bg fenced "${IN[@]}" /usr/lib/pacemaker/pacemaker-fenced -s -l "$VG_IT/fenced.log"
wait_for 15 "${IN[@]}" stonith_admin -L || { cat "$VG_IT/fenced.out"; exit 1; }
check "register device" 0 "${IN[@]}" stonith_admin -R vg1 -a fence_vguard -o "key_file=$VG_IT/guest.key" \
  -o "pcmk_host_map=guestnode1:vm-alpha;guestnode2:vm-beta" -o "pcmk_host_list=guestnode1 guestnode2"
check "status before" 0 "$VG_BIN/vguardctl" status --socket "$VG_IT/vguardd.sock"
expect_out "vm-alpha running before" "vm-alpha +11111111-1111-1111-1111-111111111111 +running"
check "stonith_admin --fence guestnode1" 0 "${IN[@]}" stonith_admin --fence guestnode1 -t 30
check "status after" 0 "$VG_BIN/vguardctl" status --socket "$VG_IT/vguardd.sock"
expect_out "vm-alpha shut off by the fence" "vm-alpha +11111111-1111-1111-1111-111111111111 +shut off"
expect_out "vm-beta untouched" "vm-beta +22222222-2222-2222-2222-222222222222 +running"
check "fence of an unmapped node fails" 105 "${IN[@]}" stonith_admin --fence nodeZ -t 5
check "forensic log records the fence" 0 grep -q '"action":"reboot".*"result":"success"\|"action":"off".*"result":"success"' "$VG_IT/forensic.log"
check "log verify" 0 "$VG_BIN/vguardctl" log verify --file "$VG_IT/forensic.log"
finish
