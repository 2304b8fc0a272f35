#!/usr/bin/env bash
# Every man page renders without a single groff/man warning.
set -euo pipefail
: "${VG_SRC:?}"
command -v man >/dev/null || { echo "SKIP: man not installed"; exit 77; }
fails=0
for page in "$VG_SRC"/man/*.[0-9]; do
  err=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null || echo "man exited non-zero")
  if [ -n "$err" ]; then echo "FAIL $page:"; echo "$err"; fails=$((fails+1)); else echo "ok   $page"; fi
done
n=$(ls "$VG_SRC"/man/*.[0-9] | wc -l)
[ "$n" -ge 5 ] || { echo "FAIL: expected 5 man pages, found $n"; fails=$((fails+1)); }
echo "$((n - fails)) passed, $fails failed"
[ "$fails" = 0 ]
