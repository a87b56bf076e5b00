-- Mail by a transactional outbox (issue #13, "Notifications by email").
--
-- A mail is a row here before it is anything else. It is written in the transaction that
-- decided it: the `notifications` projection's batch (with its checkpoint), or a command's
-- transaction (with its events, `pettycash_commands::mail::enqueue`). So a mail is recorded
-- exactly when what caused it is, and never for something rolled back. A sender
-- (`pettycash_commands::mail::sender`, in `serve` and `project`) claims due rows with
-- `FOR UPDATE SKIP LOCKED` in a short transaction of its own, sends them outside any
-- transaction, then marks them sent. A crash between sending and marking sends that row
-- again, at most once more per crash, under the same `message_id`: the recipient's mail
-- program can tell it is the same message.
--
-- It is a queue, not history: rows are updated (attempts, sent_at). Sent rows are kept, as
-- the record of what was mailed to whom and when.
CREATE TABLE mail_outbox (
    id                bigserial   PRIMARY KEY,
    -- The Message-ID header, `<outbox-{id}@{domain of DEFAULT_FROM_EMAIL}>`, fixed at the first
    -- attempt to send (the domain is the sender's setting), then the same for every attempt.
    message_id        text        UNIQUE,
    -- `pettycash_domain::MailCategory`'s text form.
    category          text        NOT NULL,
    recipient_user_id uuid        REFERENCES users (id),
    recipient_email   text        NOT NULL,
    subject           text        NOT NULL,
    body_text         text        NOT NULL,
    body_html         text        NOT NULL,
    -- The page the mail is about (`{PUBLIC_URL}/requisitions/{id}`).
    link              text,
    -- The event that caused it (its global_position), when a projection wrote it. One mail per
    -- event, recipient and category: a projection that applies a batch again (a new version
    -- overlapping the old one) cannot mail twice. NULL (a command's mail) never conflicts.
    source_position   bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- Attempts started (a claim counts one, before the send).
    attempts          integer     NOT NULL DEFAULT 0,
    -- When it is due: after a failure, now + backoff; while claimed, the end of the claim (a
    -- sender that died mid-send leaves it to be claimed again then); 'infinity' once the
    -- server refused the message itself (see `last_error`; the runbook says how to resend).
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_error        text,
    sent_at           timestamptz,
    UNIQUE (source_position, recipient_email, category)
);

-- The sender's claim and /health/'s counts look only at unsent rows.
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
CREATE INDEX mail_outbox_recipient_idx ON mail_outbox (recipient_user_id, created_at);

-- The categories each user muted (`MailMuted`), written with the user's events like the rest of
-- the row, so that whoever enqueues a mail sees the user's choice as of the same transaction.
-- No user muted anything before this migration.
ALTER TABLE users ADD COLUMN muted_mail text[] NOT NULL DEFAULT '{}';
