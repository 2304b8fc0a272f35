#!/bin/sh
# Usage: agent_cli.sh <fence_vguard> <case>
# Runs the real fence_vguard binary (command line or stdin) in cases that need no vguardd and checks its exit
# code, stdout and stderr.
agent=$1
case_name=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
out=$dir/out
err=$dir/err
missing=$dir/no-such.key
key=$dir/good.key
printf '0123456789abcdef0123456789abcdef' >"$key"

fail() { echo "FAIL ($case_name): $*"; echo "--- stdout"; cat "$out"; echo "--- stderr"; cat "$err"; exit 1; }
expect_rc() { [ "$rc" -eq "$1" ] || fail "exit code $rc, expected $1"; }
expect_err() { grep -q -- "$1" "$err" || fail "stderr lacks '$1'"; }
expect_out() { grep -q -- "$1" "$out" || fail "stdout lacks '$1'"; }
expect_empty() { [ ! -s "$1" ] || fail "$1 is not empty"; }
run() { "$agent" "$@" >"$out" 2>"$err"; rc=$?; }
# run_stdin <printf format> [args]: the agent without arguments, reading the formatted text on stdin.
run_stdin() { fmt=$1; shift; printf "$fmt" "$@" >"$dir/in"; "$agent" <"$dir/in" >"$out" 2>"$err"; rc=$?; }

case $case_name in
validate_missing_key_argv)
  run -o validate-all -n vm1 -k "$missing"
  expect_rc 1; expect_err "Invalid key file: '$missing'"; expect_empty "$out" ;;
validate_missing_key_stdin)
  run_stdin 'action=validate-all\nplug=vm1\nkey_file=%s\n' "$missing"
  expect_rc 1; expect_err "Invalid key file: '$missing'"; expect_empty "$out" ;;
validate_ok_argv)
  run -o validate-all -n vm1 -k "$key"
  expect_rc 0; expect_empty "$out"; expect_empty "$err" ;;
validate_ok_stdin)
  run_stdin 'action=validate-all\nport=vm1\nkey_file=%s\nnodename=node1\nauth=sha1\n' "$key"
  expect_rc 0; expect_empty "$out"; expect_empty "$err" ;;
validate_no_domain)
  # validate-all needs a target too (as in fence_xvm) and prints no usage.
  run -o validate-all -k "$key"
  expect_rc 1; expect_err "No domain specified!"; expect_empty "$out" ;;
unreachable_argv)
  run -o status -n vm1 -k "$key" -U /nonexistent/sock -t 5
  expect_rc 1; expect_err "/nonexistent/sock"; expect_err "^Operation failed$"; expect_empty "$out" ;;
unreachable_stdin)
  run_stdin 'action=off\nplug=vm1\nkey_file=%s\nunix_socket=/nonexistent/sock\ntimeout=5\n' "$key"
  expect_rc 1; expect_err "/nonexistent/sock"; expect_err "^Operation failed$"; expect_empty "$out" ;;
short_key)
  # A key file that exists but is too short is refused before any connection: no fallback to no key.
  printf 'short' >"$dir/short.key"
  run -o status -n vm1 -k "$dir/short.key" -U /nonexistent/sock
  expect_rc 1; expect_err "Invalid key file: '$dir/short.key'"
  if grep -q nonexistent "$err"; then fail "connected despite a bad key"; fi ;;
usage_error)
  run -o status -n vm1 -t 0
  expect_rc 1; expect_err "Invalid timeout: '0'"; expect_out "^usage: fence_vguard"; ;;
unknown_option)
  # fence_xvm exits 0 with the help text here; fence_vguard treats a typo as an error.
  run -o off -N vm1
  expect_rc 1; expect_err "invalid option -- 'N'"; expect_out "^usage: fence_vguard" ;;
stdin_unknown_key)
  run_stdin 'action=validate-all\nplug=vm1\nkey_file=%s\nbogus=1\n' "$key"
  expect_rc 0; expect_err "^Parse error: Ignoring unknown option 'bogus'$" ;;
version)
  run -V
  expect_rc 0; [ "$(cat "$out")" = "fence_vguard 0.1.0" ] || fail "version text" ;;
help)
  run -h
  expect_rc 0; expect_out "^usage: fence_vguard"; expect_out "^  key_file "; expect_out "^  -k <file> " ;;
metadata_stdin)
  run_stdin 'action=metadata\n'
  expect_rc 0; expect_out '<resource-agent name="fence_vguard"' ;;
null_op)
  run -o null -n vm1 -k "$key" -U /nonexistent/sock
  expect_rc 1; expect_err "^Operation failed$" ;;
stdin_blank_refused)
  # fence_xvm would cut "plug=my vm" to "my" and fence that domain; fence_vguard refuses the line.
  run_stdin 'action=validate-all\nplug=my vm\nkey_file=%s\n' "$key"
  expect_rc 1; expect_err "^Invalid value for 'plug': 'my vm' contains a blank or control character$" ;;
xvm_missing_key)
  # protocol xvm: no fallback to unsigned requests either.
  run -m xvm -o validate-all -n vm1 -k "$missing"
  expect_rc 1; expect_err "Invalid key file: '$missing'"; expect_empty "$out" ;;
xvm_hash_none_needs_no_key)
  # Only when both hash and auth are explicitly none is the key not needed.
  run -m xvm -c none -C none -o validate-all -n vm1 -k "$missing"
  expect_rc 0; expect_empty "$err"
  run -m xvm -c none -o validate-all -n vm1 -k "$missing"
  expect_rc 1; expect_err "Invalid key file" ;;
xvm_unix_socket_refused)
  run -m xvm -U /s -o validate-all -n vm1 -k "$key"
  expect_rc 1; expect_err "^unix_socket is only available with protocol vguard$" ;;
xvm_metadata_same)
  "$agent" -o metadata >"$dir/m1" 2>"$err"
  run -m xvm -o metadata
  expect_rc 0; cmp -s "$out" "$dir/m1" || fail "metadata differs with -m xvm" ;;
argv0_fence_xvm)
  # Invoked as fence_xvm (a symlink), the agent speaks fence_xvm's protocol, as fence_virt's argv[0] rule.
  ln -s "$agent" "$dir/fence_xvm"
  "$dir/fence_xvm" -d -o validate-all -n vm1 -k "$key" >"$out" 2>"$err"; rc=$?
  expect_rc 0; expect_err "^  protocol = xvm$"; expect_err "^  endpoint = multicast:225.0.0.12:1229 "
  "$dir/fence_xvm" -d -o validate-all -n vm1 -k "$key" -m vguard >"$out" 2>"$err"; rc=$?
  expect_rc 0; expect_err "^  protocol = vguard$"
  # The default key file is fence_xvm's.
  if [ ! -e /etc/cluster/fence_xvm.key ]; then
    "$dir/fence_xvm" -o validate-all -n vm1 >"$out" 2>"$err"; rc=$?
    expect_rc 1; expect_err "Invalid key file: '/etc/cluster/fence_xvm.key'"
  fi ;;
argv0_fence_virt)
  ln -s "$agent" "$dir/fence_virt"
  printf 'action=validate-all\nplug=vm1\ndebug=1\n' >"$dir/in"
  "$dir/fence_virt" <"$dir/in" >"$out" 2>"$err"; rc=$?
  # vmchannel carries no authentication: no key needed.
  expect_rc 0; expect_err "^  protocol = virt$"; expect_err "^  endpoint = vmchannel:10.0.2.179:1229$" ;;
xvm_vmchannel_unreachable)
  run -m virt -A 127.0.0.1 -p 9 -o status -n vm1 -t 3
  expect_rc 1; expect_err "^fence_virtd at vmchannel:127.0.0.1:9: "; expect_err "^Operation failed$"; expect_empty "$out" ;;
xvm_tcp_unreachable)
  run_stdin 'protocol=xvm\naction=status\nplug=vm1\nkey_file=%s\nipaddr=127.0.0.1\nipport=9\ntimeout=3\n' "$key"
  expect_rc 1; expect_err "^fence_virtd at tcp:127.0.0.1:9: "; expect_err "^Operation failed$"; expect_empty "$out" ;;
xvm_bad_multicast_address)
  run -m xvm -a 10.1.2.3 -o status -n vm1 -k "$key"
  expect_rc 1; expect_err "Not an IPv4 multicast address"; expect_out "^usage: fence_vguard" ;;
protocol_long_option)
  run --protocol=xvm -d -o validate-all -n vm1 -k "$key"
  expect_rc 0; expect_err "^  protocol = xvm$"
  run --protocol virt -d -o validate-all -n vm1
  expect_rc 0; expect_err "^  protocol = virt$"
  run --protocol=tcp -o validate-all -n vm1
  expect_rc 1; expect_err "Unsupported protocol: 'tcp'" ;;
*)
  echo "unknown case $case_name"; exit 1 ;;
esac
echo "PASS ($case_name)"
