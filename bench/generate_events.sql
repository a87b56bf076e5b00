-- Synthetic history for benchmarks: :funds funds, then :requisitions requisitions, each
-- created, submitted, approved and paid (4 requisition events + 1 fund event = 5 events).
-- Written straight into the event store's schema with valid payloads, so every tool reads it.
-- Usage: psql "$URL" -v funds=100 -v requisitions=200000 -f bench/generate_events.sql
\set ON_ERROR_STOP on
BEGIN;
-- The four people of the history: an admin, the requester, the approver and the treasurer.
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'user', id, 1, 'UserRegistered', '1',
       jsonb_build_object('UserRegistered', jsonb_build_object(
           'user_id', id, 'email', role || '@bench.example', 'name', 'Bench ' || role,
           'roles', jsonb_build_array(role), 'registered_by', NULL)),
       '{"actor_id": "operator", "request_id": "bench"}'::jsonb
FROM (VALUES ('00000000-0000-0000-0000-000000000001', 'admin'),
             ('00000000-0000-0000-0000-000000000002', 'staff'),
             ('00000000-0000-0000-0000-000000000003', 'department_head'),
             ('00000000-0000-0000-0000-000000000004', 'treasury')) AS u(id, role)
WHERE NOT EXISTS (SELECT 1 FROM events WHERE aggregate_type = 'user' AND aggregate_id = u.id);

CREATE TEMP TABLE gen_funds AS
SELECT f, md5('fund' || f)::uuid AS id FROM generate_series(0, :funds - 1) AS f;

INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'fund', id::text, 1, 'FundOpened', '1',
       jsonb_build_object('FundOpened', jsonb_build_object(
           'fund_id', id, 'name', 'Bench fund ' || f, 'currency', 'KES', 'float', '1000000000.00',
           'custodian_id', NULL, 'opened_by', '00000000-0000-0000-0000-000000000001')),
       '{"actor_id": "operator", "request_id": "bench"}'::jsonb
FROM gen_funds ORDER BY f;

CREATE TEMP TABLE gen_reqs AS
SELECT i,
       md5('req' || i)::uuid AS id,
       md5('pay' || i)::uuid AS payment_id,
       md5('fund' || (i % :funds))::uuid AS fund_id,
       (i / :funds) AS k,
       ((100 + i % 900)::numeric + 0.50) AS amount
FROM generate_series(0, :requisitions - 1) AS i;

CREATE TEMP TABLE gen_balances AS
SELECT i, 1000000000.00 - sum(amount) OVER (PARTITION BY fund_id ORDER BY i) AS balance_after FROM gen_reqs;

INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT t, aid, seq, et, '1', p, '{"actor_id": "00000000-0000-0000-0000-000000000002", "request_id": "bench"}'::jsonb
FROM (
    SELECT r.i, 1 AS n, 'requisition' AS t, r.id::text AS aid, 1 AS seq, 'RequisitionCreated' AS et,
           jsonb_build_object('RequisitionCreated', jsonb_build_object('requisition_id', r.id, 'fund_id', r.fund_id,
               'currency', 'KES', 'amount', r.amount::text, 'purpose', 'Bench purchase ' || r.i, 'payee', 'Supplier',
               'category', 'office', 'requester_id', '00000000-0000-0000-0000-000000000002')) AS p
    FROM gen_reqs r
    UNION ALL
    SELECT r.i, 2, 'requisition', r.id::text, 2, 'RequisitionSubmitted',
           jsonb_build_object('RequisitionSubmitted', jsonb_build_object('amount', r.amount::text,
               'chain', jsonb_build_array('department_head'), 'policy_version', 0,
               'submitted_by', '00000000-0000-0000-0000-000000000002'))
    FROM gen_reqs r
    UNION ALL
    SELECT r.i, 3, 'requisition', r.id::text, 3, 'RequisitionApproved',
           jsonb_build_object('RequisitionApproved', jsonb_build_object('step', 0, 'role', 'department_head',
               'approver_id', '00000000-0000-0000-0000-000000000003', 'completes_chain', true))
    FROM gen_reqs r
    UNION ALL
    SELECT r.i, 4, 'requisition', r.id::text, 4, 'RequisitionPaid',
           jsonb_build_object('RequisitionPaid', jsonb_build_object('payment_id', r.payment_id, 'fund_id', r.fund_id,
               'amount', r.amount::text, 'method', 'cash', 'reference', NULL,
               'paid_by', '00000000-0000-0000-0000-000000000004'))
    FROM gen_reqs r
    UNION ALL
    SELECT r.i, 5, 'fund', r.fund_id::text, (r.k + 2)::int, 'CashDisbursed',
           jsonb_build_object('CashDisbursed', jsonb_build_object('payment_id', r.payment_id,
               'requisition_id', r.id, 'amount', r.amount::text, 'balance_after', b.balance_after::text,
               'method', 'cash', 'reference', NULL, 'paid_by', '00000000-0000-0000-0000-000000000004'))
    FROM gen_reqs r JOIN gen_balances b USING (i)
) x
ORDER BY i, n;
COMMIT;
