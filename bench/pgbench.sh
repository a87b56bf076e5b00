#!/usr/bin/env bash
# The physical-limit reference (issue [perf]): how many single-event transactions per second
# PostgreSQL on this machine accepts into the real `events` table (see bench/pgbench_append.sql).
#
#   bench/pgbench.sh [-c CLIENTS] [-j THREADS] [-T SECONDS] [--no-hash-trigger] [--notify-trigger]
#                    [--prefill N] [--keep]
#
#   -c, -j, -T           pgbench's clients (32), threads (2) and duration in seconds (30)
#   --no-hash-trigger    disable the events_hash_chain trigger first (on the scratch database
#                        only), to measure what the trigger costs
#   --notify-trigger     put back the statement trigger that sent NOTIFY from every appending
#                        transaction until migration 0009 (on the scratch database only), to
#                        measure the schema as it was before
#   --prefill N          first fill the store with bench/generate_events.sql (100 funds, N
#                        requisitions: ~5.3 events each), to append to a large table
#   --keep               keep the scratch database afterwards
#
# Environment: PGURL, an admin URL of the server (default postgres://postgres@127.0.0.1:5432/postgres);
# PETTYCASH, the `pettycash` binary (default: $CARGO_TARGET_DIR/release/pettycash, else
# target/release/pettycash; build it with `cargo build --release -p pettycash-api`);
# SCRATCH_DB, the scratch database's name (default pettycash_pgbench; dropped and recreated).
#
# Prints pgbench's report, then one line: tps=... clients=... hash_trigger=on|off.
set -euo pipefail

clients=32 threads=2 seconds=30 trigger=on notify=off prefill=0 keep=no
while [ $# -gt 0 ]; do
    case "$1" in
        -c) clients=$2; shift 2 ;;
        -j) threads=$2; shift 2 ;;
        -T) seconds=$2; shift 2 ;;
        --no-hash-trigger) trigger=off; shift ;;
        --notify-trigger) notify=on; shift ;;
        --prefill) prefill=$2; shift 2 ;;
        --keep) keep=yes; shift ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "pgbench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
admin_url=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
db=${SCRATCH_DB:-pettycash_pgbench}
case "$db" in *[!a-z0-9_]*) echo "pgbench.sh: SCRATCH_DB must be [a-z0-9_]" >&2; exit 2 ;; esac
if [ -n "${PETTYCASH:-}" ]; then
    pettycash=$PETTYCASH
elif [ -n "${CARGO_TARGET_DIR:-}" ] && [ -x "$CARGO_TARGET_DIR/release/pettycash" ]; then
    pettycash=$CARGO_TARGET_DIR/release/pettycash
else
    pettycash=$here/../target/release/pettycash
fi
for tool in psql pgbench "$pettycash"; do
    command -v "$tool" >/dev/null || { echo "pgbench.sh: $tool not found" >&2; exit 2; }
done

# The scratch database's URL: the admin URL with its database name replaced.
base=${admin_url%%\?*}
query=${admin_url#"$base"}
url="${base%/*}/$db$query"

PGOPTIONS="-c client_min_messages=warning" psql "$admin_url" -qX -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
cleanup() { [ "$keep" = yes ] || psql "$admin_url" -qX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; }
trap cleanup EXIT

DATABASE_URL=$url "$pettycash" migrate >/dev/null
if [ "$prefill" -gt 0 ]; then
    psql "$url" -qX -v funds=100 -v requisitions="$prefill" -f "$here/generate_events.sql"
    psql "$url" -qX -c "VACUUM ANALYZE events"
fi
if [ "$trigger" = off ]; then
    psql "$url" -qX -v ON_ERROR_STOP=1 -c "ALTER TABLE events DISABLE TRIGGER events_hash_chain"
fi
if [ "$notify" = on ]; then
    # As migration 0003 created it (dropped by 0009).
    psql "$url" -qX -v ON_ERROR_STOP=1 \
        -c "CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_notify('pettycash_events', ''); RETURN NULL; END; \$\$" \
        -c "CREATE TRIGGER events_notify_insert AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION events_notify()"
fi
psql "$url" -qX -c CHECKPOINT

out=$(pgbench -n -M prepared -D n=0 -c "$clients" -j "$threads" -T "$seconds" -f "$here/pgbench_append.sql" "$url")
echo "$out"
# What was appended (the pgbench actor's events), and how many carry a hash.
psql "$url" -qXAt -c "SELECT 'events appended: ' || count(*) || ', hashed: ' || count(event_hash) FROM events
                       WHERE metadata->>'actor_id' = '0193fb0a-91c0-7d42-8e6b-2f5c1a9d3e70'"
tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
echo "tps=$tps clients=$clients threads=$threads seconds=$seconds hash_trigger=$trigger notify_trigger=$notify prefill=$prefill"
