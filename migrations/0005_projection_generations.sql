-- Projection build generations (`pettycash-replay rebuild`). A projection version can now be
-- built more than once: each build is a generation with its own tables
-- ({base}_v{version} for generation 0, as before, so existing read-model tables and their
-- checkpoints keep working unchanged; {base}_v{version}_g{generation} after that) and its own
-- checkpoint row. A rebuild builds generation max+1 beside the live one and swaps the views
-- to it in one transaction, exactly as a new version does; an interrupted rebuild resumes from
-- its checkpoint. Every existing row is generation 0.
ALTER TABLE projection_checkpoints
    ADD COLUMN generation integer NOT NULL DEFAULT 0 CHECK (generation >= 0);

ALTER TABLE projection_checkpoints DROP CONSTRAINT projection_checkpoints_pkey;
ALTER TABLE projection_checkpoints ADD PRIMARY KEY (name, version, generation);

-- At most one live build per projection: readers' views point at exactly one set of tables,
-- and read-your-writes checks the live checkpoint. The swap retires the old build before it
-- marks the new one live, in one transaction, so this holds at every statement.
CREATE UNIQUE INDEX projection_checkpoints_one_live_idx
    ON projection_checkpoints (name) WHERE state = 'live';
