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
*)
  echo "unknown case $case_name"; exit 1 ;;
esac
echo "PASS ($case_name)"
