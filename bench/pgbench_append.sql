-- The physical-limit reference (issue [perf]): one event appended per transaction, the way the
-- service's EventStore::append writes a command's event when there are no side writes (one
-- autocommit INSERT ... RETURNING global_position), into the real `events` table with its
-- triggers (the hash trigger reads the stream's previous event like it does for a real
-- command). Nothing else a command does (loading the aggregate, authentication, idempotency,
-- HTTP) is in it: no command can append faster than this on the same machine.
--
-- Each client writes its own streams of 5 events (a requisition's created, submitted,
-- approved, approved, paid), so no two clients ever race for one stream: the first event of a
-- stream has no predecessor, the next four each look theirs up. Stream ids are UUIDs that
-- grow with time, like the service's UUIDv7 ids. Payload ~400 bytes, metadata ~350 bytes, as
-- the service writes them: with a 64-hex-digit `mac` (the store requires one, migration 0006;
-- the service computes it in Rust, so its cost is not the database's and a random value
-- stands in here).
--
-- Needs the per-client counter n: run by bench/pgbench.sh, or
--   pgbench -n -M prepared -D n=0 -c 32 -j 2 -T 30 -f bench/pgbench_append.sql "$SCRATCH_URL"
-- on a scratch database migrated with `pettycash migrate` (never on a real one). pgbench
-- replaces `:word` even inside string literals, hence no such text below.
\set stream :n / 5
\set seq :n % 5 + 1
\set n :n + 1
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'requisition', id, :seq, 'RequisitionCreated', '1',
       jsonb_build_object('RequisitionCreated', jsonb_build_object(
           'requisition_id', id, 'fund_id', '0193fb1c-4b80-7a3e-9c51-6f0a8d2e4b17', 'currency', 'KES',
           'amount', '1500.00',
           'purpose', 'Office stationery and printer toner for the branch, with the supplier''s quotation attached',
           'payee', 'Text Book Centre', 'category', 'office',
           'requester_id', '0193fb0a-91c0-7d42-8e6b-2f5c1a9d3e70')),
       jsonb_build_object(
           'actor_id', '0193fb0a-91c0-7d42-8e6b-2f5c1a9d3e70', 'request_id', gen_random_uuid(),
           'client_ip', '10.12.40.7',
           'user_agent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
           'time', (to_jsonb(clock_timestamp() AT TIME ZONE 'UTC') #>> '{}') || 'Z',
           'mac', md5(random()::text) || md5(random()::text))
FROM (SELECT (lpad(to_hex(CAST(:stream AS bigint)), 12, '0') || '7' || lpad(to_hex(CAST(:client_id AS int)), 3, '0') || '8'
              || lpad(to_hex(CAST(:client_id AS int)), 15, '0'))::uuid::text AS id) AS s
RETURNING global_position;
