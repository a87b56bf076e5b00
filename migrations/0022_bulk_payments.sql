-- Bulk payments (issue #14 [treasury]): a batch of mobile money payments paid by uploading
-- the provider's batch file, settled by importing the provider's result file.
--
-- `payment_batches`: one row per batch, written in the transaction of its payments' events
-- (`PaymentStarted` + `CashReserved` per line). `status`: open while a line is executing,
-- `settled` once none is.
CREATE TABLE payment_batches (
    id         uuid        PRIMARY KEY,
    fund_id    uuid        NOT NULL,
    currency   text        NOT NULL,
    count      integer     NOT NULL,
    total      numeric     NOT NULL,
    status     text        NOT NULL DEFAULT 'open',
    created_by uuid        NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL,
    CONSTRAINT payment_batches_status_check CHECK (status IN ('open', 'settled'))
);
CREATE INDEX payment_batches_created_idx ON payment_batches (created_at DESC);

-- A payment of a batch is never sent to the provider's API nor status-queried by the
-- scheduler (the provider pays it from the uploaded file): `batch_id` says so.
-- `payee_name`: the requester's name at the time, for the batch file.
ALTER TABLE provider_payments
    ADD COLUMN batch_id   uuid REFERENCES payment_batches (id),
    ADD COLUMN payee_name text;
CREATE INDEX provider_payments_batch_idx ON provider_payments (batch_id) WHERE batch_id IS NOT NULL;

-- Every result file imported into a batch: its SHA-256, who, when, and what each line did.
CREATE TABLE payment_batch_imports (
    id          uuid        PRIMARY KEY,
    batch_id    uuid        NOT NULL REFERENCES payment_batches (id),
    file_sha256 text        NOT NULL,
    imported_by uuid        NOT NULL REFERENCES users (id),
    imported_at timestamptz NOT NULL,
    summary     jsonb       NOT NULL
);
CREATE INDEX payment_batch_imports_batch_idx ON payment_batch_imports (batch_id, imported_at);
