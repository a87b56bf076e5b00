-- Payments (issue #14 [treasury]): one-time payment codes.
--
-- Treasury asks for a code for one requisition and method; the code (6 digits from the
-- operating system's generator) is mailed to the paying user through the outbox and never
-- stored: `code_hash` is HMAC-SHA256(SECRET_KEY, label || requisition || payer || amount ||
-- currency || method || code). The events record only that a code was issued or refused
-- (`PaymentCodeIssued`, `PaymentCodeRejected` on the requisition stream).
--
-- Rows are written in the transaction of those events: issued with `PaymentCodeIssued`; a
-- wrong attempt increments `attempts` with its `PaymentCodeRejected` (conditionally: never
-- past 5); the payment sets `used_at` (conditionally: unused, fewer than 5 wrong attempts) in
-- the transaction of its own events, so a code pays once whatever raced it.
--
-- `issued_at` is the service's clock (tests move it): expiry (5 minutes) and the request rate
-- limit (one per 30 s, five an hour, per payer and requisition) are counted on it.
CREATE TABLE payment_codes (
    id             uuid        PRIMARY KEY,
    requisition_id uuid        NOT NULL,
    payer_id       uuid        NOT NULL REFERENCES users (id),
    method         text        NOT NULL,
    amount         numeric     NOT NULL,
    currency       text        NOT NULL,
    code_hash      bytea       NOT NULL,
    issued_at      timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    attempts       integer     NOT NULL DEFAULT 0,
    used_at        timestamptz,
    CONSTRAINT payment_codes_attempts_check CHECK (attempts BETWEEN 0 AND 5)
);

-- The latest codes of one requisition (its payer's, and the check for another user's code).
CREATE INDEX payment_codes_requisition_idx ON payment_codes (requisition_id, issued_at DESC);

-- Payments through a provider (bank, mobile money), one row per payment, written in the
-- transaction of its events (`PaymentStarted` with the fund's `CashReserved`; then
-- `RequisitionPaid` with the consuming `CashDisbursed`, or `PaymentFailed` with
-- `ReservationReleased`): the lookup of a provider's result by payment id, and what the
-- payments read model grows from. `status`: executing, succeeded, failed.
CREATE TABLE provider_payments (
    id                 uuid        PRIMARY KEY,
    requisition_id     uuid        NOT NULL,
    fund_id            uuid        NOT NULL,
    method             text        NOT NULL,
    amount             numeric     NOT NULL,
    currency           text        NOT NULL,
    status             text        NOT NULL,
    -- Attempts sent to the provider; the idempotency id of an attempt is derived from the
    -- payment id and this number.
    attempts           integer     NOT NULL DEFAULT 1,
    provider_reference text,
    last_result_code   text,
    paid_by            uuid        NOT NULL,
    started_at         timestamptz NOT NULL,
    -- When the scheduler found it still executing past `payment_timeout_minutes`
    -- (`PaymentTimedOut`, once).
    timed_out_at       timestamptz,
    updated_at         timestamptz NOT NULL,
    CONSTRAINT provider_payments_status_check CHECK (status IN ('executing', 'succeeded', 'failed'))
);

-- The scheduler's look for payments stuck in executing.
CREATE INDEX provider_payments_executing_idx ON provider_payments (started_at) WHERE status = 'executing';
