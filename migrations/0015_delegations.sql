-- Delegation while away (issue #13 [workflow]): an approver hands their approvals in one role
-- to another holder of it in the same scope, for a period. The `delegation` aggregate's events
-- are the history; this table is written in the same transaction as those events (a
-- transactional projection, like `users` and `invitations`), so that a command, the approvals
-- inbox and the `notifications` projection find a user's delegations in one indexed lookup.
--
-- "Active" is not stored: a delegation is active from `starts_at` until `ends_at` unless
-- revoked (`revoked_at`), as seen at a given time.
CREATE TABLE delegations (
    id            uuid        PRIMARY KEY,
    delegator_id  uuid        NOT NULL REFERENCES users (id),
    delegate_id   uuid        NOT NULL REFERENCES users (id),
    -- The role delegated (a role's text form).
    role          text        NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    -- The delegator's company (NULL: unscoped): whose admins see and manage it.
    company_id    uuid,
    granted_by    uuid        NOT NULL REFERENCES users (id),
    revoked_at    timestamptz,
    revoked_by    uuid        REFERENCES users (id),
    last_position bigint      NOT NULL,
    CONSTRAINT delegations_period_check CHECK (starts_at < ends_at)
);

-- What a delegate received (commands, the inbox) and what a delegator gave (the step's mail).
CREATE INDEX delegations_delegate_idx ON delegations (delegate_id, ends_at);
CREATE INDEX delegations_delegator_idx ON delegations (delegator_id, ends_at) WHERE revoked_at IS NULL;
-- Admins list their company's, newest first.
CREATE INDEX delegations_company_idx ON delegations (company_id, id DESC);
