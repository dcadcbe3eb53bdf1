#!/usr/bin/env bash
# Polls per second pushed to a running server by CLIENTS concurrent curl loops, each posting
# its share of BATCH-poll CSV batches of FILE (a status file), and the latency of one-poll
# pushes sent meanwhile; then the floor: psql's COPY of the same rows into a table.
#   benches/push-throughput.sh http://127.0.0.1:8000 TOKEN target/bench-data/store_status.csv \
#       postgres://postgres@127.0.0.1:5432/store_monitor [CLIENTS=4] [BATCH=50000]
# The server should start with no polls (a status file of its header alone), so that every
# pushed poll is new. The polls go in time order, as a polling system sends them as they
# happen (the timestamps' text sorts as they do); ORDER=file keeps the file's order (a
# backfill of a shuffled file).
set -euo pipefail
server=$1 token=$2 file=$3 database=$4 clients=${5:-4} batch=${6:-50000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

header=$(head -n 1 "$file")
column=$(echo "$header" | tr ',' '\n' | grep -n '^timestamp_utc$' | cut -d: -f1)
if [ "${ORDER:-time}" = file ]; then
    tail -n +2 "$file"
else
    tail -n +2 "$file" | LC_ALL=C sort -t, -k"$column,$column"
fi | split -l "$batch" -d -a 4 - "$work/batch-"
for part in "$work"/batch-*; do
    { echo "$header"; cat "$part"; } > "$part.csv"
    rm "$part"
done
batches=("$work"/batch-*.csv)
polls=$(($(wc -l < "$file") - 1))
echo "${#batches[@]} batches of up to $batch polls, $polls polls, $clients clients"

push() {
    curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' -H "authorization: Bearer $token" \
        -H 'content-type: text/csv' --data-binary "@$1" "$server/polls"
}

# One-poll pushes, ten a second (a probe, not a fifth client), until the batches are in.
single="$work/single.csv"
(
    i=0
    while [ ! -e "$work/done" ]; do
        printf '%s\nbench-single,active,2023-01-20 %02d:%02d:00 UTC\n' "$header" $((i / 60 % 24)) $((i % 60)) > "$single"
        push "$single"
        i=$((i + 1))
        sleep 0.1
    done
) > "$work/single.log" &
singles=$!

start=$(date +%s.%N)
for c in $(seq 0 $((clients - 1))); do
    (
        for ((b = c; b < ${#batches[@]}; b += clients)); do
            until [ "$(push "${batches[$b]}" | cut -d' ' -f1)" = 200 ]; do sleep 0.2; done
        done
    ) &
done
wait $(jobs -p | grep -v "^$singles$")
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
touch "$work/done"
wait $singles
echo "pushed: $polls polls in $elapsed s: $(echo "$polls / $elapsed" | bc) polls/s"
sort -t' ' -k2 -n "$work/single.log" | awk '{ t[NR] = $2; if ($1 != 200) bad++ }
    END { printf "one-poll pushes meanwhile: %d, p50 %.1f ms, p90 %.1f ms, non-200: %d\n", NR, t[int(NR / 2) + 1] * 1000, t[int(NR * 0.9) + 1] * 1000, bad }'

# The floor: the same rows copied into a table by psql, in the same batches, one connection.
psql -q "$database" -c "DROP TABLE IF EXISTS bench_push_floor" \
    -c "CREATE TABLE bench_push_floor (store_id text, status text, timestamp_utc text)"
start=$(date +%s.%N)
for part in "${batches[@]}"; do
    psql -q "$database" -c "\\copy bench_push_floor FROM '$part' (FORMAT csv, HEADER true)"
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
psql -q "$database" -c "DROP TABLE bench_push_floor"
echo "floor, psql COPY of the same batches: $elapsed s: $(echo "$polls / $elapsed" | bc) polls/s"
