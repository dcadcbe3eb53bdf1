#!/usr/bin/env bash
# What a fleet needs of a machine, for docs/OPERATIONS.md's sizing table: the CPU, memory
# and disk of loading a data set and computing reports on it, with the release binary, on
# a database of its own (dropped first and afterwards):
#   benches/sizing.sh DATA_DIR [REPORTS]
# DATA_DIR is a data folder (`store-monitor generate --out DIR [--stores N]`); REPORTS
# reports (default 5) are triggered one after the other, each for another asOf so that
# none shares an earlier one's result.
#
# CPU is the whole machine's busy time (user, nice, system, interrupts: /proc/stat), so
# PostgreSQL's work counts with the service's; run it on a quiet machine. Memory is the
# server's resident set (idle, and its peak, VmHWM). Disk is PostgreSQL's own accounting.
set -euo pipefail
data=$(realpath "$1")
reports=${2:-5}
bin=$(realpath "${BIN:-target/release/store-monitor}")
export DATABASE_URL=${SIZING_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/store_monitor_sizing}
work=$(mktemp -d)
server_pid=

finish() {
    [[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    "$bin" reset-db --yes >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap finish EXIT

busy() { awk '/^cpu /{ printf "%.2f", ($2 + $3 + $4 + $7 + $8) / 100 }' /proc/stat; }
now() { date +%s.%N; }
sql() { psql "$DATABASE_URL" -XAtqc "$1"; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
graphql() { curl -s -H 'content-type: application/json' -d "$1" "$url/graphql"; }

"$bin" reset-db --yes >/dev/null
echo "data: $data ($(du -sh "$data" | cut -f1))"

cpu=$(busy)
start=$(now)
/usr/bin/time -f '%M' -o "$work/ingest.rss" "$bin" ingest --data "$data" >/dev/null 2>&1
echo "ingest: $(echo "$(now) - $start" | bc) s wall, $(echo "$(busy) - $cpu" | bc) CPU-s, peak $(($(cat "$work/ingest.rss") / 1024)) MB"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
"$bin" serve --bind "127.0.0.1:$port" --data "$data" --reports "$work/reports" \
    --no-reload --trigger-rate 0 >"$work/serve.log" 2>&1 &
server_pid=$!
until curl -sf "$url/readyz" >/dev/null; do sleep 0.2; done
sleep 2
echo "serve idle: $(($(kib "$server_pid" VmRSS) / 1024)) MB resident"

newest=$(graphql '{"query":"{ dataset { newestPoll polls stores } }"}')
echo "dataset: $newest"
newest=$(echo "$newest" | grep -oE '"newestPoll":"[^"]+"' | cut -d'"' -f4)
for i in $(seq 1 "$reports"); do
    as_of=$(date -u -d "$newest - $i minutes" +%Y-%m-%dT%H:%M:%SZ)
    cpu=$(busy)
    start=$(now)
    id=$(graphql '{"query":"mutation($a: DateTime) { triggerReport(input: { asOf: $a }) { id } }","variables":{"a":"'"$as_of"'"}}' |
        grep -oE '[0-9a-f-]{36}')
    status='{"query":"query($id: ID!) { report(id: $id) { status } }","variables":{"id":"'$id'"}}'
    until graphql "$status" | grep -qE 'COMPLETE|FAILED'; do sleep 0.05; done
    echo "report $i: $(echo "$(now) - $start" | bc) s wall, $(echo "$(busy) - $cpu" | bc) CPU-s"
done
echo "serve after $reports reports: $(($(kib "$server_pid" VmRSS) / 1024)) MB resident, peak $(($(kib "$server_pid" VmHWM) / 1024)) MB"

csv_bytes=$(du -sb "$work/reports" | cut -f1)
# A report's file on a machine that lacks it (a new process, a restore): rebuilt from its rows.
rm -f "$work"/reports/*.csv
start=$(now)
curl -sf -o /dev/null "$url/reports/$id.csv"
echo "the last report's CSV rebuilt from its rows: $(echo "$(now) - $start" | bc) s"

# The steady state: an hour's polls, one a store, pushed as a poller would (incidents
# evaluated in their transaction).
sql "\copy (SELECT store_id, CASE WHEN id % 50 = 0 THEN 'inactive' ELSE 'active' END AS status,
             to_char((max_at + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || ' UTC' AS timestamp_utc
             FROM stores, (SELECT max(at) AS max_at FROM polls) newest) TO '$work/hour.csv' CSV HEADER"
cpu=$(busy)
start=$(now)
"$bin" push --url "$url" "$work/hour.csv" >/dev/null 2>&1
echo "an hour's polls pushed ($(($(wc -l <"$work/hour.csv") - 1))): $(echo "$(now) - $start" | bc) s wall, $(echo "$(busy) - $cpu" | bc) CPU-s"

polls=$(sql "SELECT count(*) FROM polls")
polls_bytes=$(sql "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'polls'::regclass")
results=$(sql "SELECT count(DISTINCT report) FROM report_rows")
rows_bytes=$(sql "SELECT pg_total_relation_size('report_rows')")
echo "polls: $polls, $((polls_bytes / 1024 / 1024)) MB with their key: $(echo "scale=1; $polls_bytes / $polls" | bc) bytes a poll"
echo "reports: $results results, $((rows_bytes / results / 1024)) KiB of rows and $((csv_bytes / results / 1024)) KiB of CSV each"
echo "database: $(sql "SELECT pg_size_pretty(pg_database_size(current_database()))")"
