-- The organisation (issue #13 [workflow]): company -> region -> branch -> department -> cost
-- centre, and positions. Units are the `org_unit` aggregate's events; this table is written in
-- the same transaction as those events (a transactional projection, like `users`), so that
-- codes are unique under concurrency and a unit's path is one lookup.
--
-- A unit's path columns hold the unit above it at each level and itself at its own level (a
-- branch's branch_id is its id; a company's company_id is its id). Units are never moved, so
-- a path never changes.
CREATE TABLE org_units (
    id             uuid    PRIMARY KEY,
    kind           text    NOT NULL,
    name           text    NOT NULL,
    code           text    NOT NULL,
    phone          text,
    parent_id      uuid    REFERENCES org_units (id),
    company_id     uuid    NOT NULL,
    region_id      uuid,
    branch_id      uuid,
    department_id  uuid,
    cost_centre_id uuid,
    closed         boolean NOT NULL DEFAULT false,
    last_position  bigint  NOT NULL,
    -- Codes are unique within a company (a company's own row carries its own id)...
    CONSTRAINT org_units_code_key UNIQUE (company_id, code)
);
-- ...and company codes across companies (the import names companies by code).
CREATE UNIQUE INDEX org_units_company_code_key ON org_units (code) WHERE kind = 'company';
-- Closing a unit counts its open children.
CREATE INDEX org_units_parent_idx ON org_units (parent_id);

-- A user's unit (the most specific one) and its path, written with the user's `UnitAssigned`
-- events. NULL: unscoped (an organisation that models no units works as before).
ALTER TABLE users
    ADD COLUMN unit_id        uuid REFERENCES org_units (id),
    ADD COLUMN company_id     uuid,
    ADD COLUMN region_id      uuid,
    ADD COLUMN branch_id      uuid,
    ADD COLUMN department_id  uuid,
    ADD COLUMN cost_centre_id uuid;
-- Closing a unit counts its active members; admins list their company's users.
CREATE INDEX users_unit_idx ON users (unit_id);
CREATE INDEX users_company_idx ON users (company_id, email);
