-- Alerts (issue #15 [reports]): written by the side-effecting `alerts` projection (and, for
-- `variance_pending`, by the scheduler) in the transaction that moves its checkpoint, with the
-- mail they cause in `mail_outbox`. Not a read model: a rebuild never touches these tables, and
-- people's acknowledgements and notes live only here (`alert_history` is their audit trail).
CREATE TABLE alerts (
    id              uuid        PRIMARY KEY,
    alert_type      text        NOT NULL,
    severity        text        NOT NULL,
    -- open, acknowledged, resolved (domain::alert::AlertState).
    state           text        NOT NULL DEFAULT 'open',
    -- The fund's or requisition's company; NULL: unscoped.
    company_id      uuid,
    fund_id         uuid,
    -- fund, requisition, advance, count (domain::alert::ObjectType) and its id.
    object_type     text        NOT NULL,
    object_id       text        NOT NULL,
    -- The requisition's or fund's organisation units, for the unit filters of the list.
    branch_id       uuid,
    department_id   uuid,
    -- Who is responsible (custodian, payer, holder): they see and act on it (domain visibility).
    responsible_ids uuid[]      NOT NULL DEFAULT '{}',
    title           text        NOT NULL,
    message         text        NOT NULL,
    -- The event that raised it (NULL: the scheduler).
    source_position bigint,
    raised_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by uuid,
    resolved_at     timestamptz,
    -- NULL with resolved_at set: resolved by itself (its condition cleared).
    resolved_by     uuid,
    resolution_note text
);
-- At most one open (or acknowledged) alert of a type per object, whatever races: raising is
-- INSERT ... ON CONFLICT DO NOTHING against this index.
CREATE UNIQUE INDEX alerts_open_key ON alerts (alert_type, object_id) WHERE state <> 'resolved';
-- The list (newest first, by company) and the dashboard's open counts.
CREATE INDEX alerts_company_idx ON alerts (company_id, raised_at DESC, id DESC);
CREATE INDEX alerts_open_idx ON alerts (company_id, severity) WHERE state <> 'resolved';
CREATE INDEX alerts_fund_idx ON alerts (fund_id) WHERE fund_id IS NOT NULL;

-- Who did what to an alert, when, with which note (raise, acknowledge, resolve); by NULL: the
-- service (raised, or resolved because its condition cleared).
CREATE TABLE alert_history (
    id       bigserial   PRIMARY KEY,
    alert_id uuid        NOT NULL REFERENCES alerts (id),
    action   text        NOT NULL,
    by_user  uuid,
    note     text,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_history_alert_idx ON alert_history (alert_id, id);

-- The `alerts` projection's own memory of each fund it has seen (it keeps no state in process):
-- what it needs to judge a movement's `balance_after`, and the level it last alerted on, so that
-- only a change of level writes anything. `sequence`: the fund's last event folded in. A fund
-- the projection meets for the first time (or after a gap) is folded from its stream once.
CREATE TABLE alert_funds (
    fund_id         uuid        PRIMARY KEY,
    sequence        bigint      NOT NULL,
    name            text        NOT NULL,
    currency        text        NOT NULL,
    company_id      uuid,
    branch_id       uuid,
    department_id   uuid,
    custodian_id    uuid,
    reorder_level   numeric,
    minimum_balance numeric     NOT NULL,
    balance         numeric     NOT NULL,
    -- fund_low, fund_critical, or NULL (fine).
    level           text,
    closed          boolean     NOT NULL DEFAULT false
);

-- Counts whose variance waits for approval (from `CashCounted` until `VarianceAdjusted` or
-- `VarianceRejected`), for the scheduler's `variance_pending` step; `alerted`: done.
CREATE TABLE alert_pending_variances (
    count_id   uuid        PRIMARY KEY,
    fund_id    uuid        NOT NULL,
    counted_at timestamptz NOT NULL,
    alerted    boolean     NOT NULL DEFAULT false
);

-- Wrong payment codes, for `otp_failures` (N by one payer for one requisition in a window).
CREATE TABLE alert_code_failures (
    requisition_id uuid        NOT NULL,
    payer_id       uuid        NOT NULL,
    at             timestamptz NOT NULL
);
CREATE INDEX alert_code_failures_idx ON alert_code_failures (requisition_id, payer_id, at);
