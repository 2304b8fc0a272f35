#!/usr/bin/env bash
# fence_vguard in protocol xvm against Debian's unmodified fence_virtd (libvirt backend on libvirt's test
# driver), inside a private network namespace (loopback only; the multicast route exists only in there):
# - multicast listener: list (byte-identical to the real fence_xvm's), status, off, status (exit 2), on, reboot,
#   monitor, by name and by UUID; the protocol chosen by -m, --protocol, stdin protocol= and the program name
#   fence_xvm; the real fence_xvm sees the state fence_vguard left; wrong key, hash weaker than fence_virtd's
#   minimum and a different auth type fail; timeout shorter than retrans ends (fence_xvm loops forever);
# - IPv6 multicast listener (ff05::3:1 on a veth pair inside the namespace): list, off, status, on;
# - tcp listener (another fence_virtd, with a static map): the same actions in TCP mode (-T), permission
#   denied (exit 3), wrong key.
# Skipped (77) without root, ip, or fence_virtd and its plugins.
source "$(dirname "$0")/lib.sh"
need_root
need_cmd ip fence_virtd timeout "$VG_BIN/fence_vguard"
MODDIR=""
for d in /usr/lib/x86_64-linux-gnu/fence-virt /usr/lib64/fence-virt /usr/lib/fence-virt; do
  [ -f "$d/multicast.so" ] && [ -f "$d/tcp.so" ] && [ -f "$d/virt.so" ] && { MODDIR=$d; break; }
done
[ -n "$MODDIR" ] || { echo "SKIP: fence_virtd plugins (multicast.so, tcp.so, virt.so) not found"; exit 77; }
HAVE_XVM=0; command -v fence_xvm >/dev/null 2>&1 && HAVE_XVM=1

make_netns xvm
ip -n "$NS" link set lo multicast on
ip -n "$NS" route add 224.0.0.0/4 dev lo   # inside this namespace only
# IPv6 multicast does not work on lo: a veth pair, both ends created inside the namespace, with a global address
# (fence_xvm sends from every IPv6 address but ::1 and link-local ones) and the ff05::/16 route on it.
ip -n "$NS" link add v0 type veth peer name v1
ip -n "$NS" link set v1 up
ip -n "$NS" link set v0 up
ip -n "$NS" addr add fd00:77::1/64 dev v0 nodad
ip -n "$NS" -6 route add ff05::/16 dev v0
RUN=(ip netns exec "$NS")

A_UUID=aaaaaaaa-1111-4111-8111-000000000001
B_UUID=bbbbbbbb-2222-4222-8222-000000000002
C_UUID=cccccccc-3333-4333-8333-000000000003
node_xml "$VG_IT/node.xml" "vm-a:$A_UUID:running" "vm-b:$B_UUID:running" "vm-c:$C_UUID:shutoff"
dd if=/dev/urandom of="$VG_IT/fence_xvm.key" bs=4096 count=1 status=none
dd if=/dev/urandom of="$VG_IT/wrong.key" bs=4096 count=1 status=none
chmod 600 "$VG_IT/fence_xvm.key" "$VG_IT/wrong.key"
KEY=$VG_IT/fence_xvm.key
TCP_PORT=12290

# fence_virt.conf values must be double-quoted and cannot contain escapes: $VG_IT (mktemp) has none.
cat >"$VG_IT/mcast.conf" <<CONF
fence_virtd {
	listener = "multicast";
	backend = "libvirt";
	module_path = "$MODDIR";
}
listeners {
	multicast {
		key_file = "$KEY";
		address = "225.0.0.12";
		port = "1229";
		family = "ipv4";
		interface = "lo";
	}
}
backends {
	libvirt {
		uri = "test://$VG_IT/node.xml";
	}
}
CONF
# The tcp instance has its own copy of the test driver's state, and a static map: 127.0.0.1 may act on vm-a
# (by name or UUID) and vm-c only.
cat >"$VG_IT/tcp.conf" <<CONF
fence_virtd {
	listener = "tcp";
	backend = "libvirt";
	module_path = "$MODDIR";
}
listeners {
	tcp {
		key_file = "$KEY";
		address = "127.0.0.1";
		port = "$TCP_PORT";
		family = "ipv4";
	}
}
backends {
	libvirt {
		uri = "test://$VG_IT/node.xml";
	}
}
groups {
	group {
		name = "guests";
		ip = "127.0.0.1";
		uuid = "vm-a";
		uuid = "$A_UUID";
		uuid = "vm-c";
	}
}
CONF

# A third instance: the IPv6 multicast listener (family ipv6, group ff05::3:1, port 1230).
sed -e 's/address = "225.0.0.12";/address = "ff05::3:1";/' -e 's/port = "1229";/port = "1230";/' \
    -e 's/family = "ipv4";/family = "ipv6";/' -e 's/interface = "lo";/interface = "v0";/' \
    "$VG_IT/mcast.conf" >"$VG_IT/mcast6.conf"

start_bg fence_virtd-mcast "${RUN[@]}" fence_virtd -F -w -d 2 -f "$VG_IT/mcast.conf" -p "$VG_IT/fv-mcast.pid"
start_bg fence_virtd-tcp "${RUN[@]}" fence_virtd -F -w -d 2 -f "$VG_IT/tcp.conf" -p "$VG_IT/fv-tcp.pid"
start_bg fence_virtd-mcast6 "${RUN[@]}" fence_virtd -F -w -d 2 -f "$VG_IT/mcast6.conf" -p "$VG_IT/fv-mcast6.pid"

X=("${RUN[@]}" "$VG_BIN/fence_vguard" -m xvm -k "$KEY" -t 5)
T=("${RUN[@]}" "$VG_BIN/fence_vguard" -m xvm -k "$KEY" -t 5 -T 127.0.0.1 -p "$TCP_PORT")
if ! wait_for 15 "${X[@]}" -o monitor || ! wait_for 15 "${T[@]}" -o monitor; then
  log "fence_virtd did not answer:"; tail -20 "$VG_IT"/fence_virtd-*.out >&2; exit 1
fi

# ---- multicast ----
check "mcast list" 0 "${X[@]}" -o list
expect_out "mcast list: vm-a on" "^vm-a +$A_UUID on\$"
expect_out "mcast list: vm-c off" "^vm-c +$C_UUID off\$"
expect_out "mcast list: %-32s layout" "^vm-b {29}$B_UUID on\$"
if [ "$HAVE_XVM" = 1 ]; then
  ours=$OUT
  check "real fence_xvm list" 0 "${RUN[@]}" fence_xvm -k "$KEY" -o list -t 5
  if [ "$ours" = "$OUT" ]; then VG_PASSES=$((VG_PASSES + 1)); log "ok   list output identical to fence_xvm's"
  else VG_FAILS=$((VG_FAILS + 1)); log "FAIL list output differs from fence_xvm's:"; diff <(echo "$ours") <(echo "$OUT") >&2; fi
fi
check "mcast list-status" 0 "${X[@]}" -o list-status
expect_out "mcast list-status lists vm-a" "^vm-a +$A_UUID on\$"
check "mcast status vm-a" 0 "${X[@]}" -o status -n vm-a
expect_out "Status: ON" "^Status: ON\$"
check "mcast status vm-c (shut off)" 2 "${X[@]}" -o status -n vm-c
expect_out "Status: OFF" "^Status: OFF\$"
check "mcast off vm-a" 0 "${X[@]}" -o off -n vm-a
check "mcast status after off" 2 "${X[@]}" -o status -n vm-a
if [ "$HAVE_XVM" = 1 ]; then
  check "real fence_xvm sees vm-a off" 2 "${RUN[@]}" fence_xvm -k "$KEY" -o status -H vm-a -t 5
fi
check "mcast on vm-a by UUID (-u)" 0 "${X[@]}" -o on -n "$A_UUID" -u
check "mcast status after on" 0 "${X[@]}" -o status -n vm-a
check "mcast reboot vm-b" 0 "${X[@]}" -o reboot -n vm-b
check "mcast status after reboot" 0 "${X[@]}" -o status -n vm-b
check "mcast reboot of a shut-off domain" 0 "${X[@]}" -o reboot -n vm-c
check "mcast it stays off" 2 "${X[@]}" -o status -n vm-c
check "mcast monitor" 0 "${X[@]}" -o monitor
check "mcast off of an unknown domain fails" 1 "${X[@]}" -o off -n no-such-vm
expect_out "Operation failed" "^Operation failed\$"
check "mcast sha512 packet hash (stronger than the minimum)" 0 "${X[@]}" -c sha512 -o status -n vm-a

# The protocol switch: --protocol, stdin protocol=, and the program name fence_xvm (as the reference).
check "--protocol=xvm" 0 "${RUN[@]}" "$VG_BIN/fence_vguard" --protocol=xvm -k "$KEY" -t 5 -o status -n vm-a
stdin_run() { printf '%s\n' "$@" | "${RUN[@]}" "$VG_BIN/fence_vguard"; }
check "stdin protocol=xvm off" 0 stdin_run "protocol=xvm" "action=off" "plug=vm-a" "key_file=$KEY" "timeout=5" "nodename=n1"
check "stdin protocol=xvm status" 2 stdin_run "protocol=xvm" "action=status" "port=vm-a" "key_file=$KEY" "timeout=5"
check "stdin protocol=xvm on" 0 stdin_run "protocol=xvm" "action=on" "plug=vm-a" "key_file=$KEY" "multicast_address=225.0.0.12" "ipport=1229" "retrans=5" "hash=sha256" "auth=sha256" "ip_family=ipv4"
ln -s "$VG_BIN/fence_vguard" "$VG_IT/fence_xvm"
check "invoked as fence_xvm" 0 "${RUN[@]}" "$VG_IT/fence_xvm" -k "$KEY" -t 5 -o status -H vm-a
expect_out "invoked as fence_xvm: Status: ON" "^Status: ON\$"
check "invoked as fence_xvm, protocol=vguard wins" 1 "${RUN[@]}" "$VG_IT/fence_xvm" -m vguard -k "$KEY" -t 2 -o status -H vm-a

# Failures: never success, never "off".
check "mcast wrong key" 1 "${RUN[@]}" "$VG_BIN/fence_vguard" -m xvm -k "$VG_IT/wrong.key" -t 3 -o status -n vm-a
expect_out "wrong key: timed out" "Timed out waiting for response"
check "mcast hash below fence_virtd's minimum" 1 "${X[@]}" -t 3 -c sha1 -o status -n vm-a
check "mcast other auth type" 1 "${X[@]}" -C sha512 -o status -n vm-a
expect_out "auth mismatch named" "Invalid response to challenge"
check "missing key file, no unsigned fallback" 1 "${RUN[@]}" "$VG_BIN/fence_vguard" -m xvm -k "$VG_IT/nokey" -o status -n vm-a
expect_out "missing key file named" "Invalid key file: '$VG_IT/nokey'"
start=$(date +%s)
check "timeout*10 < retrans ends (fence_xvm loops forever)" 1 timeout 20 "${RUN[@]}" "$VG_BIN/fence_vguard" -m xvm -k "$KEY" -p 1300 -t 1 -r 20 -o status -n vm-a
took=$(( $(date +%s) - start ))
if [ "$took" -le 4 ]; then VG_PASSES=$((VG_PASSES + 1)); log "ok   ended after ${took} s"
else VG_FAILS=$((VG_FAILS + 1)); log "FAIL took ${took} s"; fi
check "vm-a still on after the refusals" 0 "${X[@]}" -o status -n vm-a

# ---- IPv6 multicast ----
X6=("${RUN[@]}" "$VG_BIN/fence_vguard" -m xvm -k "$KEY" -t 5 -i ipv6 -p 1230)
wait_for 15 "${X6[@]}" -o monitor || { log "IPv6 fence_virtd did not answer:"; tail -20 "$VG_IT/fence_virtd-mcast6.out" >&2; }
check "mcast6 list" 0 "${X6[@]}" -o list
expect_out "mcast6 list: vm-a" "^vm-a +$A_UUID on\$"
check "mcast6 off vm-c (already off)" 0 "${X6[@]}" -o off -n vm-c
check "mcast6 off vm-a" 0 "${X6[@]}" -o off -n vm-a
check "mcast6 status after off" 2 "${X6[@]}" -o status -n vm-a
check "mcast6 on vm-a (group given, family auto)" 0 "${RUN[@]}" "$VG_BIN/fence_vguard" -m xvm -k "$KEY" -t 5 -a ff05::3:1 -p 1230 -o on -n vm-a
check "mcast6 status after on" 0 "${X6[@]}" -o status -n vm-a
if [ "$HAVE_XVM" = 1 ]; then
  check "real fence_xvm over IPv6 agrees" 0 "${RUN[@]}" fence_xvm -k "$KEY" -t 5 -i ipv6 -p 1230 -o status -H vm-a
fi

# ---- TCP mode (-T) ----
check "tcp list (filtered by the static map)" 0 "${T[@]}" -o list
expect_out "tcp list: vm-a" "^vm-a +$A_UUID on\$"
if grep -q vm-b <<<"$OUT"; then VG_FAILS=$((VG_FAILS + 1)); log "FAIL tcp list shows vm-b"; fi
check "tcp status vm-a" 0 "${T[@]}" -o status -n vm-a
check "tcp off vm-a" 0 "${T[@]}" -o off -n vm-a
check "tcp status after off" 2 "${T[@]}" -o status -n vm-a
expect_out "tcp Status: OFF" "^Status: OFF\$"
check "tcp on vm-a by UUID" 0 "${T[@]}" -o on -n "$A_UUID" -u
check "tcp status after on" 0 "${T[@]}" -o status -n vm-a
check "tcp reboot vm-a" 0 "${T[@]}" -o reboot -n vm-a
check "tcp monitor" 0 "${T[@]}" -o monitor
check "tcp permission denied (vm-b not in the map)" 3 "${T[@]}" -o off -n vm-b
expect_out "Permission denied" "^Permission denied\$"
check "tcp stdin ipaddr= selects TCP mode" 0 stdin_run "protocol=xvm" "action=status" "plug=vm-a" "key_file=$KEY" "ipaddr=127.0.0.1" "ipport=$TCP_PORT"
check "tcp wrong key" 1 "${RUN[@]}" "$VG_BIN/fence_vguard" -m xvm -k "$VG_IT/wrong.key" -t 5 -T 127.0.0.1 -p "$TCP_PORT" -o off -n vm-a
check "tcp nothing listening" 1 "${RUN[@]}" "$VG_BIN/fence_vguard" -m xvm -k "$KEY" -t 3 -T 127.0.0.1 -p 9 -o status -n vm-a
check "tcp vm-a untouched by the refusals" 0 "${T[@]}" -o status -n vm-a

finish
