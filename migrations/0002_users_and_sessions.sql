-- Users as of their latest event. Written in the same transaction as the user's events
-- (a transactional projection), so a unique email is enforced under concurrency and
-- authentication can read roles in one query.
CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL UNIQUE,
    name          text        NOT NULL,
    roles         text[]      NOT NULL,
    active        boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_position bigint      NOT NULL
);

-- Secrets are not domain facts and never go into the event store.
CREATE TABLE credentials (
    user_id         uuid        PRIMARY KEY REFERENCES users (id),
    password_hash   text        NOT NULL,
    failed_attempts integer     NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Session tokens, stored as HMAC-SHA256(SECRET_KEY, token): a database dump does not
-- reveal usable tokens.
CREATE TABLE sessions (
    token_hash  bytea       PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    client_ip   text,
    user_agent  text
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Responses to POST commands sent with an Idempotency-Key, written in the same transaction
-- as the command's events: a retry returns the stored response and appends nothing.
CREATE TABLE idempotency_keys (
    user_id      uuid        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       smallint    NOT NULL,
    body         jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
