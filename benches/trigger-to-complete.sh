#!/usr/bin/env bash
# Seconds from triggerReport to COMPLETE on a running server, for each asOf given:
#   benches/trigger-to-complete.sh http://127.0.0.1:8000 2023-01-25T18:13:20Z 2023-01-25T18:13:21Z
# Each asOf should differ, so that no report reuses an earlier one's result. Polls the
# report every 50 ms (POLL=seconds) with curl alone, so that the measuring takes little of
# the CPU it measures. TOKEN=secret sends it, for a server started with `--auth required`.
set -euo pipefail
server=$1
shift
auth=()
if [ -n "${TOKEN:-}" ]; then auth=(-H "authorization: Bearer $TOKEN"); fi
for as_of in "$@"; do
    trigger='{"query":"mutation($a: DateTime) { triggerReport(input: { asOf: $a }) { id } }","variables":{"a":"'$as_of'"}}'
    start=$(date +%s.%N)
    id=$(curl -s "${auth[@]}" -H 'content-type: application/json' -d "$trigger" "$server/graphql" | grep -oE '[0-9a-f-]{36}')
    status='{"query":"query($id: ID!) { report(id: $id) { status } }","variables":{"id":"'$id'"}}'
    until curl -s "${auth[@]}" -H 'content-type: application/json' -d "$status" "$server/graphql" | grep -qE 'COMPLETE|FAILED'; do
        sleep "${POLL:-0.05}"
    done
    echo "$as_of $(echo "$(date +%s.%N) - $start" | bc) s"
done
