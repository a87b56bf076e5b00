-- Event authentication (issue [security]).
--
-- The hash trigger of migration 0004 hashes whatever is inserted, and the sealer sealed
-- whatever was there: a row written with INSERT rights alone (a made-up approval) got a valid
-- hash and seal, and `verify` passed it. From now on every event the service appends carries
-- `metadata.mac`: HMAC-SHA256, under a key the database does not hold (derived from SEAL_KEY,
-- else SECRET_KEY), over its aggregate type and id, sequence, event type, version, payload
-- text and the rest of its metadata text (domain/src/integrity.rs). The sealer refuses to seal
-- an event whose MAC does not verify, `pettycash-replay verify` reports it, and the command
-- side refuses to decide on a stream that holds one.
--
-- 1. Every new event must carry a MAC (an INSERT without one fails). NOT VALID: events
--    recorded before this migration have none and are never rewritten.
ALTER TABLE events ADD CONSTRAINT events_carry_a_mac CHECK (metadata ? 'mac') NOT VALID;

-- 2. Where authentication began: events at or below this position were recorded before it and
--    are accepted without a MAC (they are covered by the hashes and seals of migration 0004).
--    Every event after it must authenticate. One row, written here and never changed.
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
