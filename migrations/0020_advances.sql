-- Advances and their settlement (issue #14 [treasury]). The `advance_account` aggregate's
-- events (one stream per holder) are the history; this table is written in the same
-- transaction as those events (a transactional projection, like `delegations`), so that the
-- scheduler finds overdue advances, and treasury and the holder list them, in one indexed
-- lookup.
CREATE TABLE advances (
    requisition_id   uuid        PRIMARY KEY,
    holder_id        uuid        NOT NULL REFERENCES users (id),
    fund_id          uuid        NOT NULL,
    -- The fund's company (NULL: unscoped): whose treasury reads it.
    company_id       uuid,
    currency         text        NOT NULL,
    amount           numeric     NOT NULL CHECK (amount > 0),
    spent            numeric     NOT NULL DEFAULT 0 CHECK (spent >= 0),
    returned         numeric     NOT NULL DEFAULT 0 CHECK (returned >= 0),
    -- What remains to settle (0 before it is paid).
    outstanding      numeric     NOT NULL CHECK (outstanding >= 0),
    payment_id       uuid,
    paid_at          timestamptz,
    due_at           timestamptz,
    settlements      integer     NOT NULL DEFAULT 0,
    overdue_recorded boolean     NOT NULL DEFAULT false,
    last_position    bigint      NOT NULL,
    CONSTRAINT advances_settled_check CHECK (spent + returned <= amount)
);

-- The holder's own, newest first.
CREATE INDEX advances_holder_idx ON advances (holder_id, requisition_id DESC);
-- Treasury's list of a company's advances.
CREATE INDEX advances_company_idx ON advances (company_id, requisition_id DESC);
-- The scheduler: unsettled advances by due date, not reminded yet.
CREATE INDEX advances_due_idx ON advances (due_at) WHERE outstanding > 0 AND NOT overdue_recorded;
