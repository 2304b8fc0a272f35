#!/usr/bin/env bash
# vguardd (libvirt test driver) + the real fence_vguard over loopback: every action by name and UUID, via
# command line and stdin, wrong key, denied domain, unknown domain, daemon unreachable; then the forensic
# log must verify. Runs in a private network namespace when root, else on the root namespace's loopback.
source "$(dirname "$0")/lib.sh"
need_cmd "$VG_BIN/vguardd" "$VG_BIN/fence_vguard" "$VG_BIN/vguardctl"

RUN=()
PORT=$((20000 + $$ % 20000))
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
  make_netns agent
  RUN=(ip netns exec "$NS")
  PORT=1231
fi
ALPHA=11111111-1111-1111-1111-111111111111
GAMMA=33333333-3333-3333-3333-333333333333

"$VG_BIN/vguardctl" keygen --out "$VG_IT/guest.key" >/dev/null
"$VG_BIN/vguardctl" keygen --out "$VG_IT/wrong.key" >/dev/null
write_vguard_conf "$VG_IT/vguard.conf" "test://$VG_SRC/tests/data/libvirt/testnode.xml" "$VG_IT/vguardd.sock" \
  "$VG_IT/forensic.log" "127.0.0.1:$PORT" "$VG_IT/guest.key" "vm-alpha" "$GAMMA" "vm-missing*"
start_bg vguardd "${RUN[@]}" "$VG_BIN/vguardd" --config "$VG_IT/vguard.conf"
wait_for 10 "${RUN[@]}" "$VG_BIN/fence_vguard" -k "$VG_IT/guest.key" -p "$PORT" -o monitor || { cat "$VG_IT/vguardd.out"; exit 1; }

A=("${RUN[@]}" "$VG_BIN/fence_vguard" -k "$VG_IT/guest.key" -T 127.0.0.1 -p "$PORT")
check "list" 0 "${A[@]}" -o list
expect_out "list shows allowed domains only" "^vm-alpha +$ALPHA on"
if grep -q vm-beta <<<"$OUT"; then VG_FAILS=$((VG_FAILS+1)); log "FAIL list leaks vm-beta"; fi
check "status by name (on)" 0 "${A[@]}" -o status -n vm-alpha
expect_out "Status: ON printed" "Status: ON"
check "status by uuid of shut-off domain" 2 "${A[@]}" -o status -n "$GAMMA"
expect_out "Status: OFF printed" "Status: OFF"
check "off by name" 0 "${A[@]}" -o off -n vm-alpha
check "status after off" 2 "${A[@]}" -o status -n vm-alpha
check "on by uuid" 0 "${A[@]}" -o on -n "$ALPHA" -u
check "status after on" 0 "${A[@]}" -o status -n "$ALPHA"
check "reboot by name" 0 "${A[@]}" -o reboot -n vm-alpha
check "status after reboot" 0 "${A[@]}" -o status -n vm-alpha
check "reboot of an off domain does not start it" 0 "${A[@]}" -o reboot -n "$GAMMA"
check "still off" 2 "${A[@]}" -o status -n "$GAMMA"

# Pacemaker's way: no arguments, key=value lines on stdin.
stdin_run() { printf '%s\n' "$@" | "${RUN[@]}" "$VG_BIN/fence_vguard"; }
check "stdin off" 0 stdin_run "action=off" "plug=vm-alpha" "key_file=$VG_IT/guest.key" "ipport=$PORT" "nodename=guest1"
check "stdin status off" 2 stdin_run "action=status" "port=vm-alpha" "key_file=$VG_IT/guest.key" "ipport=$PORT"
check "stdin on" 0 stdin_run "action=on" "plug=vm-alpha" "key_file=$VG_IT/guest.key" "ipport=$PORT"

# Refusals: each a clear error, nothing changed.
check "denied domain" 3 "${A[@]}" -o off -n vm-beta
expect_out "permission denied named" "[Pp]ermission denied"
check "unknown domain is not off" 1 "${A[@]}" -o status -n vm-missing-1
expect_out "unknown domain named" "no domain 'vm-missing-1'"
check "wrong key" 1 "${RUN[@]}" "$VG_BIN/fence_vguard" -k "$VG_IT/wrong.key" -p "$PORT" -o off -n vm-alpha
expect_out "wrong key explained" "not configured"
check "missing key file" 1 "${RUN[@]}" "$VG_BIN/fence_vguard" -k "$VG_IT/nokey" -p "$PORT" -o off -n vm-alpha
expect_out "missing key file named" "nokey"
check "daemon unreachable" 1 "${RUN[@]}" "$VG_BIN/fence_vguard" -k "$VG_IT/guest.key" -p 9 -o status -n vm-alpha -t 3
check "vm-alpha untouched by refusals" 0 "${A[@]}" -o status -n vm-alpha
check "vm-beta untouched" 0 "${RUN[@]}" "$VG_BIN/vguardctl" status --socket "$VG_IT/vguardd.sock"
expect_out "vm-beta still running" "vm-beta +22222222-2222-2222-2222-222222222222 +running"

# The forensic log holds every request and verifies.
check "log verify" 0 "$VG_BIN/vguardctl" log verify --file "$VG_IT/forensic.log"
check "log show domain filter" 0 "$VG_BIN/vguardctl" log show --file "$VG_IT/forensic.log" --domain vm-alpha
expect_out "off outcome logged" "outcome.*action=off"
check "log has refusals" 0 grep -c '"type":"refused"' "$VG_IT/forensic.log"
finish
