-- Receipts (issue #14 [treasury]): the scheduler's note of the paid requisitions it has looked
-- at for a missing receipt and need no more looks (reminded, or a receipt was there). Not a read
-- model of the events and never a source of truth: the requisition aggregate decides whether a
-- reminder is due (`ReceiptOverdue` once); this table only keeps each paid requisition from
-- being loaded again at every tick once it was decided. Losing it costs one more look each.
CREATE TABLE receipt_reminder_checks (
    requisition_id uuid        PRIMARY KEY,
    checked_at     timestamptz NOT NULL DEFAULT now()
);
