-- Event hashes computed by the service's append statement (issue [foundation]).
--
-- The hash trigger (migrations 0004, 0006) turned every appended event's payload and metadata
-- into text again, hashed them, looked up the stream's previous event and hashed once more,
-- row by row: measured on the 2-core development machine it cost a quarter of the store's
-- single-event append rate, more than anything else left in an append. The service already
-- computes each event's content digest (for its MAC), so its append statement now computes
-- the version-2 hash itself, in SQL, from that digest, the position the row takes, the
-- transaction's time and the previous event's hash (commands/src/group.rs) — the same
-- definition, `event_hash_v2`, as before.
--
-- The trigger still checks every row (metadata is an object) and still computes the hash
-- of any row that arrives without one: events written by other writers (the data generator,
-- psql), and an event whose predecessor is inserted by the same statement. A supplied hash is
-- what its writer claims; `pettycash-replay verify` recomputes every event's hash from the
-- stored row and its predecessor, as it always has, and reports any that differs. Whoever
-- can insert rows could always make a hash match a made-up row (SHA-256 needs no key): what
-- proves an event is the service's is its MAC, and what proves the chain is intact are the
-- seals, both keyed outside the database.
CREATE OR REPLACE FUNCTION events_hash_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    previous bytea;
BEGIN
    IF jsonb_typeof(NEW.metadata) <> 'object' THEN
        RAISE EXCEPTION 'event metadata must be a JSON object' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.event_hash IS NOT NULL THEN
        RETURN NEW;
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
