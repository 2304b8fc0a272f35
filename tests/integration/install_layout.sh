#!/usr/bin/env bash
# `cmake --install` puts every deliverable where the issue and the man pages say.
set -euo pipefail
: "${VG_BUILD_DIR:?}"
P=$(mktemp -d /tmp/vguard-install.XXXXXX)
trap 'rm -rf "$P"' EXIT
cmake --install "$VG_BUILD_DIR" --prefix "$P" >/dev/null
pass=0 fail=0
for f in sbin/vguardd sbin/fence_vguard bin/vguardctl libexec/vguard/vguard-hook; do
  if [ -x "$P/$f" ]; then pass=$((pass+1)); else echo "FAIL: $f missing or not executable"; fail=$((fail+1)); fi
done
for f in share/man/man8/vguardd.8 share/man/man8/fence_vguard.8 share/man/man8/vguardctl.8 \
         share/man/man8/vguard-hook.8 share/man/man5/vguard.conf.5 etc/vguard/vguard.conf.sample \
         lib/systemd/system/vguardd.service; do
  if [ -f "$P/$f" ]; then pass=$((pass+1)); else echo "FAIL: $f missing"; fail=$((fail+1)); fi
done
# The installed sample configuration is valid for the installed daemon.
if "$P/sbin/vguardd" --check --config "$P/etc/vguard/vguard.conf.sample" >/dev/null; then pass=$((pass+1));
else echo "FAIL: installed sample configuration does not pass vguardd --check"; fail=$((fail+1)); fi
"$P/sbin/fence_vguard" -V >/dev/null && pass=$((pass+1)) || { echo "FAIL: installed fence_vguard does not run"; fail=$((fail+1)); }
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
