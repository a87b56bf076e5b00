-- Invitations (issue #13 [workflow]): an admin invites an email; a mail carries a link with a
-- secret token that works once, until it expires; the invitee chooses a password and becomes a
-- user. The `invitation` aggregate's events are the history; this table is written in the same
-- transaction as those events (a transactional projection, like `users` and `org_units`), so
-- that a link is found by its token's hash in one indexed lookup and one email has at most one
-- open invitation under concurrency.
--
-- The token is never stored: `token_hash` is the hex of HMAC-SHA256(SECRET_KEY, label ||
-- token), as in the events. Resending replaces it (the old link then finds nothing).
--
-- `status` is what the events recorded: pending, accepted or revoked. "Expired" is not stored:
-- a pending invitation whose `expires_at` has passed reads as expired.
CREATE TABLE invitations (
    id            uuid        PRIMARY KEY,
    -- Lower-cased, as in `users`.
    email         text        NOT NULL,
    name          text        NOT NULL,
    roles         text[]      NOT NULL,
    -- The unit the invitee will belong to, and its company (NULL: none, unscoped). Admins list
    -- and manage their company's invitations.
    unit_id       uuid        REFERENCES org_units (id),
    company_id    uuid,
    token_hash    text        NOT NULL,
    expires_at    timestamptz NOT NULL,
    status        text        NOT NULL,
    -- The admin who invited (NULL: the operator); the new user's sponsor.
    invited_by    uuid        REFERENCES users (id),
    -- The user it became, once accepted.
    user_id       uuid        REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_position bigint      NOT NULL,
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT invitations_status_check CHECK (status IN ('pending', 'accepted', 'revoked'))
);

-- One open invitation per email (an expired one stays open until it is resent or revoked).
CREATE UNIQUE INDEX invitations_open_email_key ON invitations (email) WHERE status = 'pending';
-- Admins list their company's invitations (and those they sent), newest first.
CREATE INDEX invitations_company_idx ON invitations (company_id, id DESC);
CREATE INDEX invitations_invited_by_idx ON invitations (invited_by, id DESC);
