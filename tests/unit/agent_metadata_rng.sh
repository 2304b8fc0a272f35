#!/bin/sh
# Usage: agent_metadata_rng.sh <fence_vguard> <metadata.rng>
# Validates `fence_vguard -o metadata` against fence-agents' RelaxNG schema. Exit 77 (skip) without xmllint or
# the schema (packages libxml2-utils, fence-agents-common).
agent=$1
schema=${2:-/usr/share/cluster/relaxng/metadata.rng}
command -v xmllint >/dev/null 2>&1 || { echo "SKIP: xmllint not found"; exit 77; }
[ -r "$schema" ] || { echo "SKIP: $schema not found"; exit 77; }
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
"$agent" -o metadata >"$tmp"
rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL: $agent -o metadata exited $rc"; exit 1; }
xmllint --noout --relaxng "$schema" "$tmp" || { echo "FAIL: metadata does not validate against $schema"; exit 1; }
echo "PASS"
