-- Event authentication (issue [security]).
--
-- The hash trigger of migration 0004 hashes whatever is inserted, and the sealer sealed
-- whatever was there: a row written with INSERT rights alone (a made-up approval) got a valid
-- hash and seal, and `verify` passed it. From now on every event the service appends carries
-- `metadata.mac`: hex of HMAC-SHA256('pettycash-event-mac-v1' || content digest), under a key
-- the database does not hold (derived from SEAL_KEY, else SECRET_KEY; domain/src/integrity.rs).
-- The sealer refuses to seal
-- an event whose MAC does not verify, `pettycash-replay verify` reports it, and the command
-- side refuses to decide on a stream that holds one.
--
-- The MAC covers the event's *content digest* (sha256 over aggregate type and id, sequence,
-- event type, version, payload text, and the metadata text without `mac`), and so, from now
-- on, does the event hash (version 2): a reader hashes an event's content once for both
-- checks. Events recorded before keep their version-1 hash (migration 0004).
--
--   content digest = sha256('pettycash-event-content-v1'
--                           || for aggregate_type, aggregate_id: int4(byte length) || UTF-8
--                           || int8(sequence)
--                           || for event_type, event_version, payload::text,
--                              (metadata - 'mac')::text: int4(byte length) || UTF-8)
--   event_hash v2  = sha256('pettycash-event-v2' || previous event_hash of the stream (32 zero
--                           bytes for sequence 1) || int8(global_position) || int8(sequence)
--                           || int8(recorded_at as microseconds since 1970-01-01 UTC)
--                           || content digest || int4(byte length) || metadata ->> 'mac')
CREATE FUNCTION event_content_digest(
    aggregate_type text,
    aggregate_id   text,
    sequence       bigint,
    event_type     text,
    event_version  text,
    payload        jsonb,
    metadata       jsonb
) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    f1 bytea := convert_to(aggregate_type, 'UTF8');
    f2 bytea := convert_to(aggregate_id, 'UTF8');
    f3 bytea := convert_to(event_type, 'UTF8');
    f4 bytea := convert_to(event_version, 'UTF8');
    f5 bytea := convert_to(payload::text, 'UTF8');
    f6 bytea := convert_to((metadata - 'mac')::text, 'UTF8');
BEGIN
    RETURN sha256(
        convert_to('pettycash-event-content-v1', 'UTF8')
        || int4send(octet_length(f1)) || f1
        || int4send(octet_length(f2)) || f2
        || int8send(sequence)
        || int4send(octet_length(f3)) || f3
        || int4send(octet_length(f4)) || f4
        || int4send(octet_length(f5)) || f5
        || int4send(octet_length(f6)) || f6
    );
END;
$$;

CREATE FUNCTION event_hash_v2(
    previous        bytea,
    global_position bigint,
    sequence        bigint,
    recorded_at     timestamptz,
    digest          bytea,
    mac             text
) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m bytea := convert_to(coalesce(mac, ''), 'UTF8');
BEGIN
    RETURN sha256(
        convert_to('pettycash-event-v2', 'UTF8')
        || coalesce(previous, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
        || int8send(global_position)
        || int8send(sequence)
        || int8send((extract(epoch FROM recorded_at) * 1000000)::bigint)
        || digest
        || int4send(octet_length(m)) || m
    );
END;
$$;

-- The hash trigger of migration 0004, now hashing version 2; and metadata must be an object
-- (a `mac` inside an array would pass the constraint below).
CREATE OR REPLACE FUNCTION events_hash_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    previous bytea;
BEGIN
    IF jsonb_typeof(NEW.metadata) <> 'object' THEN
        RAISE EXCEPTION 'event metadata must be a JSON object' USING ERRCODE = 'check_violation';
    END IF;
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
    NEW.event_hash := event_hash_v2(previous, NEW.global_position, NEW.sequence, NEW.recorded_at,
        event_content_digest(NEW.aggregate_type, NEW.aggregate_id, NEW.sequence, NEW.event_type,
                             NEW.event_version, NEW.payload, NEW.metadata),
        NEW.metadata ->> 'mac');
    RETURN NEW;
END;
$$;

-- 1. Every new event must carry a MAC (an INSERT without one fails). NOT VALID: events
--    recorded before this migration have none and are never rewritten.
ALTER TABLE events ADD CONSTRAINT events_carry_a_mac CHECK (metadata ? 'mac') NOT VALID;

-- 2. Where authentication began: events at or below this position were recorded before it and
--    are accepted without a MAC (they are covered by the hashes and seals of migration 0004).
--    Every event after it must authenticate, and is hashed with version 2. One row, written
--    here and never changed.
CREATE TABLE event_authentication (
    id               boolean     PRIMARY KEY DEFAULT true CHECK (id),
    unsigned_through bigint      NOT NULL CHECK (unsigned_through >= 0),
    since            timestamptz NOT NULL DEFAULT now()
);
INSERT INTO event_authentication (unsigned_through)
SELECT coalesce(max(global_position), 0) FROM events;

CREATE TRIGGER event_authentication_no_update_or_delete
    BEFORE UPDATE OR DELETE ON event_authentication
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER event_authentication_no_truncate
    BEFORE TRUNCATE ON event_authentication
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- 3. Fund snapshots are trusted only with a MAC over their state (a snapshot inserted with a
--    made-up balance used to be believed). Existing snapshots have none: they are ignored and
--    replaced on the next load.
ALTER TABLE snapshots ADD COLUMN mac bytea;

-- 4. Seals record the events in their range that the sealer refused because they do not
--    authenticate (int8 position each, in order). Those events are not in the chain; `verify`
--    names them. Empty for every earlier seal, whose MAC is computed as before.
ALTER TABLE event_seals ADD COLUMN refused bytea NOT NULL DEFAULT ''::bytea
    CHECK (octet_length(refused) % 8 = 0);
--    A seal may now cover no event at all, only refused ones: its cumulative count can stay 0.
ALTER TABLE event_seals DROP CONSTRAINT event_seals_event_count_check;
ALTER TABLE event_seals ADD CONSTRAINT event_seals_event_count_check CHECK (event_count >= 0);
--    `/health/` counts the refused events: only seals that refused any are indexed.
CREATE INDEX event_seals_refused_idx ON event_seals (seal_id) WHERE octet_length(refused) > 0;
