-- Projection checkpoints: one row per projection version. The checkpoint is updated in the
-- same transaction as the read-model writes it covers, so a crash neither loses nor
-- double-applies an event. Cursor: (last_transaction_id, last_position).
CREATE TABLE projection_checkpoints (
    name                text        NOT NULL,
    version             integer     NOT NULL,
    state               text        NOT NULL CHECK (state IN ('building', 'live', 'retired')),
    last_transaction_id xid8        NOT NULL DEFAULT '0'::xid8,
    last_position       bigint      NOT NULL DEFAULT 0,
    events_applied      bigint      NOT NULL DEFAULT 0,
    started_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    live_since          timestamptz,
    PRIMARY KEY (name, version)
);

-- Wake the projection workers when events are committed (delivered at commit; several
-- notifications of one transaction collapse into one). Workers also poll as a fallback.
CREATE FUNCTION events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pettycash_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify_insert
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
