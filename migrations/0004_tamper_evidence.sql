-- Tamper evidence (issue [replay]).
--
-- 1. Every event carries a hash over its stream's previous hash and its own content, computed
--    by the database at insert (a BEFORE INSERT row trigger), so every writer (the service,
--    the data generator, psql) produces it the same way and no writer can choose it. Only the
--    stream's previous event is read: writers of different streams never wait on each other.
--
--      event_hash = sha256('pettycash-event-v1'
--                          || previous event_hash of the stream (32 zero bytes for sequence 1)
--                          || int8(global_position) || int8(sequence)
--                          || int8(recorded_at as microseconds since 1970-01-01 UTC)
--                          || for each of aggregate_type, aggregate_id, event_type,
--                             event_version, payload::text, metadata::text:
--                             int4(byte length) || UTF-8 bytes)
--
--    jsonb's text form is canonical (keys sorted, one spelling per value), so the hash can be
--    recomputed from the stored row by anyone (`pettycash-replay verify` does, in Rust:
--    projections/src/seal.rs). Events recorded before this migration keep a NULL hash
--    (nothing rewrites an event); their successors chain from 32 zero bytes and `verify`
--    counts them as unhashed.
--
-- 2. Seals cover the global order `(transaction_id, global_position)`: each seal records the
--    last event it covers, how many events the chain has covered so far, the running chain
--    hash over every event hash in that order, the (position, hash prefix) of each event it
--    covers (so that `verify` can name the event that was inserted, removed or moved), and an
--    HMAC-SHA256 over all of it and the previous seal's MAC, with a key that is NOT in the
--    database (SEAL_KEY, or derived from SECRET_KEY). Someone who can write to the database
--    but does not hold the key cannot produce a seal that verifies.
--    The seals are written by the service's sealer (projections/src/seal.rs); like events,
--    they are append-only.

ALTER TABLE events ADD COLUMN event_hash bytea;

-- PL/pgSQL rather than SQL: a SQL function that is not inlined is planned again at every call
-- (about 60 µs); this one's plan is cached (about 5 µs).
CREATE FUNCTION event_hash(
    previous        bytea,
    global_position bigint,
    sequence        bigint,
    recorded_at     timestamptz,
    aggregate_type  text,
    aggregate_id    text,
    event_type      text,
    event_version   text,
    payload         jsonb,
    metadata        jsonb
) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    f1 bytea := convert_to(aggregate_type, 'UTF8');
    f2 bytea := convert_to(aggregate_id, 'UTF8');
    f3 bytea := convert_to(event_type, 'UTF8');
    f4 bytea := convert_to(event_version, 'UTF8');
    f5 bytea := convert_to(payload::text, 'UTF8');
    f6 bytea := convert_to(metadata::text, 'UTF8');
BEGIN
    RETURN sha256(
        convert_to('pettycash-event-v1', 'UTF8')
        || coalesce(previous, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
        || int8send(global_position)
        || int8send(sequence)
        || int8send((extract(epoch FROM recorded_at) * 1000000)::bigint)
        || int4send(octet_length(f1)) || f1
        || int4send(octet_length(f2)) || f2
        || int4send(octet_length(f3)) || f3
        || int4send(octet_length(f4)) || f4
        || int4send(octet_length(f5)) || f5
        || int4send(octet_length(f6)) || f6
    );
END;
$$;

-- Rows inserted earlier by the same statement are visible here (the function is volatile),
-- so a command that appends several events to one stream chains them correctly.
CREATE FUNCTION events_hash_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    previous bytea;
BEGIN
    IF NEW.sequence > 1 THEN
        SELECT event_hash INTO previous FROM events
        WHERE aggregate_type = NEW.aggregate_type AND aggregate_id = NEW.aggregate_id
          AND sequence = NEW.sequence - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'event % #% of % has no predecessor in its stream',
                NEW.aggregate_id, NEW.sequence, NEW.aggregate_type
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    NEW.event_hash := event_hash(previous, NEW.global_position, NEW.sequence, NEW.recorded_at,
        NEW.aggregate_type, NEW.aggregate_id, NEW.event_type, NEW.event_version,
        NEW.payload, NEW.metadata);
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_hash_chain
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_hash_chain();

CREATE TABLE event_seals (
    seal_id             bigint      PRIMARY KEY CHECK (seal_id > 0),
    -- The last event covered, in the order (transaction_id, global_position).
    last_transaction_id xid8        NOT NULL,
    last_position       bigint      NOT NULL,
    -- Events covered by the chain from the first event up to and including this seal.
    event_count         bigint      NOT NULL CHECK (event_count > 0),
    -- sha256 chain: c0 = 32 zero bytes, c(n) = sha256(c(n-1) || event_hash(n)).
    chain_hash          bytea       NOT NULL CHECK (octet_length(chain_hash) = 32),
    -- Per event covered by this seal, in order: int8 position || first 8 bytes of its hash.
    entries             bytea       NOT NULL,
    -- Identifies the key (not the key): first 8 bytes of HMAC(key, 'pettycash-seal-key-id').
    key_id              text        NOT NULL,
    sealed_at           timestamptz NOT NULL DEFAULT now(),
    -- HMAC-SHA256(key, canonical seal || previous seal's mac); see projections/src/seal.rs.
    mac                 bytea       NOT NULL CHECK (octet_length(mac) = 32)
);

-- The append-only guard now names the table it protects (events or event_seals).
CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event store is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER event_seals_no_update_or_delete
    BEFORE UPDATE OR DELETE ON event_seals
    FOR EACH ROW EXECUTE FUNCTION events_append_only();

CREATE TRIGGER event_seals_no_truncate
    BEFORE TRUNCATE ON event_seals
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
