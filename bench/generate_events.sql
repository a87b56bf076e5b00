-- A realistic synthetic history, written through the real event-store schema (plain INSERTs
-- into `events`, so the hash trigger computes every event's hash), for benchmarks and for
-- trying the service on a large store. It passes `pettycash-replay verify` with no violation.
--
--   psql "$URL" -v funds=100 -v requisitions=190000 -f bench/generate_events.sql
--
-- Variables (all optional):
--   funds         number of funds (default 100)
--   requisitions  number of requisitions (default 190000: 1,233,952 events, ~6.5 each; with
--                 the organisation below 1,275,908: cost centres, budgets and their flags)
--   staff         users holding only `staff` (default 400; more requesters hold staff besides)
--   start         the first requisition's day (default 2025-01-01 00:00:00+00). For a history
--                 that ends now (this month's budgets on the dashboard, advances aged from
--                 today), start it `days` + 35 days ago: its last steps run on ~3 weeks past
--                 `days`
--   days          how long the history runs (default 365)
--   regions, branches, departments
--                 an organisation: that many regions, branches per region and departments per
--                 branch (default 0 each: none, every user, fund and requisition unscoped, as
--                 before; all three 0 or all three >= 1). See "With an organisation" below.
--   secret        the SEAL_KEY (else SECRET_KEY) of the service that will use the store
--                 (default: the development SECRET_KEY). Every event carries the MAC the
--                 service would give it (domain/src/integrity.rs), computed here in SQL, so the
--                 service acts on the history and `pettycash-replay verify` authenticates it
--                 with that secret.
--
-- Run it on a freshly migrated database (`pettycash migrate`); it refuses to run twice. Everything
-- is deterministic: ids are UUIDv7 like the service's, made of the creation time and md5-derived
-- bits; times are computed from `start`. The same variables give the same events (and, on a
-- fresh database, the same hashes and chain hash).
--
-- What it writes:
--   * Users of every role, `<role>.<n>@bench.example`, all with the password
--     `bench password 2026` (argon2id, as `pettycash user add` stores it), so that the HTTP API
--     can be used on the result: 3 admins (admin.1 registered by the operator, everyone else by
--     admin.1), :staff staff, 12 branch managers (also staff), 15 department heads (1–5 also
--     staff), 5 regional managers, 6 group finance managers, 4 fpa, 3 cfo, 2 ceo, 8 treasury
--     (treasury.1 also auditor), 3 auditors. Halfway through the history (admin.2): staff.1 is
--     granted department_head, department_head.15 is granted regional_manager and loses
--     department_head, treasury.1 loses treasury. Nobody acts in a role they do not hold at
--     that moment.
--   * Funds in KES, UGX (0 decimals), USD, KWD (3 decimals), TZS, EUR and RWF, each with a
--     branch manager as custodian, opened with `FundOpened` at its current version (3): a
--     reorder level of a quarter of the float, minimum balance zero, auto-replenish on (off
--     for the tight funds, below). A disbursement that takes a fund below its reorder level
--     raises a ReplenishmentRequested for float − balance in the same command (none while
--     one is open), a CFO approves it a day later, treasury funds it (ReplenishmentFunded,
--     back into the balance) two days later. A requester always uses the same fund (their
--     branch). Every
--     fifth fund's float covers only ~90% of what gets approved for it: once it is exhausted
--     (for a counted fund, all but the 5% kept back for shortages), approved requisitions stay
--     approved and unpaid (the other floats cover everything with ~10% to spare). No payment
--     ever overdraws a fund.
--   * Requisitions by every staff holder, amounts 50–50,000 (with the policy's boundaries
--     1,000 / 1,000.01 / 10,000 / 10,000.01 among them), each submitted with the chain of the
--     built-in default policy (version 0) for its amount: department_head up to 1,000;
--     + group_finance_manager up to 10,000; + cfo above. Approvers are holders of the step's
--     role other than the requester (never two steps by one person), payers hold treasury and
--     neither requested nor approved. Outcomes, for the default 190,000: paid 77% (7% after
--     changes were requested at some step, an edit — amount lowered, so the new chain may be
--     shorter, or purpose revised — and a resubmission); rejected at some step 8% (some after
--     a resubmission); cancelled 6.5% (as a draft, while pending, after changes were
--     requested, or once approved). In the last twelfth of the history requisitions are also
--     still open: pending approval at some step 2.9%, approved and unpaid 3.9% (nearly half
--     of them because their fund ran out: a counted fund keeps 5% of its float back for the
--     shortages its counts find), changes requested (some already edited) 0.8%, draft 0.8%.
--     One in eight is edited as a draft before it is submitted.
--   * Times spread over `days` from `start` (recorded_at and metadata.time agree), 20 minutes
--     to a day between a requisition's steps; the events of all streams interleave in time.
--     A cash payment's RequisitionPaid and CashDisbursed (version 2, `reserved` null) are
--     adjacent (one command, one time). Metadata as the API writes it: actor_id, request_id,
--     client_ip, user_agent, time.
--   * Payments through the provider: one payment in four goes by mobile money, as the service
--     records it (commands/src/provider_payments.rs): PaymentStarted on the requisition and
--     CashReserved on the fund when it starts (one command); the provider's success 20 s to
--     3 min later, recorded by the service (metadata of `CommandContext::operator("provider")`):
--     RequisitionPaid (method mobile_money) and a CashDisbursed consuming the reservation
--     (`reserved` = amount, reference the provider's receipt); a `provider_payments` row,
--     succeeded. A fund's stream orders reservations and disbursements in time; payments are
--     paid in order of their start while the fund's available balance (balance less open
--     reservations) covers them. Nothing is left reserved at the end.
--   * Cash counts (see "cash counts" below): every fund in a currency with notes and coins in
--     domain/src/denomination.rs (all but KWD and RWF) counted by its custodian at each month's
--     end and now and then by treasury, `CashCounted` with the pieces; the setting
--     `variance_tolerance_basis_points` = 1 (`SettingChanged` by admin.1 two days before the
--     start) adjusts the cents no coin pays at once; one count in ten finds a shortage, one in
--     twenty a surplus, which a CFO approves (`VarianceAdjusted`; a shortage below the reorder
--     level raises a replenishment) or rejects (`VarianceRejected`) hours later; the last ones
--     stay pending. 1,200 counts for the default.
--   * Advances (see "advances" below): one requisition in 30 of those paid straight through or
--     rejected is asked for as an advance (`AdvanceRequested` in its creation's command), issued
--     by its payment (`AdvanceIssued`, due in 7 days), settled in one or two parts with change
--     returned to the fund (`AdvanceSettled`, `AdvanceCashReturned`), some late after
--     `AdvanceOverdue` (the scheduler's), a few never: 3,010 issued and 199 outstanding at the
--     end for the default; never two unsettled for one holder. The `advances` rows.
--   * Receipt reminders (see "receipt reminders" below): no receipt is attached, so every paid
--     requisition gets the scheduler's `ReceiptOverdue` 3 days after its payment (the default
--     `receipt_reminder_days`), and its `receipt_reminder_checks` row, up to the last payment:
--     a server started on the store has only the last few days to catch up on.
--
-- With an organisation (regions > 0), e.g. 5 × 20 × 5 and 2,000 users for the 1M history:
--
--   psql "$URL" -v funds=100 -v requisitions=190000 -v regions=5 -v branches=20 -v departments=5 \
--        -v staff=1351 -f bench/generate_events.sql
--
--   * One company (BENCH), the regions (R1...), branches (R1-B01...) and departments
--     (R1-B01-D1...) as `org_unit` streams (`UnitOpened` with the unit's path), opened by
--     admin.1 after every user is registered, and their `org_units` rows; then a `UnitAssigned`
--     by admin.1 for every user but admin.1 (who stays in no unit), and the users' unit columns.
--   * Branch managers: one per branch (nb of them), sitting in their branch's first department
--     (they request too). Regional managers: one per region, in it. Department heads: nd + 15,
--     head k in department (k - 1) mod nd, so that every department has one and the first 15
--     a second (heads 1-5 request, department_head.15 loses the role halfway: their department
--     always keeps a head other than the requester). Staff spread over the departments
--     (staff k in department (k - 1) mod nd). Everyone else, admins 2-3 included, at the
--     company.
--   * Funds are owned by branch f mod nb (their `FundOpened`'s `unit`; custodian: its manager),
--     opened by admin.2 (a fund belongs to a unit of its opener's company). A requester uses a
--     fund of their branch (with fewer funds than branches, fund (branch mod funds)).
--   * Requisitions are version-2 `RequisitionCreated`s with the requester's unit (their
--     department) and origin `branch`; submissions are version-2 `RequisitionSubmitted`s with
--     `threshold` (the default policy's `Tier 1`..`Tier 3`) and `eligible`: per step, the
--     active holders of its role in the requisition's scope at that time, as
--     `domain::routing::route` gives them (department head: the requester's department;
--     group finance manager, cfo: the company), never the requester. No step is ever without
--     someone eligible, so nothing escalates. Approvers, rejecters and those who request
--     changes are picked from those lists (a department head who held the role all along).
--   * A cost centre under every department (R1-B01-D1-CC, `UnitOpened` by admin.1 after the
--     departments); every fourth staff member sits in their department's cost centre (the
--     `unit` of their requisitions: a cost centre's budget covers them).
--   * Budgets (see "budgets" below): the CFO sets one per cost centre, department and branch
--     and currency paid in, per month from the start to 45 days past the end (`BudgetSet` on
--     the company's `budget_plan`), of 0.80 to 1.49 times what the unit paid that month; every
--     submission a budget would let overrun records the `BudgetExceeded` the service records
--     just before it (its later events move up the stream). Budget against actual and the
--     dashboard's `budget_this_month` read them.
--   * Everything else as above. Without an organisation the users, requisitions' creations and
--     submissions are those of earlier versions of this script; funds and payments are not
--     (FundOpened 3, CashDisbursed 2, mobile money and replenishments since 2026-12), nor are
--     counts, advances and budgets (the events the code writes today, 2026-12).
--
-- Set-based: a few statements build the plan in temporary tables (one row per event), then one
-- INSERT ... SELECT appends the events in time order (per-stream sequences in order); walks in
-- PL/pgSQL where what happens depends on everything before (each fund's cash book, each
-- holder's advances). All in one transaction (108 s for the default on 2 shared vCPU, where
-- the version before counts, advances and budgets took 123 s, and 33 s on the quiet machine:
-- see docs/performance.md): while it runs, projection workers and sealers of every database on
-- the same cluster wait for it, and a `pettycash-replay rebuild` run there meanwhile goes live
-- without the events of transactions that began after this one.
\set ON_ERROR_STOP on
\if :{?funds}
\else
\set funds 100
\endif
\if :{?requisitions}
\else
\set requisitions 190000
\endif
\if :{?staff}
\else
\set staff 400
\endif
\if :{?start}
\else
\set start '2025-01-01 00:00:00+00'
\endif
\if :{?days}
\else
\set days 365
\endif
\if :{?regions}
\else
\set regions 0
\endif
\if :{?branches}
\else
\set branches 0
\endif
\if :{?departments}
\else
\set departments 0
\endif
\if :{?secret}
\else
\set secret 'insecure-development-secret-key-do-not-use-in-production'
\endif
-- argon2id of `bench password 2026`, made by the service's own code (`pettycash user add`).
\set password_hash '$argon2id$v=19$m=19456,t=2,p=1$kye0pRPPqi3btIRk+ERK2Q$HDtZveBqhftef2/4nOgyXR5WWcBugwcj/H0TdLED2x4'

SELECT (:funds >= 1 AND :requisitions >= 0 AND :staff >= 10 AND :days >= 1
        AND ((:regions = 0 AND :branches = 0 AND :departments = 0)
             OR (:regions >= 1 AND :branches >= 1 AND :departments >= 1))) AS gen_args_ok \gset
\if :gen_args_ok
\else
DO $$ BEGIN RAISE EXCEPTION 'generate_events.sql: needs funds >= 1, requisitions >= 0, staff >= 10, days >= 1, and regions, branches, departments all 0 or all >= 1'; END $$;
\endif
-- The organisation: org 1 when it is on; nb branches and nd departments in all.
SELECT (:regions > 0)::int AS org, :regions * :branches AS nb, :regions * :branches * :departments AS nd \gset

BEGIN;
SET LOCAL work_mem = '256MB';
SET LOCAL jit = off;   -- compiling these long expressions costs far more than it saves
-- Days, months and intervals in UTC whatever the server's default (months are UTC for budgets
-- and periods, and a day is 24 hours).
SET LOCAL TimeZone = 'UTC';

-- Ids are UUIDv7 like the service's (Id::now_v7): the creation time in milliseconds, then bits
-- of md5(seed) instead of random ones.
CREATE FUNCTION pg_temp.uuid7(t timestamptz, seed text) RETURNS uuid
LANGUAGE sql STABLE AS $$   -- STABLE (as extract() is), so that it is inlined
    SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(md5(seed), 1, 3)
            || substr('89ab89ab89ab89ab', strpos('0123456789abcdef', substr(md5(seed), 4, 1)), 1)
            || substr(md5(seed), 5, 15))::uuid
$$;

-- A time as chrono writes a `DateTime<Utc>` in a payload (RFC 3339, `AutoSi`: no fraction for
-- a whole second, else 3 or 6 digits, whichever shows every non-zero one).
CREATE FUNCTION pg_temp.rfc3339(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN extract(microseconds FROM t)::bigint % 1000000 = 0 THEN ''
                   WHEN extract(microseconds FROM t)::bigint % 1000 = 0 THEN to_char(t AT TIME ZONE 'UTC', '.MS')
                   ELSE to_char(t AT TIME ZONE 'UTC', '.US') END || 'Z'
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM users WHERE email LIKE '%@bench.example') THEN
        RAISE EXCEPTION 'bench data is already in this database: run bench/generate_events.sql on a freshly migrated database';
    END IF;
END $$;

SELECT :'start'::timestamptz + make_interval(days => :days) / 2 + interval '0.5 second' AS t_mid,
       -- The end of the history's `days` (its requisitions' last steps and advances run on a few
       -- weeks past it; counts and settlements stop there).
       :'start'::timestamptz + make_interval(days => :days) AS t_end,
       extract(epoch FROM make_interval(days => :days))::bigint AS span_s,
       greatest(:requisitions / 12, least(:requisitions, 40)) AS tail \gset

-- ---- users ---------------------------------------------------------------------------------
-- Role order is the domain's (`Role` derives Ord in declaration order): roles lists are sorted by it.
CREATE TEMP TABLE gen_role_order ON COMMIT DROP AS
SELECT role, ord::int FROM unnest(ARRAY['staff', 'branch_manager', 'department_head', 'regional_manager',
    'group_finance_manager', 'fpa', 'cfo', 'ceo', 'treasury', 'auditor', 'admin']) WITH ORDINALITY AS r(role, ord);

CREATE TEMP TABLE gen_users ON COMMIT DROP AS
WITH counts(role, n) AS (
    VALUES ('admin', 3), ('staff', :staff),
           -- With an organisation: a branch manager per branch, a regional manager per region,
           -- and 15 department heads more than departments (see gen_user_unit below).
           ('branch_manager', CASE WHEN :org = 1 THEN :nb ELSE 12 END),
           ('department_head', CASE WHEN :org = 1 THEN :nd + 15 ELSE 15 END),
           ('regional_manager', CASE WHEN :org = 1 THEN :regions ELSE 5 END), ('group_finance_manager', 6), ('fpa', 4), ('cfo', 3), ('ceo', 2),
           ('treasury', 8), ('auditor', 3)
), people AS (
    SELECT c.role, k, o.ord
    FROM counts c JOIN gen_role_order o USING (role) CROSS JOIN LATERAL generate_series(1, c.n) AS k
), numbered AS (
    SELECT row_number() OVER (ORDER BY role <> 'admin', ord, k)::int AS u, role, k FROM people
)
SELECT u, role, k,
       pg_temp.uuid7(:'start'::timestamptz - interval '60 days' + u * interval '7 minutes', 'bench-user:' || role || ':' || k) AS id,
       role || '.' || k || '@bench.example' AS email,
       (ARRAY['Amina', 'Brian', 'Wanjiru', 'Otieno', 'Grace', 'Peter', 'Achieng', 'Samuel', 'Faith', 'David',
              'Nafula', 'Joseph', 'Mercy', 'Kevin', 'Aisha', 'Daniel', 'Zawadi', 'Ibrahim', 'Esther', 'Musa',
              'Lilian', 'Hassan', 'Naliaka', 'George'])[(u * 7) % 24 + 1]
         || ' ' ||
       (ARRAY['Kamau', 'Odhiambo', 'Mwangi', 'Njoroge', 'Ochieng', 'Mutua', 'Wafula', 'Kiprop', 'Chebet', 'Nyambura',
              'Omondi', 'Kariuki', 'Atieno', 'Kimani', 'Barasa', 'Mohamed', 'Wambui', 'Kibet', 'Auma', 'Okello',
              'Nakato', 'Ssempala', 'Mensah', 'Haile'])[(u * 11 + k) % 24 + 1] AS name,
       CASE
           WHEN role = 'branch_manager' THEN ARRAY['staff', 'branch_manager']
           WHEN role = 'department_head' AND k <= 5 THEN ARRAY['staff', 'department_head']
           WHEN role = 'treasury' AND k = 1 THEN ARRAY['treasury', 'auditor']
           ELSE ARRAY[role]
       END AS roles,
       :'start'::timestamptz - interval '60 days' + u * interval '7 minutes' AS registered_at,
       -- Where the user sits, with an organisation (NULL: unscoped): the level and the unit's
       -- number at that level.
       CASE WHEN :org = 0 OR (role = 'admin' AND k = 1) THEN NULL
            -- Every fourth staff member in their department's cost centre (its budget covers
            -- what they request).
            WHEN role = 'staff' AND k % 4 = 0 THEN 'cost_centre'
            WHEN role IN ('staff', 'department_head', 'branch_manager') THEN 'department'
            WHEN role = 'regional_manager' THEN 'region'
            ELSE 'company' END AS ulevel,
       CASE WHEN role IN ('staff', 'department_head') THEN (k - 1) % greatest(:nd, 1)
            WHEN role = 'branch_manager' THEN ((k - 1) % greatest(:nb, 1)) * :departments
            WHEN role = 'regional_manager' THEN (k - 1) % greatest(:regions, 1)
            ELSE 0 END AS uno
FROM numbered;

-- Role changes halfway through, by admin.2. At t_mid exactly: requisition events fall on whole
-- seconds and t_mid does not, so every event is clearly before or after them.
CREATE TEMP TABLE gen_role_events ON COMMIT DROP AS
SELECT u.id AS user_id, c.seq + :org AS seq, c.kind, c.role
FROM (VALUES ('staff.1@bench.example', 2, 2, 'department_head'),
             ('department_head.15@bench.example', 2, 2, 'regional_manager'),
             ('department_head.15@bench.example', 3, 3, 'department_head'),
             ('treasury.1@bench.example', 2, 3, 'treasury')) AS c(email, seq, kind, role)
JOIN gen_users u USING (email);

-- Who holds which role before (era 0) and after (era 1) t_mid.
CREATE TEMP TABLE gen_holds ON COMMIT DROP AS
SELECT u.u, u.id, r.role, e.era
FROM gen_users u CROSS JOIN LATERAL unnest(u.roles) AS r(role) CROSS JOIN (VALUES (0), (1)) AS e(era)
WHERE NOT (e.era = 1 AND EXISTS (SELECT 1 FROM gen_role_events x
                                 WHERE x.user_id = u.id AND x.role = r.role AND x.kind = 3))
UNION ALL
SELECT u.u, u.id, x.role, 1 FROM gen_role_events x JOIN gen_users u ON u.id = x.user_id WHERE x.kind = 2;

CREATE TEMP TABLE gen_pool ON COMMIT DROP AS
SELECT role, era, (row_number() OVER (PARTITION BY role, era ORDER BY u) - 1)::int AS idx, id
FROM gen_holds;
CREATE TEMP TABLE gen_pool_n ON COMMIT DROP AS SELECT role, era, count(*)::int AS n FROM gen_pool GROUP BY role, era;

-- ---- the organisation (regions > 0) --------------------------------------------------------
-- One company, :regions regions, :branches branches per region, :departments departments per
-- branch, opened by admin.1 (an admin of no unit) after every user is registered; each unit's
-- path as `UnitPath` records it (domain/src/organisation.rs). Empty without an organisation.
SELECT :'start'::timestamptz - interval '60 days' + ((SELECT count(*) FROM gen_users) + 1) * interval '7 minutes'
       AS t_org \gset
CREATE TEMP TABLE gen_units ON COMMIT DROP AS
WITH lv AS (
    SELECT 'company' AS kind, 0 AS lvl, 0 AS no, NULL::int AS region_no, NULL::int AS branch_no, NULL::int AS dept_no
    WHERE :org = 1
    UNION ALL
    SELECT 'region', 1, r, r, NULL, NULL FROM generate_series(0, :regions - 1) AS r
    UNION ALL
    SELECT 'branch', 2, b, b / :branches, b, NULL FROM generate_series(0, :nb - 1) AS b
    UNION ALL
    SELECT 'department', 3, d, d / :departments / :branches, d / :departments, d FROM generate_series(0, :nd - 1) AS d
    UNION ALL
    -- One cost centre per department (numbered as its department).
    SELECT 'cost_centre', 4, d, d / :departments / :branches, d / :departments, d FROM generate_series(0, :nd - 1) AS d
), ids AS (
    SELECT lv.*, :'t_org'::timestamptz + row_number() OVER (ORDER BY lvl, no) * interval '1 second' AS opened_at,
           row_number() OVER (ORDER BY lvl, no)::int AS n
    FROM lv
), ids2 AS (
    SELECT ids.*, pg_temp.uuid7(opened_at, 'bench-unit:' || kind || ':' || no) AS id FROM ids
)
SELECT i.n, i.kind, i.no, i.opened_at, i.id,
       CASE i.kind WHEN 'region' THEN c.id WHEN 'branch' THEN r.id WHEN 'department' THEN b.id
                   WHEN 'cost_centre' THEN d.id END AS parent_id,
       c.id AS company_id, r.id AS region_id, b.id AS branch_id, d.id AS department_id,
       CASE WHEN i.kind = 'cost_centre' THEN i.id END AS cost_centre_id,
       jsonb_build_object('unit_id', i.id, 'company', c.id, 'region', r.id, 'branch', b.id,
                          'department', d.id, 'cost_centre', CASE WHEN i.kind = 'cost_centre' THEN i.id END) AS path,
       CASE i.kind
           WHEN 'company' THEN 'BENCH'
           WHEN 'region' THEN 'R' || (i.no + 1)
           WHEN 'branch' THEN 'R' || (i.region_no + 1) || '-B' || lpad((i.no % :branches + 1)::text, 2, '0')
           ELSE 'R' || (i.region_no + 1) || '-B' || lpad((i.branch_no % :branches + 1)::text, 2, '0')
                || '-D' || (i.no % :departments + 1) || CASE WHEN i.kind = 'cost_centre' THEN '-CC' ELSE '' END
       END AS code,
       CASE i.kind
           WHEN 'company' THEN 'Bench Holdings'
           WHEN 'region' THEN (ARRAY['Nairobi', 'Central', 'Coast', 'Western', 'Rift Valley', 'Lake', 'Northern',
                                     'Eastern'])[i.no % 8 + 1] || ' region'
                              || CASE WHEN i.no >= 8 THEN ' ' || (i.no / 8 + 1) ELSE '' END
           WHEN 'branch' THEN (ARRAY['Nairobi', 'Kampala', 'Mombasa', 'Kuwait City', 'Kisumu', 'Dar es Salaam',
                                     'Nakuru', 'Eldoret', 'Kigali', 'Thika', 'Entebbe', 'Malindi', 'Arusha', 'Nyeri',
                                     'Gulu', 'Machakos', 'Mwanza', 'Garissa', 'Jinja', 'Kitale'])[i.no % 20 + 1]
                              || ' branch' || CASE WHEN i.no >= 20 THEN ' ' || (i.no / 20 + 1) ELSE '' END
           ELSE (ARRAY['Operations', 'Finance', 'Sales', 'Customer service', 'Logistics', 'Human resources', 'IT',
                       'Procurement'])[i.no % :departments % 8 + 1]
                || CASE WHEN i.no % :departments >= 8 THEN ' ' || (i.no % :departments / 8 + 1) ELSE '' END
                || CASE WHEN i.kind = 'cost_centre' THEN ' projects' ELSE '' END
       END AS name
FROM ids2 i
JOIN ids2 c ON c.kind = 'company'
LEFT JOIN ids2 r ON r.kind = 'region' AND r.no = i.region_no
LEFT JOIN ids2 b ON b.kind = 'branch' AND b.no = i.branch_no
LEFT JOIN ids2 d ON d.kind = 'department' AND d.no = i.dept_no;

-- Each placed user's unit: staff spread over the departments (every fourth in the department's
-- cost centre; `dept` is the department's number either way); department head k in department
-- (k - 1) mod nd, so every department has one, and the first 15 departments (mod nd) a second
-- one: the requesting heads (1-5) and department_head.15 (no longer one after t_mid) leave
-- their department a head who held the role all along. A branch manager sits in the first
-- department of their branch (they request too), a regional manager in their region; admin.1
-- in no unit (it opens the units); everyone else at the company.
CREATE TEMP TABLE gen_user_unit ON COMMIT DROP AS
SELECT u.id, u.u, g.id AS unit_id, g.path, g.company_id, g.region_id, g.branch_id, g.department_id,
       g.cost_centre_id, CASE WHEN g.kind IN ('department', 'cost_centre') THEN g.no END AS dept
FROM gen_users u JOIN gen_units g ON g.kind = u.ulevel AND g.no = u.uno;
CREATE UNIQUE INDEX ON gen_user_unit (id);

-- Requesters: everyone holding staff (nobody gains or loses it). Their fund: without an
-- organisation, idx mod funds; with one, a fund of their branch (fund f belongs to branch
-- f mod nb; with fewer funds than branches, fund (branch mod funds)).
CREATE TEMP TABLE gen_requesters ON COMMIT DROP AS
SELECT p.idx, p.id, uu.dept,
       CASE WHEN :org = 0 THEN p.idx % :funds
            WHEN :funds >= :nb THEN uu.dept / :departments
                 + :nb * (p.idx % ((:funds - uu.dept / :departments + :nb - 1) / :nb))
            ELSE (uu.dept / :departments) % :funds END AS fundf
FROM gen_pool p LEFT JOIN gen_user_unit uu USING (id)
WHERE p.role = 'staff' AND p.era = 0;
ANALYZE gen_pool, gen_pool_n, gen_requesters;
SELECT count(*) AS n_req FROM gen_requesters \gset
SELECT id AS admin1 FROM gen_users WHERE email = 'admin.1@bench.example' \gset
SELECT id AS admin2 FROM gen_users WHERE email = 'admin.2@bench.example' \gset

-- ---- funds ---------------------------------------------------------------------------------
CREATE TEMP TABLE gen_funds ON COMMIT DROP AS
SELECT f, pg_temp.uuid7(:'start'::timestamptz - interval '7 days' + f * interval '3 minutes', 'fund' || f) AS id,
       (ARRAY['KES', 'UGX', 'USD', 'KWD', 'KES', 'TZS', 'EUR', 'KES', 'RWF', 'KES'])[f % 10 + 1] AS currency,
       (ARRAY[2, 0, 2, 3, 2, 2, 2, 2, 0, 2])[f % 10 + 1] AS minor,
       -- The currency's smallest note or coin (domain/src/denomination.rs); KWD and RWF have no
       -- table there, so their funds are never counted (NULL).
       (ARRAY[0.50, 50, 0.01, NULL, 0.50, 50, 0.01, 0.50, NULL, 0.50])[f % 10 + 1] AS smallest,
       f % 5 = 4 AS tight,
       (ARRAY['Nairobi', 'Kampala', 'Mombasa', 'Kuwait City', 'Kisumu', 'Dar es Salaam', 'Nakuru', 'Eldoret',
              'Kigali', 'Thika', 'Entebbe', 'Malindi', 'Arusha', 'Nyeri', 'Gulu', 'Machakos', 'Mwanza',
              'Garissa', 'Jinja', 'Kitale'])[f % 20 + 1]
         || ' branch petty cash' || CASE WHEN f >= 20 THEN ' ' || (f / 20 + 1) ELSE '' END AS name,
       (SELECT id FROM gen_pool p WHERE p.role = 'branch_manager' AND p.era = 0
          AND p.idx = f % (SELECT n FROM gen_pool_n WHERE role = 'branch_manager' AND era = 0)) AS custodian,
       :'start'::timestamptz - interval '7 days' + f * interval '3 minutes' AS opened_at,
       NULL::numeric AS float,
       -- With an organisation: owned by branch f mod nb (its manager is the custodian).
       (SELECT g.path FROM gen_units g WHERE g.kind = 'branch' AND g.no = f % greatest(:nb, 1)) AS unit
FROM generate_series(0, :funds - 1) AS f;
ANALYZE gen_funds;

-- ---- requisitions: the plan of each one ----------------------------------------------------
-- Paths: 1 paid; 2 changes requested, edited, resubmitted, paid; 3 the same but rejected in
-- the second round; 4 rejected; 5 cancelled while pending; 6 cancelled as a draft; 7 cancelled
-- after changes were requested; 8 cancelled once approved; 9 pending; 10 approved, unpaid;
-- 11 changes requested (maybe edited), not resubmitted; 12 draft.
CREATE TEMP TABLE gen_reqs ON COMMIT DROP AS
WITH b AS MATERIALIZED (
    SELECT i,
           ('x' || substr(md5('bench-req:' || i), 1, 15))::bit(60)::bigint AS h,
           ('x' || substr(md5('bench-req:' || i), 16, 15))::bit(60)::bigint AS h2,
           ('x' || substr(md5('bench-actors:' || i), 1, 15))::bit(60)::bigint AS h3,
           CASE WHEN i >= :requisitions - :tail AND (i * 7) % 20 < 15 THEN
                    CASE WHEN (i * 7) % 20 < 7 THEN 9 WHEN (i * 7) % 20 < 11 THEN 10
                         WHEN (i * 7) % 20 < 13 THEN 11 ELSE 12 END
                ELSE
                    CASE WHEN (i * 37) % 100 < 72 THEN 1 WHEN (i * 37) % 100 < 80 THEN 2
                         WHEN (i * 37) % 100 < 82 THEN 3 WHEN (i * 37) % 100 < 89 THEN 4
                         WHEN (i * 37) % 100 < 93 THEN 5 WHEN (i * 37) % 100 = 93 THEN 6
                         WHEN (i * 37) % 100 = 94 THEN 7 WHEN (i * 37) % 100 = 95 THEN 8 ELSE 1 END
           END AS path
    FROM generate_series(0, :requisitions - 1) AS i
), r AS MATERIALIZED (
    SELECT b.*, q.id AS requester, q.idx AS ridx, q.dept, f.f, f.id AS fund_id, f.currency, f.minor,
           round(CASE h % 1000
                     WHEN 0 THEN 1000 WHEN 1 THEN 10000 WHEN 2 THEN 1000.01 WHEN 3 THEN 10000.01
                     ELSE CASE WHEN h % 1000 < 700 THEN 50 + ((h / 1000) % 95000) / 100.0
                               WHEN h % 1000 < 920 THEN 1000.01 + ((h / 1000) % 899999) / 100.0
                               ELSE 10000.01 + ((h / 1000) % 4000000) / 100.0 END
                 END, f.minor) AS amount1,
           h2 % 8 = 0 AS de,                       -- edited as a draft
           ((h2 / 8) % 3)::int AS de_kind,          -- 0 payee, 1 category cleared, 2 amount
           ((h2 / 32) % 3)::int AS e2_kind,         -- edit after changes: 0 purpose, 1 amount, 2 both
           (0.5 + 0.1 * ((h2 / 96) % 4)) AS e2_factor,
           (:'start'::timestamptz + ((i::bigint * :span_s) / greatest(:requisitions, 1)) * interval '1 second') AS t0,
           (1200 + (h2 / 1000000) % 86400)::int AS gap_s
    FROM b
    JOIN gen_requesters q ON q.idx = (b.i::bigint * 7919) % :n_req
    JOIN gen_funds f ON f.f = q.fundf
), a AS MATERIALIZED (
    SELECT r.*,
           CASE WHEN de AND de_kind = 2 THEN round(amount1 * 1.2, minor) ELSE amount1 END AS amount0,
           CASE WHEN e2_kind = 0 THEN amount1 ELSE round(amount1 * e2_factor, minor) END AS amount2,
           CASE WHEN amount1 <= 1000 THEN 1 WHEN amount1 <= 10000 THEN 2 ELSE 3 END AS l1
    FROM r
), c AS MATERIALIZED (
    SELECT a.*,
           CASE WHEN amount2 <= 1000 THEN 1 WHEN amount2 <= 10000 THEN 2 ELSE 3 END AS l2,
           ((h2 / 10000) % l1)::int AS s1
    FROM a
)
SELECT pg_temp.uuid7(c.t0, 'req' || c.i) AS id, c.*,
       ((h2 / 100000) % l2)::int AS s2,
       (path NOT IN (6, 12))::int AS sub1,
       CASE WHEN path IN (1, 8, 10) THEN l1 WHEN path IN (6, 12) THEN 0 ELSE s1 END AS a1,
       CASE WHEN path IN (2, 3, 7, 11) THEN 1 WHEN path = 4 THEN 2 ELSE 0 END AS d1,
       CASE WHEN path IN (2, 3) THEN 1 WHEN path = 11 THEN ((h2 / 1000) % 2)::int ELSE 0 END AS ed2,
       (path IN (2, 3))::int AS sub2,
       CASE WHEN path = 2 THEN l2 WHEN path = 3 THEN ((h2 / 100000) % l2)::int ELSE 0 END AS a2,
       CASE WHEN path = 3 THEN 2 ELSE 0 END AS d2,
       (path IN (5, 6, 7, 8))::int AS cancel,
       (path IN (1, 2))::int AS pay
FROM c;

-- Each event's sequence: c1 draft edit, c2 submission (its a1 approvals follow), c4 decision,
-- c5 edit, c6 resubmission (its a2 approvals follow), c8 decision, c9 cancel, c10 payment.
ALTER TABLE gen_reqs ADD COLUMN c1 int, ADD COLUMN c2 int, ADD COLUMN c4 int, ADD COLUMN c5 int,
    ADD COLUMN c6 int, ADD COLUMN c8 int, ADD COLUMN c9 int, ADD COLUMN c10 int;
UPDATE gen_reqs SET
    c1 = 1 + de::int,
    c2 = 1 + de::int + sub1,
    c4 = 1 + de::int + sub1 + a1 + (d1 > 0)::int,
    c5 = 1 + de::int + sub1 + a1 + (d1 > 0)::int + ed2,
    c6 = 1 + de::int + sub1 + a1 + (d1 > 0)::int + ed2 + sub2,
    c8 = 1 + de::int + sub1 + a1 + (d1 > 0)::int + ed2 + sub2 + a2 + (d2 > 0)::int,
    c9 = 1 + de::int + sub1 + a1 + (d1 > 0)::int + ed2 + sub2 + a2 + (d2 > 0)::int + cancel,
    c10 = 1 + de::int + sub1 + a1 + (d1 > 0)::int + ed2 + sub2 + a2 + (d2 > 0)::int + cancel + pay;
CREATE UNIQUE INDEX ON gen_reqs (i);
ANALYZE gen_reqs;

-- ---- payments: floats, and no payment that would overdraw its fund -------------------------
-- One payment in four goes by mobile money through the provider: started at `ts`
-- (PaymentStarted, and CashReserved on the fund), settled by the provider's success 20 s to
-- 3 min later (RequisitionPaid, and the CashDisbursed that consumes the reservation). The
-- others are cash, paid at once at `ts`.
CREATE TEMP TABLE gen_pay ON COMMIT DROP AS
SELECT i, id, f, h3, CASE WHEN sub2 = 1 THEN amount2 ELSE amount1 END AS amount, ts, c10 AS seq,
       pg_temp.uuid7(ts, 'pay' || i) AS payment_id, mm,
       ts + CASE WHEN mm THEN (20 + (h3 / 4194304) % 160) * interval '1 second' ELSE interval '0' END AS settled_at
FROM (SELECT *, t0 + (c10 - 1) * gap_s * interval '1 second' AS ts, (h3 / 1048576) % 4 = 0 AS mm
      FROM gen_reqs WHERE pay = 1) AS r;

UPDATE gen_funds g SET float = least(1000000000, ceil(x / p) * p)
FROM (SELECT g2.f, x, power(10::numeric, floor(log(x)) - 1) AS p
      FROM gen_funds g2
      LEFT JOIN (SELECT f, sum(amount) AS total FROM gen_pay GROUP BY f) t USING (f)
      CROSS JOIN LATERAL (SELECT greatest(100000, coalesce(t.total, 0) * CASE WHEN g2.tight THEN 0.9 ELSE 1.1 END) AS x) v
     ) s
WHERE s.f = g.f;
UPDATE gen_funds SET float = round(float, minor);

-- Paid in time order of the payments' starts while the fund lasts (a prefix of each fund's
-- payments): each payment, cash or reservation, is covered by the fund's available balance
-- (the float less everything paid or reserved before it). The rest stay approved and unpaid.
-- A counted fund keeps 5 % of its float back for the shortages its counts may find (at most
-- 4 % of the float is ever adjusted away: see the cash book below), so that a shortage never
-- leaves a later payment uncovered.
-- The payer holds treasury when the payment starts and when it is settled (the era of
-- `settled_at`: nobody gains treasury halfway).
CREATE TEMP TABLE gen_paid ON COMMIT DROP AS
SELECT p.*, fu.id AS fund_id, fu.currency, t.id AS payer,
       -- the payment's number in its fund (the petty cash voucher's, PCV-000001...)
       row_number() OVER (PARTITION BY p.f ORDER BY p.ts, p.i) AS pno
FROM (SELECT gp.*, sum(amount) OVER (PARTITION BY f ORDER BY ts, i) AS cum FROM gen_pay gp) p
JOIN gen_funds fu USING (f)
CROSS JOIN LATERAL (SELECT (p.settled_at > :'t_mid'::timestamptz)::int AS era) e
JOIN gen_pool_n n ON n.role = 'treasury' AND n.era = e.era
JOIN gen_pool t ON t.role = 'treasury' AND t.era = e.era AND t.idx = ((p.h3 / 64) % n.n)::int
WHERE p.cum <= fu.float - CASE WHEN fu.smallest IS NULL THEN 0 ELSE round(fu.float * 0.05, fu.minor) END;
UPDATE gen_reqs r SET pay = 0 WHERE pay = 1 AND NOT EXISTS (SELECT 1 FROM gen_paid p WHERE p.i = r.i);
ANALYZE gen_paid;

-- ---- advances ------------------------------------------------------------------------------
-- About one requisition in 30 that is paid straight through (path 1) or rejected (path 4), and
-- whose amount never changes, is asked for as an advance: `AdvanceRequested` on its
-- requester's `advance_account` stream in the command that creates it. A paid one is issued by
-- its payment (`AdvanceIssued` in the payment's command, due 7 days later: the setting's
-- default) and settled by its holder (`AdvanceSettled`; the change returned is the fund's
-- `AdvanceCashReturned` in the same command):
--   * most within 1–6 days, all at once (four in ten spent everything, the others return
--     5–30 %), or one in eight in two parts;
--   * one in eight late, 9–45 days after the payment, after the scheduler recorded it overdue
--     (`AdvanceOverdue`, once, 30 s to 10 min past `due_at`, metadata of
--     `CommandContext::operator("scheduler")`);
--   * a few never (3 %, and a quarter of those paid in the last 90 days of the history, half
--     of them partly settled): outstanding at the end, recorded overdue, so the treasury
--     report ages them. A settlement that would fall after the end of `days` is not made.
-- The holder may not have two at once (`advance_block_while_unsettled`, on by default): a
-- requisition is an advance only when it is created after the holder's previous advance was
-- settled (never, while one stays outstanding); one that is never paid blocks nothing.
-- Reimbursements of spending beyond an advance (`extra_owed`) are not generated.
CREATE TEMP TABLE gen_adv_cand ON COMMIT DROP AS
WITH c AS (
    SELECT r.i, r.id AS req_id, r.requester, r.t0, r.f, r.fund_id, r.currency, r.minor, r.amount1 AS amount,
           p.settled_at AS paid_at, p.payment_id, p.mm, p.payer, p.seq AS pay_seq,
           ('x' || substr(md5('bench-adv:' || r.i), 1, 15))::bit(60)::bigint AS ha,
           ('x' || substr(md5('bench-adv:' || r.i), 16, 15))::bit(60)::bigint AS hb
    FROM gen_reqs r LEFT JOIN gen_paid p USING (i)
    WHERE r.path IN (1, 4) AND NOT (r.de AND r.de_kind = 2)
)
SELECT c.*,
       CASE WHEN c.paid_at IS NULL THEN NULL
            WHEN (c.ha / 30) % 100 < 3
              OR (c.paid_at > :'t_end'::timestamptz - interval '90 days' AND (c.ha / 30) % 100 < 28) THEN 'keep'
            WHEN (c.ha / 30) % 100 < 15 THEN 'late'
            WHEN (c.ha / 30) % 100 < 27 THEN 'two'
            ELSE 'one' END AS mode,
       ((c.ha / 3000) % 100)::int AS r1
FROM c WHERE c.ha % 30 = 0;

-- Each candidate's settlements (as planned; only those by the end of `days` are made).
CREATE TEMP TABLE gen_adv_set ON COMMIT DROP AS
SELECT c.i, s.n, s.at, s.spent, s.returned,
       pg_temp.uuid7(s.at, 'bench-settlement:' || c.i || ':' || s.n) AS settlement_id,
       c.amount - sum(s.spent + s.returned) OVER (PARTITION BY c.i ORDER BY s.n) AS outstanding_after
FROM gen_adv_cand c
CROSS JOIN LATERAL (
    SELECT CASE WHEN c.r1 < 40 THEN round(0::numeric, c.minor)
                ELSE round(c.amount * (5 + c.r1 % 26) / 100, c.minor) END AS ret1,
           round(c.amount * (40 + c.r1 % 41) / 100, c.minor) AS part1,
           round(c.amount * (20 + c.r1 % 51) / 100, c.minor) AS kept1) v
CROSS JOIN LATERAL (VALUES
    (1, CASE c.mode
            WHEN 'one' THEN c.paid_at + interval '1 day' + (c.hb % 432000) * interval '1 second'
            WHEN 'late' THEN c.paid_at + interval '9 days' + (c.hb % 3110400) * interval '1 second'
            WHEN 'two' THEN c.paid_at + interval '1 day' + (c.hb % 172800) * interval '1 second'
            WHEN 'keep' THEN CASE WHEN (c.hb / 7) % 2 = 0
                                  THEN c.paid_at + interval '1 day' + (c.hb % 345600) * interval '1 second' END
        END,
        CASE c.mode WHEN 'two' THEN v.part1 WHEN 'keep' THEN v.kept1 ELSE c.amount - v.ret1 END,
        CASE WHEN c.mode IN ('one', 'late') THEN v.ret1 ELSE round(0::numeric, c.minor) END),
    (2, CASE WHEN c.mode = 'two' THEN c.paid_at + interval '4 days' + ((c.hb / 1000) % 172800) * interval '1 second' END,
        c.amount - v.part1 - CASE WHEN c.r1 % 3 = 0 THEN round((c.amount - v.part1) / 5, c.minor) ELSE 0 END,
        CASE WHEN c.r1 % 3 = 0 THEN round((c.amount - v.part1) / 5, c.minor) ELSE round(0::numeric, c.minor) END)
) AS s(n, at, spent, returned)
WHERE c.paid_at IS NOT NULL AND s.at IS NOT NULL AND s.at <= :'t_end'::timestamptz;

-- Per holder, in order of creation: an advance only while none of theirs is unsettled. `free_at`
-- of a paid one: its last settlement, or never when it stays outstanding.
CREATE FUNCTION pg_temp.gen_advance_walk() RETURNS TABLE (o_i int)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
    holder uuid;
    free_at timestamptz;
BEGIN
    FOR c IN SELECT a.i, a.requester, a.t0, a.paid_at IS NOT NULL AS paid,
                    CASE WHEN a.amount > coalesce((SELECT sum(s.spent + s.returned) FROM gen_adv_set s WHERE s.i = a.i), 0)
                         THEN 'infinity'::timestamptz
                         ELSE (SELECT max(s.at) FROM gen_adv_set s WHERE s.i = a.i) END AS settled_at
             FROM gen_adv_cand a ORDER BY a.requester, a.t0, a.i LOOP
        IF holder IS DISTINCT FROM c.requester THEN
            holder := c.requester;
            free_at := '-infinity';
        END IF;
        IF c.t0 > free_at THEN
            o_i := c.i;
            RETURN NEXT;
            IF c.paid THEN
                free_at := c.settled_at;
            END IF;
        END IF;
    END LOOP;
END;
$$;
CREATE TEMP TABLE gen_adv ON COMMIT DROP AS
SELECT c.*, c.paid_at + interval '7 days' AS due_at,
       -- Recorded overdue when something is outstanding at its due date.
       CASE WHEN c.paid_at IS NOT NULL AND c.amount > coalesce((SELECT sum(s.spent + s.returned) FROM gen_adv_set s
                                                                WHERE s.i = c.i AND s.at < c.paid_at + interval '7 days'), 0)
            THEN c.paid_at + interval '7 days 30 seconds' + (c.hb / 1000000) % 570 * interval '1 second' END AS overdue_at
FROM gen_adv_cand c WHERE c.i IN (SELECT o_i FROM pg_temp.gen_advance_walk());
DELETE FROM gen_adv_set s WHERE NOT EXISTS (SELECT 1 FROM gen_adv a WHERE a.i = s.i);
CREATE UNIQUE INDEX ON gen_adv (i);
ANALYZE gen_adv, gen_adv_set;

-- ---- cash counts ---------------------------------------------------------------------------
-- Every fund whose currency has notes and coins in domain/src/denomination.rs (all but KWD
-- and RWF) is counted by its custodian on the last day of each month (17:00 plus a minute per
-- fund), and one month in four on the 15th (10:00) by a treasury holder: `CashCounted` with
-- the pieces by denomination. Counts fall three quarters of a second past the minute and
-- decisions 0.375 s past a second (replenishments they raise at .625), so that no other
-- movement of the fund shares their time (payments fall on whole seconds, replenishments
-- they raise at .25). The cash is the book balance in what can be paid out
-- (down to the smallest coin: the generated amounts have cents no coin pays, a few cents or
-- shillings short), and one count in ten finds a real shortage, one in twenty a surplus, of
-- 3–40 basis points of the float. The tolerance setting (1 basis point of the float, set by
-- admin.1 before the first payment) adjusts the small differences at once (`VarianceAdjusted`,
-- `approved_by` null, in the count's command); larger ones wait for a CFO, who decides 3 to 30
-- hours later: approves (`VarianceAdjusted`, the balance of that moment plus the variance; an
-- approved shortage that takes the balance below the reorder level raises a replenishment, as
-- `replenishment_due` does, its id the count's) or, one in five, rejects (`VarianceRejected`).
-- A shortage that would take more than 4 % of the float away in all (the 5 % the payments
-- leave: see gen_paid) or the balance below zero is rejected. A decision that would fall after
-- the end of `days` is not made: the variance is still pending at the end. No count closes a
-- period.
CREATE TEMP TABLE gen_counts ON COMMIT DROP AS
WITH months AS (
    SELECT m AS m0, row_number() OVER (ORDER BY m)::int AS mi
    FROM generate_series(date_trunc('month', :'start'::timestamptz), :'t_end'::timestamptz, interval '1 month') AS m
), planned AS (
    SELECT fu.f, mo.mi, true AS month_end,
           mo.m0 + interval '1 month' - interval '7 hours' + (fu.f % 50) * interval '1 minute' + interval '0.75 second' AS at
    FROM gen_funds fu CROSS JOIN months mo WHERE fu.smallest IS NOT NULL
    UNION ALL
    SELECT fu.f, mo.mi, false,
           mo.m0 + interval '14 days 10 hours' + (fu.f % 50) * interval '1 minute' + interval '0.75 second'
    FROM gen_funds fu CROSS JOIN months mo WHERE fu.smallest IS NOT NULL AND (fu.f + mo.mi) % 4 = 0
), h AS (
    SELECT p.*, ('x' || substr(md5('bench-count:' || p.f || ':' || p.mi || ':' || p.month_end), 1, 15))::bit(60)::bigint AS hc,
           row_number() OVER (ORDER BY p.at, p.f)::int AS n
    FROM planned p WHERE p.at >= :'start'::timestamptz AND p.at < :'t_end'::timestamptz
), d AS (
    SELECT h.*, date_trunc('second', h.at) + (10800 + (h.hc / 10000) % 97200) * interval '1 second'
                + interval '0.375 second' AS decided_at
    FROM h
)
SELECT d.f, d.n, -(d.n + 10) AS ci, d.at, d.month_end, d.hc, fu.currency, fu.minor, fu.smallest,
       pg_temp.uuid7(d.at, 'bench-count:' || d.n) AS count_id,
       CASE WHEN d.month_end THEN fu.custodian ELSE tr.id END AS counter,
       -- The real difference found: a multiple of the smallest coin.
       CASE WHEN d.hc % 100 < 15 THEN CASE WHEN d.hc % 100 < 10 THEN -1 ELSE 1 END
            * greatest(floor(fu.float * (3 + (d.hc / 100) % 38) / 10000 / fu.smallest), 2) * fu.smallest
            ELSE 0 END AS real,
       CASE WHEN d.decided_at <= :'t_end'::timestamptz THEN d.decided_at END AS decided_at,
       (d.hc / 1000000) % 5 <> 0 AS approve,
       cf.id AS decider
FROM d JOIN gen_funds fu USING (f)
CROSS JOIN LATERAL (SELECT (d.at > :'t_mid'::timestamptz)::int AS era, (d.decided_at > :'t_mid'::timestamptz)::int AS dera) e
JOIN gen_pool_n tn ON tn.role = 'treasury' AND tn.era = e.era
JOIN gen_pool tr ON tr.role = 'treasury' AND tr.era = e.era AND tr.idx = ((d.hc / 7) % tn.n)::int
JOIN gen_pool_n cn ON cn.role = 'cfo' AND cn.era = e.dera
JOIN gen_pool cf ON cf.role = 'cfo' AND cf.era = e.dera AND cf.idx = ((d.hc / 77) % cn.n)::int;
CREATE UNIQUE INDEX ON gen_counts (n);
ANALYZE gen_counts;

-- The pieces of a count, as `denomination::total` lists them: face values as its table
-- writes them, largest first, none of zero pieces. Most of the cash in the larger notes, some
-- in each smaller one, the rest (exactly) in the three smallest.
CREATE FUNCTION pg_temp.gen_pieces(cur text, amount numeric) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    faces text[] := CASE cur
        WHEN 'KES' THEN ARRAY['1000', '500', '200', '100', '50', '20', '10', '5', '1', '0.50']
        WHEN 'UGX' THEN ARRAY['50000', '20000', '10000', '5000', '2000', '1000', '500', '200', '100', '50']
        WHEN 'TZS' THEN ARRAY['10000', '5000', '2000', '1000', '500', '200', '100', '50']
        WHEN 'USD' THEN ARRAY['100', '50', '20', '10', '5', '2', '1', '0.50', '0.25', '0.10', '0.05', '0.01']
        WHEN 'EUR' THEN ARRAY['500', '200', '100', '50', '20', '10', '5', '2', '1', '0.50', '0.20', '0.10', '0.05',
                              '0.02', '0.01']
    END;
    rest numeric := amount;
    n bigint;
    out jsonb := '[]';
BEGIN
    FOR k IN 1 .. cardinality(faces) LOOP
        n := floor(CASE WHEN k > cardinality(faces) - 3 THEN rest ELSE rest * 0.85 END / faces[k]::numeric);
        IF n > 0 THEN
            out := out || jsonb_build_array(jsonb_build_object('denomination', faces[k], 'count', n));
            rest := rest - n * faces[k]::numeric;
        END IF;
    END LOOP;
    IF rest <> 0 THEN
        RAISE EXCEPTION 'generate_events.sql: % % is not made of % notes and coins', amount, cur, cur;
    END IF;
    RETURN out;
END;
$$;

-- ---- each fund's cash book -----------------------------------------------------------------
-- Everything that happens to a fund after its opening, in time order: reservations (mobile
-- money starts, no cash moves), disbursements, change returned from advances, counts and the
-- decisions on their variances; and the replenishments these raise. A fund with auto-replenish
-- (every fund but the tight ones) raises a request for float − balance in the decision of the
-- disbursement (or the approved shortage) that takes its balance below the reorder level (a
-- quarter of the float), when none is open (FundCommand's `replenishment_due`: requested_by
-- null, its id the payment's or the count's); a CFO approves it a day later and treasury funds
-- it two days later (a quarter second past, so that no other movement of the fund shares its
-- time). A walk through each fund's movements in order, since whether a request is due and
-- what a count finds depend on everything before. Payments never depend on the cash book:
-- replenishments, returns and surpluses only add cash, and shortages stay within what the
-- payments left (see gen_paid), so the payments chosen above stay covered.
CREATE TEMP TABLE gen_fin ON COMMIT DROP AS
SELECT p.f, p.ts AS at, p.i, 0 AS step, 'reserve' AS typ, p.amount, p.payment_id AS rid, p.payer AS actor,
       NULL::text AS op, p.h3 AS h, p.seq::bigint AS cmd, NULL::numeric AS real, NULL::bool AS approve
FROM gen_paid p WHERE p.mm
UNION ALL
SELECT p.f, p.settled_at, p.i, 1, 'disburse', p.amount, p.payment_id, p.payer, CASE WHEN p.mm THEN 'provider' END,
       p.h3, p.seq + 1, NULL, NULL
FROM gen_paid p
UNION ALL
SELECT a.f, s.at, a.i, 5, 'return', s.returned, s.settlement_id, a.requester, NULL, a.ha, 2000 + s.n, NULL, NULL
FROM gen_adv_set s JOIN gen_adv a USING (i) WHERE s.returned > 0
UNION ALL
SELECT c.f, c.at, c.ci, 0, 'count', NULL, c.count_id, c.counter, NULL, c.hc, 1, c.real, NULL
FROM gen_counts c
UNION ALL
SELECT c.f, c.decided_at, c.ci, 2, 'decide', NULL, c.count_id, c.decider, NULL, c.hc, 2, c.real, c.approve
FROM gen_counts c WHERE c.decided_at IS NOT NULL;
CREATE INDEX ON gen_fin (f, at, i, step);
ANALYZE gen_fin;

-- Rows of the fund's stream: o_kind as in gen_ev below (11 CashDisbursed, 12 CashReserved,
-- 13 ReplenishmentRequested, 14 ReplenishmentApproved, 15 ReplenishmentFunded, 16 CashCounted,
-- 17 VarianceAdjusted, 18 VarianceRejected, 19 AdvanceCashReturned). o_balance: the balance
-- after it (a count's: the book balance it compares with; a request's: its `balance`).
CREATE FUNCTION pg_temp.gen_cash_book()
RETURNS TABLE (o_f int, o_at timestamptz, o_i int, o_step int, o_kind int, o_amount numeric, o_balance numeric,
               o_rid uuid, o_actor uuid, o_op text, o_h bigint, o_cmd bigint, o_counted numeric)
LANGUAGE plpgsql AS $$
DECLARE
    fu record;
    m record;
    b numeric;
    tolerance numeric;
    short numeric;
    pending jsonb;
    v numeric;
    open_amount numeric;
    open_rid uuid;
    open_i int;
    open_h bigint;
    open_step int;
    funded_at timestamptz;
BEGIN
    FOR fu IN SELECT g.f, g.float, g.minor, g.smallest, NOT g.tight AS auto, round(g.float / 4, g.minor) AS reorder
              FROM gen_funds g ORDER BY g.f LOOP
        b := fu.float;
        tolerance := fu.float / 10000;   -- variance_tolerance_basis_points = 1
        short := 0;
        pending := '{}';
        open_amount := NULL;
        o_f := fu.f;
        FOR m IN SELECT x.* FROM gen_fin x WHERE x.f = fu.f ORDER BY x.at, x.i, x.step LOOP
            IF open_amount IS NOT NULL AND funded_at < m.at THEN
                b := b + open_amount;
                o_at := funded_at; o_i := open_i; o_step := open_step + 2; o_kind := 15; o_amount := open_amount;
                o_balance := b; o_rid := open_rid; o_actor := NULL; o_op := NULL; o_h := open_h; o_cmd := NULL;
                o_counted := NULL;
                RETURN NEXT;
                open_amount := NULL;
            END IF;
            o_at := m.at; o_i := m.i; o_step := m.step; o_rid := m.rid; o_actor := m.actor; o_op := m.op;
            o_h := m.h; o_cmd := m.cmd; o_counted := NULL; o_amount := m.amount;
            v := NULL;
            IF m.typ = 'reserve' THEN
                o_kind := 12; o_balance := b;
                RETURN NEXT;
            ELSIF m.typ = 'disburse' THEN
                b := b - m.amount;
                o_kind := 11; o_balance := b;
                RETURN NEXT;
                v := -m.amount;
            ELSIF m.typ = 'return' THEN
                b := b + m.amount;
                o_kind := 19; o_balance := b;
                RETURN NEXT;
            ELSIF m.typ = 'count' THEN
                o_counted := floor(b / fu.smallest) * fu.smallest + m.real;
                IF o_counted < 0 THEN
                    o_counted := floor(b / fu.smallest) * fu.smallest;
                END IF;
                o_kind := 16; o_balance := b; o_amount := o_counted - b;
                RETURN NEXT;
                IF o_amount <> 0 AND abs(o_amount) <= tolerance AND b + o_amount >= 0 THEN
                    b := b + o_amount;
                    short := short + greatest(-o_amount, 0);
                    o_kind := 17; o_step := 1; o_balance := b; o_counted := NULL;
                    RETURN NEXT;
                ELSIF o_amount <> 0 THEN
                    pending := pending || jsonb_build_object(m.rid::text, o_amount);
                END IF;
            ELSIF m.typ = 'decide' AND pending ? m.rid::text THEN
                o_amount := (pending ->> m.rid::text)::numeric;
                pending := pending - m.rid::text;
                -- A difference of rounding alone is always approved.
                IF (m.approve OR m.real = 0) AND b + o_amount >= 0 AND short - least(o_amount, 0) <= fu.float * 0.04 THEN
                    b := b + o_amount;
                    short := short - least(o_amount, 0);
                    o_kind := 17; o_balance := b;
                    RETURN NEXT;
                    v := o_amount;
                ELSE
                    o_kind := 18; o_balance := b;
                    RETURN NEXT;
                END IF;
            END IF;
            -- `replenishment_due` after an outflow (a disbursement, an approved variance).
            IF v IS NOT NULL AND fu.auto AND open_amount IS NULL AND b < fu.reorder THEN
                open_amount := fu.float - b;
                open_rid := m.rid; open_i := m.i; open_h := m.h; open_step := m.step + 1;
                funded_at := m.at + interval '2 days 0.25 second';
                o_step := open_step; o_kind := 13; o_amount := open_amount; o_balance := b;
                RETURN NEXT;
                o_at := m.at + interval '1 day 0.25 second'; o_step := open_step + 1; o_kind := 14; o_actor := NULL;
                o_op := NULL; o_cmd := NULL;
                RETURN NEXT;
            END IF;
        END LOOP;
        IF open_amount IS NOT NULL THEN
            b := b + open_amount;
            o_at := funded_at; o_i := open_i; o_step := open_step + 2; o_kind := 15; o_amount := open_amount;
            o_balance := b; o_rid := open_rid; o_actor := NULL; o_op := NULL; o_h := open_h; o_cmd := NULL;
            o_counted := NULL;
            RETURN NEXT;
        END IF;
    END LOOP;
END;
$$;
CREATE TEMP TABLE gen_fmove ON COMMIT DROP AS
SELECT c.o_f AS f, c.o_at AS at, c.o_i AS i, c.o_step AS step, c.o_kind AS kind,
       round(c.o_amount, fu.minor) AS amount, round(c.o_balance, fu.minor) AS balance_after,
       round(c.o_counted, fu.minor) AS counted, c.o_rid AS rid, c.o_actor AS actor, c.o_op AS op, c.o_h AS h,
       c.o_cmd AS cmd, row_number() OVER (PARTITION BY c.o_f ORDER BY c.o_at, c.o_i, c.o_step) + 1 AS fund_seq
FROM pg_temp.gen_cash_book() c JOIN gen_funds fu ON fu.f = c.o_f;
CREATE INDEX ON gen_fmove (i, kind);
ANALYZE gen_fmove;

-- The advance accounts' events (kinds as in gen_ev below), numbered per holder in time order.
CREATE TEMP TABLE gen_adv_ev ON COMMIT DROP AS
WITH e AS (
    -- asked for, in the requisition's creation (its command: `cmd` 1)
    SELECT a.t0 AS ts, a.i, 3 AS tb, 30 AS kind, a.requester AS holder, a.requester AS actor, 1::bigint AS cmd,
           NULL::text AS op,
           jsonb_build_object('AdvanceRequested', jsonb_build_object(
               'holder_id', a.requester, 'requisition_id', a.req_id, 'fund_id', a.fund_id, 'currency', a.currency,
               'amount', a.amount::text)) AS pl
    FROM gen_adv a
    UNION ALL
    -- issued in the payment's command (the provider's success for mobile money)
    SELECT a.paid_at, a.i, 3, 31, a.requester, a.payer, a.pay_seq + 1, CASE WHEN a.mm THEN 'provider' END,
           jsonb_build_object('AdvanceIssued', jsonb_build_object(
               'requisition_id', a.req_id, 'payment_id', a.payment_id, 'paid_at', pg_temp.rfc3339(a.paid_at),
               'due_at', pg_temp.rfc3339(a.due_at)))
    FROM gen_adv a WHERE a.paid_at IS NOT NULL
    UNION ALL
    -- settled by the holder (before the fund's AdvanceCashReturned of the same command)
    SELECT s.at, a.i, 0, 32, a.requester, a.requester, 2000 + s.n, NULL,
           jsonb_build_object('AdvanceSettled', jsonb_build_object(
               'requisition_id', a.req_id, 'settlement_id', s.settlement_id, 'spent', s.spent::text,
               'returned', s.returned::text, 'outstanding_after', s.outstanding_after::text, 'receipt_ids', '[]'::jsonb,
               'note', (ARRAY[NULL, 'Fuel and tolls for the field visit', 'Receipts handed to the custodian',
                    'Change returned with the receipts'])[((a.hb / 11 + s.n) % 4)::int + 1],
               'reimbursement_requisition_id', NULL, 'extra_owed', NULL, 'settled_by', a.requester,
               'at', pg_temp.rfc3339(s.at)))
    FROM gen_adv_set s JOIN gen_adv a USING (i)
    UNION ALL
    -- found overdue by the scheduler
    SELECT a.overdue_at, a.i, 3, 33, a.requester, NULL, 3000, 'scheduler',
           jsonb_build_object('AdvanceOverdue', jsonb_build_object(
               'requisition_id', a.req_id, 'due_at', pg_temp.rfc3339(a.due_at),
               'outstanding', (a.amount - coalesce((SELECT sum(s.spent + s.returned) FROM gen_adv_set s
                                                    WHERE s.i = a.i AND s.at < a.overdue_at), 0))::text,
               'at', pg_temp.rfc3339(a.overdue_at)))
    FROM gen_adv a WHERE a.overdue_at IS NOT NULL
)
SELECT e.*, row_number() OVER (PARTITION BY e.holder ORDER BY e.ts, e.i, e.tb, e.kind) AS seq FROM e;

-- ---- budgets (with an organisation) --------------------------------------------------------
-- The CFO sets a budget (`BudgetSet` on the company's `budget_plan` stream) for every cost
-- centre, department and branch, and every currency it pays in, for each month from the
-- first of the history to the one 45 days past its end: a week before the month starts (those
-- for the first month the day before the history starts; none later than a week past its end,
-- the months after set early). Each is what the unit paid in that month (or, for a month it
-- paid nothing, its average month) times 0.80 to 1.49, rounded up to two significant digits:
-- about three in ten end over budget. A submission of a requisition a budget covers (its
-- requester's cost centre, department, branch; same month and currency), when what the budget
-- consumed (paid in that month before it) plus its amount exceeds the budget, records a
-- `BudgetExceeded` per such budget just before its `RequisitionSubmitted`, in its command (in
-- the order the budgets were first set), as `CommandService::budget_flags` does (the setting
-- `budget_block` stays off: nothing is refused).
CREATE TEMP TABLE gen_spend ON COMMIT DROP AS
SELECT s.kind, s.unit_id, p.currency, to_char(p.settled_at, 'YYYY-MM') AS month, p.settled_at AS at, p.i, p.amount
FROM gen_paid p JOIN gen_reqs r USING (i) JOIN gen_user_unit uu ON uu.id = r.requester
CROSS JOIN LATERAL (VALUES ('cost_centre', uu.cost_centre_id), ('department', uu.department_id),
                           ('branch', uu.branch_id)) AS s(kind, unit_id)
WHERE s.unit_id IS NOT NULL;

CREATE TEMP TABLE gen_budgets ON COMMIT DROP AS
WITH months AS (
    SELECT m AS m0, to_char(m, 'YYYY-MM') AS month, row_number() OVER (ORDER BY m)::int AS mi
    FROM generate_series(date_trunc('month', :'start'::timestamptz),
                         :'t_end'::timestamptz + interval '45 days', interval '1 month') AS m
), actual AS (
    SELECT kind, unit_id, currency, month, sum(amount) AS paid FROM gen_spend GROUP BY 1, 2, 3, 4
), scopes AS (
    SELECT a.kind, a.unit_id, a.currency, avg(a.paid) AS mean, g.n AS unit_n, fu.minor
    FROM actual a JOIN gen_units g ON g.id = a.unit_id
    JOIN (SELECT DISTINCT currency, minor FROM gen_funds) fu USING (currency)
    GROUP BY a.kind, a.unit_id, a.currency, g.n, fu.minor
), b AS (
    SELECT s.kind, s.unit_id, s.currency, s.minor, mo.month, mo.mi, mo.m0,
           coalesce(a.paid, s.mean)
             * (0.80 + (('x' || substr(md5('bench-budget:' || s.unit_id || ':' || mo.month || ':' || s.currency), 1, 15))
                        ::bit(60)::bigint % 70) / 100.0) AS x,
           row_number() OVER (PARTITION BY mo.mi ORDER BY array_position(ARRAY['cost_centre', 'department', 'branch'], s.kind),
                                                          s.unit_n, s.currency)::int AS k
    FROM scopes s CROSS JOIN months mo
    LEFT JOIN actual a ON (a.kind, a.unit_id, a.currency, a.month) = (s.kind, s.unit_id, s.currency, mo.month)
    WHERE :org = 1
), t AS (
    SELECT b.*, round(ceil(b.x / power(10::numeric, floor(log(b.x)) - 1)) * power(10::numeric, floor(log(b.x)) - 1),
                      b.minor) AS amount,
           least(greatest(b.m0 - interval '7 days', :'start'::timestamptz - interval '1 day'),
                 :'t_end'::timestamptz + interval '7 days')
             + interval '9 hours' + (b.mi - 1) * interval '2 hours' + b.k * interval '1 second' AS at
    FROM b
)
SELECT t.*, row_number() OVER (ORDER BY t.mi, t.k)::int AS bord,
       pg_temp.uuid7(t.at, 'bench-budget:' || t.kind || ':' || t.unit_id || ':' || t.month || ':' || t.currency) AS budget_id,
       c.id AS setter
FROM t
CROSS JOIN LATERAL (SELECT (t.at > :'t_mid'::timestamptz)::int AS era) e
JOIN gen_pool_n n ON n.role = 'cfo' AND n.era = e.era
JOIN gen_pool c ON c.role = 'cfo' AND c.era = e.era AND c.idx = t.mi % n.n;
CREATE UNIQUE INDEX ON gen_budgets (kind, unit_id, currency, month);
ANALYZE gen_budgets;

-- The flags, per submission (round 1 at c2, round 2 at c6): what each covering budget had
-- consumed when it was submitted (the payments of its month recorded before it: the running
-- sum in the order of the events, time then requisition).
CREATE TEMP TABLE gen_flags ON COMMIT DROP AS
WITH subs AS (
    SELECT r.i, r.requester, r.currency, 1 AS round, r.c2 AS seq, r.amount1 AS amount,
           r.t0 + (r.c2 - 1) * r.gap_s * interval '1 second' AS ts
    FROM gen_reqs r WHERE :org = 1 AND r.sub1 = 1
    UNION ALL
    SELECT r.i, r.requester, r.currency, 2, r.c6, r.amount2, r.t0 + (r.c6 - 1) * r.gap_s * interval '1 second'
    FROM gen_reqs r WHERE :org = 1 AND r.sub2 = 1
), covered AS (
    SELECT s.*, b.kind, b.unit_id, b.month, b.budget_id, b.bord, b.amount AS budget
    FROM subs s JOIN gen_user_unit uu ON uu.id = s.requester
    CROSS JOIN LATERAL (VALUES ('cost_centre', uu.cost_centre_id), ('department', uu.department_id),
                               ('branch', uu.branch_id)) AS k(kind, unit_id)
    JOIN gen_budgets b ON (b.kind, b.unit_id, b.currency, b.month) = (k.kind, k.unit_id, s.currency, to_char(s.ts, 'YYYY-MM'))
), merged AS (
    SELECT c.kind, c.unit_id, c.currency, c.month, c.ts AS at, 0 AS typ, 0::numeric AS paid, c.i, c.round, c.seq,
           c.amount, c.budget_id, c.bord, c.budget
    FROM covered c
    UNION ALL
    SELECT s.kind, s.unit_id, s.currency, s.month, s.at, 1, s.amount, s.i, NULL, NULL, NULL, NULL, NULL, NULL
    FROM gen_spend s
    WHERE EXISTS (SELECT 1 FROM gen_budgets b
                  WHERE (b.kind, b.unit_id, b.currency, b.month) = (s.kind, s.unit_id, s.currency, s.month))
), run AS (
    SELECT m.*, sum(m.paid) OVER (PARTITION BY m.kind, m.unit_id, m.currency, m.month ORDER BY m.at, m.i
                                  ROWS UNBOUNDED PRECEDING) AS consumed
    FROM merged m
)
SELECT r.i, r.round, r.seq, r.kind, r.unit_id, r.month, r.budget_id, r.bord, r.budget, r.consumed, r.amount,
       row_number() OVER (PARTITION BY r.i, r.round ORDER BY r.bord)::int AS k
FROM run r WHERE r.typ = 0 AND r.consumed + r.amount > r.budget;

-- How many flags each submission records: the requisition's later events move up by as many.
CREATE TEMP TABLE gen_shift ON COMMIT DROP AS
SELECT r.i, r.c2, count(*) FILTER (WHERE f.round = 1)::int AS f1,
       CASE WHEN r.sub2 = 1 THEN r.c6 END AS c6, count(*) FILTER (WHERE f.round = 2)::int AS f2
FROM gen_flags f JOIN gen_reqs r USING (i) GROUP BY r.i, r.c2, r.sub2, r.c6;
CREATE UNIQUE INDEX ON gen_shift (i);
ANALYZE gen_shift;

-- ---- approvals and decisions: who ----------------------------------------------------------
-- Who may decide a step: the holders of its role at that time (scope -1). With an
-- organisation, a department head step goes to the requester's department (scope: its number):
-- its heads who hold the role before and after t_mid, so that whoever decides was among the
-- people the submission was routed to and still holds the role.
CREATE TEMP TABLE gen_apool ON COMMIT DROP AS
SELECT role, era, -1 AS scope, idx, id FROM gen_pool WHERE NOT (:org = 1 AND role = 'department_head')
UNION ALL
SELECT 'department_head', e.era, s.dept, (row_number() OVER (PARTITION BY e.era, s.dept ORDER BY s.u) - 1)::int, s.id
FROM (SELECT h.id, min(h.u) AS u, min(uu.dept) AS dept FROM gen_holds h JOIN gen_user_unit uu USING (id)
      WHERE h.role = 'department_head' GROUP BY h.id HAVING count(*) = 2) s
CROSS JOIN (VALUES (0), (1)) AS e(era)
WHERE :org = 1;
CREATE TEMP TABLE gen_apool_n ON COMMIT DROP AS
SELECT role, era, scope, count(*)::int AS n FROM gen_apool GROUP BY role, era, scope;
ANALYZE gen_apool, gen_apool_n;

-- One row per approval, rejection or change request, with the role of its step and the era.
CREATE TEMP TABLE gen_dec ON COMMIT DROP AS
WITH d AS (
    SELECT r.i, r.requester, r.dept, r.h3, 1 AS round, j AS step, 23 AS kind, r.c2 + 1 + j AS seq, r.l1 AS len,
           r.t0, r.gap_s
    FROM gen_reqs r CROSS JOIN LATERAL generate_series(0, r.a1 - 1) AS j
    UNION ALL
    SELECT r.i, r.requester, r.dept, r.h3, 1, r.a1, CASE r.d1 WHEN 1 THEN 25 ELSE 24 END, r.c4, r.l1, r.t0, r.gap_s
    FROM gen_reqs r WHERE r.d1 > 0
    UNION ALL
    SELECT r.i, r.requester, r.dept, r.h3, 2, j, 23, r.c6 + 1 + j, r.l2, r.t0, r.gap_s
    FROM gen_reqs r CROSS JOIN LATERAL generate_series(0, r.a2 - 1) AS j
    UNION ALL
    SELECT r.i, r.requester, r.dept, r.h3, 2, r.a2, 24, r.c8, r.l2, r.t0, r.gap_s
    FROM gen_reqs r WHERE r.d2 > 0
), e AS MATERIALIZED (
    SELECT d.i, d.requester, d.round, d.step, d.kind, d.seq, d.len,
           (ARRAY['department_head', 'group_finance_manager', 'cfo'])[d.step + 1] AS role,
           CASE WHEN :org = 1 AND d.step = 0 THEN d.dept ELSE -1 END AS scope,
           d.t0 + (d.seq - 1) * d.gap_s * interval '1 second' AS ts,
           ((d.t0 + (d.seq - 1) * d.gap_s * interval '1 second') > :'t_mid'::timestamptz)::int AS era,
           (d.h3 / 16 + d.round * 1000003 + d.step * 7919) AS hs
    FROM d
), k AS MATERIALIZED (
    -- The (hs mod n)-th holder of the role, skipping the requester when they hold it too.
    SELECT e.*, CASE WHEN rx.idx IS NULL THEN (e.hs % n.n)::int
                     ELSE (e.hs % (n.n - 1))::int + ((e.hs % (n.n - 1))::int >= rx.idx)::int END AS pick
    FROM e
    JOIN gen_apool_n n ON n.role = e.role AND n.era = e.era AND n.scope = e.scope
    LEFT JOIN gen_apool rx ON rx.role = e.role AND rx.era = e.era AND rx.scope = e.scope AND rx.id = e.requester
)
SELECT k.i, k.round, k.step, k.kind, k.seq, k.ts, k.role, k.len, p.id AS actor
FROM k JOIN gen_apool p ON p.role = k.role AND p.era = k.era AND p.scope = k.scope AND p.idx = k.pick;
DO $$
BEGIN
    IF (SELECT count(*) FROM gen_dec) <> (SELECT coalesce(sum(a1 + (d1 > 0)::int + a2 + (d2 > 0)::int), 0) FROM gen_reqs) THEN
        RAISE EXCEPTION 'generate_events.sql: a step found nobody to decide it';
    END IF;
END $$;

-- ---- receipt reminders --------------------------------------------------------------------
-- No receipt is attached here (`verify` reads every attached file back from the receipt store,
-- and this script writes no files), so the service's scheduler reminds the requester of every
-- paid requisition once (`ReceiptOverdue`, `receipt_reminder_days` after the payment: the
-- default 3, then 30 s to 10 min more, a tick's delay; metadata of
-- `CommandContext::operator("scheduler")`) and notes it in `receipt_reminder_checks` so as
-- never to load it again. Recorded here for each payment whose reminder falls before the last
-- payment; the few after it are left to the service. Without them a server started on this
-- store would spend hours catching up, 200 requisitions a tick, each with its mail and alert,
-- and every measurement taken meanwhile would measure that.
CREATE TEMP TABLE gen_receipt_due ON COMMIT DROP AS
SELECT p.i, p.id, p.seq + p.mm::int + 1 AS seq, d.at
FROM gen_paid p
CROSS JOIN LATERAL (SELECT p.settled_at + interval '3 days'
                           + (30 + ('x' || substr(md5('bench-receipt-due:' || p.i), 1, 8))::bit(32)::bigint % 571)
                             * interval '1 second' AS at) d
WHERE d.at <= (SELECT max(settled_at) FROM gen_paid);
ANALYZE gen_receipt_due;

-- ---- the events, in time order -------------------------------------------------------------
-- kinds: 2 RoleGranted, 3 RoleRevoked; fund: 11 CashDisbursed, 12 CashReserved,
-- 13 ReplenishmentRequested, 14 ReplenishmentApproved, 15 ReplenishmentFunded, 16 CashCounted,
-- 17 VarianceAdjusted, 18 VarianceRejected, 19 AdvanceCashReturned; requisition:
-- 20 RequisitionCreated, 21 Edited, 22 Submitted, 23 Approved, 24 Rejected, 25 ChangesRequested,
-- 26 Cancelled, 27 Paid, 28 PaymentStarted, 29 BudgetExceeded; advance_account:
-- 30 AdvanceRequested, 31 AdvanceIssued, 32 AdvanceSettled, 33 AdvanceOverdue; 34 ReceiptOverdue
-- (a requisition's, numbered apart as its kinds are full); 40 BudgetSet
-- (budget_plan); 41 SettingChanged (settings). `var` picks the variant (edits) or the text;
-- `cmd` is the sequence of the command's requisition event (a command's events on several
-- streams share their request id), or another number unique within `i`; `op`: recorded by the
-- service itself (`provider`: a provider's result; `scheduler`), not a user; `pl`: the whole
-- payload, for the kinds whose payload is built here. `tb` orders a command's streams as the
-- service appends them (requisition 1, fund 2, advance account 3; a settlement's account 0).
-- `seq0`: the stream sequence before the budget flags are counted in.
CREATE TEMP TABLE gen_ev ON COMMIT DROP AS
WITH x AS (
    SELECT :'t_mid'::timestamptz AS ts, -1 AS i, 0 AS tb, kind, user_id AS agg, seq AS seq0, :'admin2'::uuid AS actor,
           NULL::int AS step, role, NULL::bool AS completes, NULL::numeric AS amount, NULL::int AS len,
           NULL::uuid AS fund_id, NULL::uuid AS payment_id, NULL::numeric AS balance_after, NULL::bigint AS ref_no,
           0::bigint AS var, (seq + 10 * row_number() OVER (ORDER BY user_id, seq))::bigint AS cmd,
           NULL::text AS currency, NULL::uuid AS req_id, NULL::text AS method, NULL::text AS op, NULL::jsonb AS pl
    FROM gen_role_events
    UNION ALL
    -- created
    SELECT t0, i, 1, 20, id, 1, requester, NULL, NULL, NULL, amount0, NULL,
           fund_id, NULL, NULL, NULL, h, 1, currency, NULL, NULL, NULL, NULL
    FROM gen_reqs
    UNION ALL
    -- edited as a draft (var: 0 payee, 1 category cleared, 2 amount)
    SELECT t0 + (c1 - 1) * gap_s * interval '1 second', i, 1, 21, id, c1, requester,
           NULL, NULL, NULL, amount1, NULL, NULL, NULL, NULL, NULL, de_kind, c1, NULL, NULL, NULL, NULL, NULL
    FROM gen_reqs WHERE de
    UNION ALL
    -- submitted
    SELECT t0 + (c2 - 1) * gap_s * interval '1 second', i, 1, 22, id, c2, requester,
           NULL, NULL, NULL, amount1, l1, NULL, NULL, NULL, NULL, 0, c2, NULL, NULL, NULL, NULL, NULL
    FROM gen_reqs WHERE sub1 = 1
    UNION ALL
    -- approvals, rejections, change requests
    SELECT d.ts, d.i, 1, d.kind, r.id, d.seq, d.actor, d.step, d.role,
           d.step + 1 = d.len, NULL, NULL, NULL, NULL, NULL, NULL, r.h + d.seq, d.seq, NULL, NULL, NULL, NULL, NULL
    FROM gen_dec d JOIN gen_reqs r USING (i)
    UNION ALL
    -- edited after changes were requested (var: 3 purpose, 4 amount, 5 both)
    SELECT t0 + (c5 - 1) * gap_s * interval '1 second', i, 1, 21, id, c5, requester,
           NULL, NULL, NULL, amount2, NULL, NULL, NULL, NULL, NULL, 3 + e2_kind, c5, NULL, NULL, NULL, NULL, NULL
    FROM gen_reqs WHERE ed2 = 1
    UNION ALL
    -- resubmitted
    SELECT t0 + (c6 - 1) * gap_s * interval '1 second', i, 1, 22, id, c6, requester,
           NULL, NULL, NULL, amount2, l2, NULL, NULL, NULL, NULL, 0, c6, NULL, NULL, NULL, NULL, NULL
    FROM gen_reqs WHERE sub2 = 1
    UNION ALL
    -- cancelled
    SELECT t0 + (c9 - 1) * gap_s * interval '1 second', i, 1, 26, id, c9, requester,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, h, c9, NULL, NULL, NULL, NULL, NULL
    FROM gen_reqs WHERE cancel = 1
    UNION ALL
    -- paid, and the fund's disbursement right after it (cash: one command); by mobile money,
    -- started (PaymentStarted, CashReserved) then settled by the provider (RequisitionPaid,
    -- the consuming CashDisbursed: `op`, the service acting on the provider's result)
    SELECT CASE WHEN s.step = 1 THEN p.settled_at ELSE p.ts END, p.i, s.tb,
           CASE WHEN s.tb = 2 THEN 11 + (1 - s.step) WHEN p.mm AND s.step = 0 THEN 28 ELSE 27 END,
           CASE s.tb WHEN 1 THEN p.id ELSE p.fund_id END,
           CASE WHEN s.tb = 2 THEN fm.fund_seq ELSE p.seq + (p.mm AND s.step = 1)::int END, p.payer, NULL, NULL,
           NULL, p.amount, NULL, p.fund_id, p.payment_id, fm.balance_after,
           CASE WHEN p.h3 % 5 = 0 THEN NULL ELSE p.pno END, 0, p.seq + s.step, NULL, p.id,
           CASE WHEN p.mm THEN 'mobile_money' ELSE 'cash' END, CASE WHEN p.mm AND s.step = 1 THEN 'provider' END, NULL
    FROM gen_paid p
    CROSS JOIN (VALUES (1, 0), (2, 0), (1, 1), (2, 1)) AS s(tb, step)
    LEFT JOIN gen_fmove fm ON fm.i = p.i AND fm.kind = 12 - s.step AND s.tb = 2
    WHERE p.mm OR s.step = 1
    UNION ALL
    -- replenishments: the request in the decision of the outflow that raised it (its actor,
    -- request id and metadata), approved by a CFO, funded by treasury (their own commands:
    -- `cmd` 1000 + kind)
    SELECT fm.at, fm.i, 2, fm.kind, fu.id, fm.fund_seq,
           CASE fm.kind WHEN 13 THEN fm.actor ELSE a.id END, NULL, NULL, NULL, fm.amount, NULL, fu.id,
           fm.rid, fm.balance_after, NULL, 0, CASE fm.kind WHEN 13 THEN fm.cmd ELSE 1000 + fm.kind END,
           NULL, NULL, NULL, CASE WHEN fm.kind = 13 THEN fm.op END, NULL
    FROM gen_fmove fm JOIN gen_funds fu USING (f)
    CROSS JOIN LATERAL (SELECT (fm.at > :'t_mid'::timestamptz)::int AS era,
                               CASE fm.kind WHEN 15 THEN 'treasury' ELSE 'cfo' END AS role) e
    JOIN gen_pool_n n ON n.role = e.role AND n.era = e.era
    JOIN gen_pool a ON a.role = e.role AND a.era = e.era AND a.idx = ((fm.h / 256 + fm.kind - 11) % n.n)::int
    WHERE fm.kind IN (13, 14, 15)
    UNION ALL
    -- counts, their variances, change returned from advances (payloads whole)
    SELECT fm.at, fm.i, 2, fm.kind, fu.id, fm.fund_seq, fm.actor, NULL, NULL, NULL, NULL, NULL, fu.id, NULL, NULL,
           NULL, 0, fm.cmd, NULL, NULL, NULL, NULL,
           CASE fm.kind
           WHEN 16 THEN jsonb_build_object('CashCounted', jsonb_build_object(
               'count_id', fm.rid, 'counted_by', fm.actor, 'pieces', pg_temp.gen_pieces(fu.currency, fm.counted),
               'counted', fm.counted::text, 'book_balance', fm.balance_after::text, 'variance', fm.amount::text,
               'period', NULL, 'at', pg_temp.rfc3339(fm.at)))
           WHEN 17 THEN jsonb_build_object('VarianceAdjusted', jsonb_build_object(
               'count_id', fm.rid, 'amount', fm.amount::text, 'balance_after', fm.balance_after::text,
               'approved_by', CASE WHEN fm.step = 2 THEN fm.actor END, 'at', pg_temp.rfc3339(fm.at)))
           WHEN 18 THEN jsonb_build_object('VarianceRejected', jsonb_build_object(
               'count_id', fm.rid, 'rejected_by', fm.actor,
               'reason', (ARRAY['Recounted with the custodian: the difference was a miscount',
                    'Receipts for the difference found in the cash box', NULL,
                    'Refer to internal audit before anything is adjusted'])[(fm.h / 13) % 4 + 1]))
           WHEN 19 THEN jsonb_build_object('AdvanceCashReturned', jsonb_build_object(
               'requisition_id', (SELECT a.req_id FROM gen_adv a WHERE a.i = fm.i), 'settlement_id', fm.rid,
               'amount', fm.amount::text, 'balance_after', fm.balance_after::text, 'returned_by', fm.actor))
           END
    FROM gen_fmove fm JOIN gen_funds fu USING (f)
    WHERE fm.kind BETWEEN 16 AND 19
    UNION ALL
    -- budget flags, in the submission's command just before it (their sequence is final)
    SELECT r.t0 + (fl.seq - 1) * r.gap_s * interval '1 second', fl.i, 1, 29, r.id,
           CASE fl.round WHEN 1 THEN sh.c2 ELSE sh.c6 + sh.f1 END + fl.k - 1, r.requester,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, fl.seq, NULL, NULL, NULL, NULL,
           jsonb_build_object('BudgetExceeded', jsonb_build_object(
               'budget_id', fl.budget_id, 'scope', jsonb_build_object('kind', fl.kind, 'unit_id', fl.unit_id),
               'month', fl.month, 'budget', fl.budget::text, 'consumed', fl.consumed::text, 'amount', fl.amount::text))
    FROM gen_flags fl JOIN gen_reqs r USING (i) JOIN gen_shift sh USING (i)
    UNION ALL
    -- advances
    SELECT ts, i, tb, kind, holder, seq, actor, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, cmd, NULL,
           NULL, NULL, op, pl
    FROM gen_adv_ev
    UNION ALL
    -- the scheduler's receipt reminders
    SELECT d.at, d.i, 1, 34, d.id, d.seq, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 4000,
           NULL, NULL, NULL, 'scheduler', jsonb_build_object('ReceiptOverdue', jsonb_build_object('days', 3))
    FROM gen_receipt_due d
    UNION ALL
    -- the budgets, each set in a command of its own
    SELECT b.at, -3, 0, 40, gu.company_id, b.bord, b.setter, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           0, b.bord, NULL, NULL, NULL, NULL,
           jsonb_build_object('BudgetSet', jsonb_build_object(
               'budget_id', b.budget_id, 'company', gu.company_id,
               'scope', jsonb_build_object('kind', b.kind, 'unit_id', b.unit_id), 'month', b.month,
               'currency', b.currency, 'amount', b.amount::text, 'set_by', b.setter))
    FROM gen_budgets b JOIN gen_units gu ON gu.id = b.unit_id
    UNION ALL
    -- the variance tolerance (1 basis point of the float), set before the first payment
    SELECT :'start'::timestamptz - interval '2 days' + interval '9 hours', -2, 0, 41, NULL, 1, :'admin1'::uuid,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 1, NULL, NULL, NULL, NULL,
           jsonb_build_object('SettingChanged', jsonb_build_object(
               'key', 'variance_tolerance_basis_points', 'value', 1, 'changed_by', :'admin1'::uuid))
), y AS (
    -- A requisition's events after a submission's budget flags move up by as many.
    SELECT x.*,
           CASE WHEN x.tb = 1 AND (x.kind BETWEEN 20 AND 28 OR x.kind = 34) AND sh.i IS NOT NULL
                THEN x.seq0 + CASE WHEN x.seq0 >= sh.c6 THEN sh.f1 + sh.f2 WHEN x.seq0 >= sh.c2 THEN sh.f1 ELSE 0 END
                ELSE x.seq0 END AS seq
    FROM x LEFT JOIN gen_shift sh ON sh.i = x.i AND x.tb = 1
)
SELECT row_number() OVER (ORDER BY ts, i, tb, seq, agg) AS o, y.* FROM y ORDER BY ts, i, tb, seq, agg;
CREATE UNIQUE INDEX ON gen_ev (o);
ANALYZE gen_ev;

-- With an organisation, who each step of a submission is routed to (`eligible`), as
-- `domain::routing::route` gives it: the active holders of the step's role in the
-- requisition's scope (its department for a department head, the company otherwise) at that
-- time, never the requester (nobody the requester sponsored holds a step role: only admins
-- register users or grant roles). Per role, era and scope; the requester is taken out per
-- submission.
CREATE TEMP TABLE gen_elig ON COMMIT DROP AS
SELECT h.role, h.era, CASE WHEN h.role = 'department_head' THEN uu.dept ELSE -1 END AS scope,
       jsonb_agg(h.id ORDER BY h.u) AS ids
FROM gen_holds h JOIN gen_user_unit uu USING (id)
WHERE :org = 1 AND h.role IN ('department_head', 'group_finance_manager', 'cfo')
GROUP BY 1, 2, 3;
CREATE UNIQUE INDEX ON gen_elig (role, era, scope);
ANALYZE gen_elig;

-- ---- sign ----------------------------------------------------------------------------------
-- The service signs each event it appends: metadata.mac = hex(HMAC-SHA256(event key,
-- 'pettycash-event-mac-v1' || event_content_digest(...))) (migration 0006), the event key being
-- HMAC-SHA256(secret, 'pettycash-event-key-v1'). HMAC from PostgreSQL's sha256():
-- sha256((key xor opad) || sha256((key xor ipad) || message)).
CREATE FUNCTION pg_temp.gen_pad(k bytea, pad int) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    out bytea;
BEGIN
    IF octet_length(k) > 64 THEN k := sha256(k); END IF;
    k := k || decode(repeat('00', 64 - octet_length(k)), 'hex');
    out := k;
    FOR i IN 0..63 LOOP
        out := set_byte(out, i, get_byte(k, i) # pad);
    END LOOP;
    RETURN out;
END;
$$;
SELECT sha256(pg_temp.gen_pad(s, 92) || sha256(pg_temp.gen_pad(s, 54) || convert_to('pettycash-event-key-v1', 'UTF8')))
       AS gen_event_key
FROM (SELECT convert_to(:'secret', 'UTF8') AS s) x \gset
SELECT encode(pg_temp.gen_pad(:'gen_event_key'::bytea, 54), 'hex') AS gen_ipad,
       encode(pg_temp.gen_pad(:'gen_event_key'::bytea, 92), 'hex') AS gen_opad \gset
-- A BEFORE INSERT trigger for this transaction only (dropped before COMMIT), named to run
-- before events_hash_chain, so the hash covers the signed metadata.
SELECT format($f$
CREATE FUNCTION pg_temp.gen_sign() RETURNS trigger LANGUAGE plpgsql AS $b$
BEGIN
    NEW.metadata := NEW.metadata || jsonb_build_object('mac', encode(sha256(%L::bytea || sha256(%L::bytea
        || convert_to('pettycash-event-mac-v1', 'UTF8')
        || event_content_digest(NEW.aggregate_type, NEW.aggregate_id, NEW.sequence, NEW.event_type,
                                NEW.event_version, NEW.payload, NEW.metadata))), 'hex'));
    RETURN NEW;
END;
$b$$f$, '\x' || :'gen_opad', '\x' || :'gen_ipad') \gexec
CREATE TRIGGER a_generate_events_sign BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION pg_temp.gen_sign();

-- ---- write ---------------------------------------------------------------------------------
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)
SELECT 'user', u.id::text, 1, 'UserRegistered', '1',
       jsonb_build_object('UserRegistered', jsonb_build_object(
           'user_id', u.id, 'email', u.email, 'name', u.name,
           'roles', (SELECT jsonb_agg(r ORDER BY o.ord) FROM unnest(u.roles) AS r JOIN gen_role_order o ON o.role = r),
           'registered_by', CASE WHEN u.u = 1 THEN NULL ELSE :'admin1'::uuid END)),
       CASE WHEN u.u = 1 THEN
           jsonb_build_object('actor_id', 'operator', 'request_id', 'cli-' || md5('bench-rq:user:' || u.u)::uuid,
               'user_agent', 'pettycash-cli/0.1.0 user add',
               'time', to_char(u.registered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
       ELSE
           jsonb_build_object('actor_id', :'admin1', 'request_id', md5('bench-rq:user:' || u.u)::uuid,
               'client_ip', '10.0.0.10',
               'user_agent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
               'time', to_char(u.registered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
       END,
       u.registered_at
FROM gen_users u ORDER BY u.u;

-- The organisation's units, then every placed user's UnitAssigned (by admin.1), before the funds.
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)
SELECT 'org_unit', g.id::text, 1, 'UnitOpened', '1',
       jsonb_build_object('UnitOpened', jsonb_build_object(
           'unit_id', g.id, 'kind', g.kind, 'name', g.name, 'code', g.code, 'phone', NULL,
           'parent_id', g.parent_id, 'path', g.path, 'opened_by', :'admin1'::uuid)),
       jsonb_build_object('actor_id', :'admin1', 'request_id', md5('bench-rq:unit:' || g.n)::uuid,
           'client_ip', '10.0.0.10',
           'user_agent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
           'time', to_char(g.opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
       g.opened_at
FROM gen_units g ORDER BY g.n;

INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)
SELECT 'user', uu.id::text, 2, 'UnitAssigned', '1',
       jsonb_build_object('UnitAssigned', jsonb_build_object('unit_id', uu.unit_id, 'assigned_by', :'admin1'::uuid)),
       jsonb_build_object('actor_id', :'admin1', 'request_id', md5('bench-rq:assign:' || uu.u)::uuid,
           'client_ip', '10.0.0.10',
           'user_agent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
           'time', to_char((:'t_org'::timestamptz + interval '1 hour' + uu.u * interval '1 second') AT TIME ZONE 'UTC',
                           'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
       :'t_org'::timestamptz + interval '1 hour' + uu.u * interval '1 second'
FROM gen_user_unit uu ORDER BY uu.u;

-- The org_units table, as the service keeps it with the unit events (migration 0011).
INSERT INTO org_units (id, kind, name, code, phone, parent_id, company_id, region_id, branch_id, department_id,
                       cost_centre_id, closed, last_position)
SELECT g.id, g.kind, g.name, g.code, NULL, g.parent_id, g.company_id, g.region_id, g.branch_id, g.department_id,
       g.cost_centre_id, false,
       (SELECT max(global_position) FROM events WHERE aggregate_type = 'org_unit' AND aggregate_id = g.id::text)
FROM gen_units g ORDER BY g.n;

INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)
SELECT 'fund', f.id::text, 1, 'FundOpened', '3',
       -- At its current version (3): the owning unit (with an organisation a branch, and so
       -- opened by admin.2, an admin of the company: a fund belongs to a unit of its opener's
       -- company; else none), a reorder level of a quarter of the float, no minimum (zero in
       -- the currency's scale, as the service rescales it), auto-replenish on but for the
       -- tight funds (which run out instead).
       jsonb_build_object('FundOpened', jsonb_build_object(
           'fund_id', f.id, 'name', f.name, 'currency', f.currency, 'float', f.float::text,
           'custodian_id', f.custodian, 'opened_by', CASE WHEN :org = 1 THEN :'admin2' ELSE :'admin1' END::uuid,
           'unit', f.unit, 'reorder_level', round(f.float / 4, f.minor)::text,
           'minimum_balance', round(0::numeric, f.minor)::text, 'auto_replenish', NOT f.tight)),
       jsonb_build_object('actor_id', CASE WHEN :org = 1 THEN :'admin2' ELSE :'admin1' END, 'request_id', md5('bench-rq:fund:' || f.f)::uuid,
           'client_ip', '10.0.0.10',
           'user_agent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
           'time', to_char(f.opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
       f.opened_at
FROM gen_funds f ORDER BY f.f;

SET LOCAL enable_sort = off;   -- read gen_ev through its index: it is already in time order
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)
SELECT CASE WHEN e.kind < 10 THEN 'user' WHEN e.kind < 20 THEN 'fund' WHEN e.kind < 30 OR e.kind = 34 THEN 'requisition'
            WHEN e.kind < 40 THEN 'advance_account' WHEN e.kind = 40 THEN 'budget_plan' ELSE 'settings' END,
       CASE WHEN e.kind = 41 THEN 'settings' ELSE e.agg::text END, e.seq,
       (ARRAY['', 'RoleGranted', 'RoleRevoked', '', '', '', '', '', '', '', 'CashDisbursed', 'CashReserved',
              'ReplenishmentRequested', 'ReplenishmentApproved', 'ReplenishmentFunded', 'CashCounted',
              'VarianceAdjusted', 'VarianceRejected', 'AdvanceCashReturned',
              'RequisitionCreated', 'RequisitionEdited', 'RequisitionSubmitted',
              'RequisitionApproved', 'RequisitionRejected', 'ChangesRequested', 'RequisitionCancelled',
              'RequisitionPaid', 'PaymentStarted', 'BudgetExceeded', 'AdvanceRequested', 'AdvanceIssued',
              'AdvanceSettled', 'AdvanceOverdue', 'ReceiptOverdue', '', '', '', '', '', 'BudgetSet', 'SettingChanged'])[e.kind],
       -- CashDisbursed at its current version (2, with `reserved`).
       CASE WHEN e.kind = 11 OR (:org = 1 AND e.kind IN (20, 22)) THEN '2' ELSE '1' END,
       CASE e.kind
       WHEN 2 THEN jsonb_build_object('RoleGranted', jsonb_build_object('role', e.role, 'granted_by', e.actor))
       WHEN 3 THEN jsonb_build_object('RoleRevoked', jsonb_build_object('role', e.role, 'revoked_by', e.actor))
       -- Cash: the voucher's reference, nothing reserved. Mobile money: the provider's receipt
       -- (an M-Pesa transaction id), consuming the whole reservation.
       WHEN 11 THEN jsonb_build_object('CashDisbursed', jsonb_build_object(
           'payment_id', e.payment_id, 'requisition_id', e.req_id, 'amount', e.amount::text,
           'balance_after', e.balance_after::text, 'method', e.method,
           'reference', CASE WHEN e.op = 'provider' THEN 'S' || upper(substr(md5('bench-receipt:' || e.i), 1, 9))
                        ELSE 'PCV-' || lpad(e.ref_no::text, 6, '0') END,
           'paid_by', e.actor, 'reserved', CASE WHEN e.op = 'provider' THEN e.amount::text END))
       WHEN 12 THEN jsonb_build_object('CashReserved', jsonb_build_object(
           'payment_id', e.payment_id, 'requisition_id', e.req_id, 'amount', e.amount::text,
           'method', e.method, 'reserved_by', e.actor))
       -- A replenishment's id is the id of the payment whose disbursement raised it.
       WHEN 13 THEN jsonb_build_object('ReplenishmentRequested', jsonb_build_object(
           'replenishment_id', e.payment_id, 'amount', e.amount::text, 'balance', e.balance_after::text,
           'requested_by', NULL))
       WHEN 14 THEN jsonb_build_object('ReplenishmentApproved', jsonb_build_object(
           'replenishment_id', e.payment_id, 'approved_by', e.actor))
       WHEN 15 THEN jsonb_build_object('ReplenishmentFunded', jsonb_build_object(
           'replenishment_id', e.payment_id, 'amount', e.amount::text, 'balance_after', e.balance_after::text,
           'bank_reference', 'EFT-' || upper(substr(md5('bench-eft:' || e.i), 1, 10)), 'funded_by', e.actor,
           'at', pg_temp.rfc3339(e.ts)))
       WHEN 20 THEN jsonb_build_object('RequisitionCreated', jsonb_build_object(
           'requisition_id', e.agg, 'fund_id', e.fund_id,
           'currency', e.currency, 'amount', e.amount::text,
           'purpose', (ARRAY['Office stationery and printer toner', 'Fuel for the branch delivery motorbike',
                'Tea, milk and sugar for the staff kitchen', 'Courier charges for documents to head office',
                'Minor plumbing repair in the washrooms', 'Airtime and mobile data for field officers',
                'Cleaning materials for the month', 'Transport to the county offices for licence renewal',
                'Lunch for the quarterly branch meeting', 'Replacement padlocks for the store',
                'Printing of customer forms', 'Taxi fare after the late cash count',
                'Postage and registered mail', 'Water dispenser refills', 'Light bulbs and extension cables',
                'Parking fees during the audit visit', 'First aid kit restock', 'Photocopier paper (10 reams)',
                'Generator diesel top-up during the outage', 'Refreshments for the customer open day',
                'Bank charges reimbursement', 'Hardware for the shelf repair', 'Internet bundle for the backup router',
                'Staff welfare: condolence contribution'])[(e.var % 24)::int + 1]
                || ' — ' || to_char(e.ts AT TIME ZONE 'UTC', 'Mon YYYY'),
           'payee', CASE WHEN (e.var / 24) % 6 = 0 THEN NULL
                    ELSE (ARRAY['Text Book Centre', 'Total Energies', 'Naivas Supermarket', 'G4S Courier',
                          'Jua Kali Plumbing Works', 'Safaricom', 'Chandarana Foodplus', 'Posta Kenya',
                          'Quickmart', 'Bolt', 'Java House', 'Mama Mboga Catering', 'Hardware Depot',
                          'City Council Parking', 'Ace Stationers'])[((e.var / 144) % 15)::int + 1] END,
           'category', CASE WHEN (e.var / 2160) % 7 = 0 THEN NULL
                       ELSE (ARRAY['office', 'transport', 'welfare', 'postage', 'repairs', 'communication',
                             'cleaning', 'transport', 'meals', 'repairs', 'office', 'transport', 'postage',
                             'welfare', 'repairs', 'transport', 'welfare', 'office', 'utilities', 'meals',
                             'bank charges', 'repairs', 'communication', 'welfare'])[(e.var % 24)::int + 1] END,
           'requester_id', e.actor)
           -- Version 2 with an organisation: the requester's unit (a department: origin `branch`).
           || CASE WHEN :org = 1 THEN jsonb_build_object('origin', 'branch',
                  'unit', (SELECT uu.path FROM gen_user_unit uu WHERE uu.id = e.actor)) ELSE '{}' END)
       WHEN 21 THEN jsonb_build_object('RequisitionEdited', jsonb_build_object(
           'amount', CASE WHEN e.var IN (2, 4, 5) THEN e.amount::text END,
           'purpose', CASE WHEN e.var IN (3, 5) THEN 'Revised as asked: ' || (ARRAY['split across two receipts',
                'only the items still needed', 'with the quotation attached', 'cheaper supplier',
                'corrected description'])[(e.i % 5) + 1] END,
           'payee', CASE WHEN e.var = 0 THEN (ARRAY['Ace Stationers', 'Naivas Supermarket', 'Hardware Depot'])[(e.i % 3) + 1] END,
           'category', CASE WHEN e.var = 1 THEN '' END))
       WHEN 22 THEN jsonb_build_object('RequisitionSubmitted', jsonb_build_object(
           'amount', e.amount::text,
           'chain', to_jsonb((ARRAY['department_head', 'group_finance_manager', 'cfo'])[1:e.len]),
           'policy_version', 0, 'submitted_by', e.actor)
           -- Version 2 with an organisation: the default policy's threshold (`Tier n`, one per
           -- tier: the chain's length here) and who each step is routed to.
           || CASE WHEN :org = 1 THEN jsonb_build_object('threshold', 'Tier ' || e.len,
                  'eligible', (SELECT jsonb_agg(l.ids - e.actor::text ORDER BY s.n)
                               FROM unnest((ARRAY['department_head', 'group_finance_manager', 'cfo'])[1:e.len])
                                    WITH ORDINALITY AS s(role, n)
                               JOIN gen_elig l ON l.role = s.role AND l.era = (e.ts > :'t_mid'::timestamptz)::int
                                AND l.scope = CASE WHEN s.role = 'department_head'
                                                   THEN (SELECT uu.dept FROM gen_user_unit uu WHERE uu.id = e.actor)
                                                   ELSE -1 END),
                  'comment', NULL, 'due', NULL) ELSE '{}' END)
       WHEN 23 THEN jsonb_build_object('RequisitionApproved', jsonb_build_object(
           'step', e.step, 'role', e.role, 'approver_id', e.actor, 'completes_chain', e.completes))
       WHEN 24 THEN jsonb_build_object('RequisitionRejected', jsonb_build_object(
           'step', e.step, 'role', e.role, 'rejected_by', e.actor,
           'reason', (ARRAY['Not a petty cash expense: raise a purchase order', 'Duplicate of an earlier request',
                'Over the monthly budget for this category', 'No supporting quotation',
                'Should be paid by the landlord'])[(e.var % 5)::int + 1]))
       WHEN 25 THEN jsonb_build_object('ChangesRequested', jsonb_build_object(
           'step', e.step, 'role', e.role, 'requested_by', e.actor,
           'reason', (ARRAY['Amount too high: split or reduce', 'Attach a quotation and name the supplier',
                'Describe what exactly is being bought', 'Use the cheaper supplier on the approved list'])
                [(e.var % 4)::int + 1]))
       WHEN 26 THEN jsonb_build_object('RequisitionCancelled', jsonb_build_object(
           'cancelled_by', e.actor,
           'reason', (ARRAY[NULL, 'No longer needed', 'Paid from my own pocket', 'Raised against the wrong fund'])
                [((e.var / 7) % 4)::int + 1]))
       -- RequisitionPaid and PaymentStarted carry the payer's reference (the voucher's number).
       WHEN 27 THEN jsonb_build_object('RequisitionPaid', jsonb_build_object(
           'payment_id', e.payment_id, 'fund_id', e.fund_id, 'amount', e.amount::text, 'method', e.method,
           'reference', 'PCV-' || lpad(e.ref_no::text, 6, '0'), 'paid_by', e.actor))
       WHEN 28 THEN jsonb_build_object('PaymentStarted', jsonb_build_object(
           'payment_id', e.payment_id, 'fund_id', e.fund_id, 'amount', e.amount::text, 'method', e.method,
           'reference', 'PCV-' || lpad(e.ref_no::text, 6, '0'), 'paid_by', e.actor))
       -- Counts, advances, budgets, the setting: built whole above.
       ELSE e.pl
       END,
       CASE WHEN e.op IS NOT NULL THEN
           -- Recorded by the service itself: a provider's result, the scheduler
           -- (CommandContext::operator("provider"), operator("scheduler")).
           jsonb_build_object('actor_id', 'operator', 'request_id', 'cli-' || md5('bench-rq:' || e.i || ':' || e.cmd)::uuid,
               'user_agent', 'pettycash-cli/0.1.0 ' || e.op,
               'time', to_char(e.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
       ELSE jsonb_build_object(
           'actor_id', e.actor::text,
           'request_id', md5('bench-rq:' || e.i || ':' || e.cmd)::uuid,
           'client_ip', '10.' || (get_byte(uuid_send(e.actor), 0) % 32) || '.' || get_byte(uuid_send(e.actor), 1)
                        || '.' || (get_byte(uuid_send(e.actor), 2) % 250 + 2),
           'user_agent', (ARRAY['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
                'Mozilla/5.0 (Linux; Android 13; SM-A145F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Mobile Safari/537.36',
                'Mozilla/5.0 (Macintosh; Intel Mac OS X 13_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15',
                'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0'])
                [get_byte(uuid_send(e.actor), 3) % 4 + 1],
           'time', to_char(e.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) END,
       e.ts
FROM gen_ev e ORDER BY e.o;
RESET enable_sort;
DROP TRIGGER a_generate_events_sign ON events;

-- ---- the users table and sign-in -----------------------------------------------------------
-- As the service keeps them (a transactional projection of the user events): roles sorted,
-- last_position the user's latest event, sponsors (who registered them or granted them a role:
-- admin.2 made every grant) sorted.
INSERT INTO users (id, email, name, roles, active, created_at, last_position, sponsors,
                   unit_id, company_id, region_id, branch_id, department_id, cost_centre_id)
SELECT u.id, u.email, u.name,
       ARRAY(SELECT h.role FROM gen_holds h JOIN gen_role_order o USING (role)
             WHERE h.id = u.id AND h.era = 1 ORDER BY o.ord),
       true, u.registered_at,
       (SELECT max(global_position) FROM events WHERE aggregate_type = 'user' AND aggregate_id = u.id::text),
       coalesce((SELECT array_agg(DISTINCT s.by ORDER BY s.by)
                 FROM (SELECT CASE WHEN u.u = 1 THEN NULL ELSE :'admin1'::uuid END AS by
                       UNION ALL
                       SELECT :'admin2'::uuid FROM gen_role_events x WHERE x.kind = 2 AND x.user_id = u.id) s
                 WHERE s.by IS NOT NULL), '{}'),
       uu.unit_id, uu.company_id, uu.region_id, uu.branch_id, uu.department_id, uu.cost_centre_id
FROM gen_users u LEFT JOIN gen_user_unit uu USING (id);
INSERT INTO credentials (user_id, password_hash, updated_at)
SELECT id, :'password_hash', registered_at FROM gen_users;

-- The scheduler's note of the requisitions it reminded about their receipts (migration 0018).
INSERT INTO receipt_reminder_checks (requisition_id, checked_at)
SELECT id, at FROM gen_receipt_due ORDER BY at, i;

-- The payments through the provider, as the service keeps them with their events
-- (migrations 0016, 0021): one attempt, sent when started, succeeded with the receipt the
-- CashDisbursed records; paid to a Safaricom number.
INSERT INTO provider_payments (id, requisition_id, fund_id, method, amount, currency, status, attempts,
                               provider_reference, last_result_code, paid_by, started_at, timed_out_at,
                               updated_at, destination, submitted_at, last_result_reason)
SELECT p.payment_id, p.id, p.fund_id, 'mobile_money', p.amount, p.currency, 'succeeded', 1,
       'S' || upper(substr(md5('bench-receipt:' || p.i), 1, 9)), '0', p.payer, p.ts, NULL,
       p.settled_at, '2547' || lpad((p.h3 % 100000000)::text, 8, '0'), p.ts, NULL
FROM gen_paid p WHERE p.mm ORDER BY p.ts, p.i;

-- The advances, as the service keeps them with their events (migration 0020): what was settled
-- and is outstanding (nothing before the payment), whether it was recorded overdue, and the
-- position of the last event of the last command that touched it (a settlement's returned
-- cash comes after its AdvanceSettled).
INSERT INTO advances (requisition_id, holder_id, fund_id, company_id, currency, amount, spent, returned, outstanding,
                      payment_id, paid_at, due_at, settlements, overdue_recorded, last_position)
WITH last AS (
    SELECT DISTINCT ON (payload->event_type->>'requisition_id') (payload->event_type->>'requisition_id')::uuid AS id,
           global_position, payload->event_type->>'settlement_id' AS settlement_id
    FROM events WHERE aggregate_type = 'advance_account'
    ORDER BY payload->event_type->>'requisition_id', global_position DESC
), returned AS (
    SELECT payload->'AdvanceCashReturned'->>'settlement_id' AS settlement_id, global_position
    FROM events WHERE aggregate_type = 'fund' AND event_type = 'AdvanceCashReturned'
)
SELECT a.req_id, a.requester, a.fund_id, (fu.unit->>'company')::uuid, a.currency, a.amount,
       coalesce(s.spent, 0), coalesce(s.returned, 0),
       CASE WHEN a.paid_at IS NULL THEN 0 ELSE a.amount - coalesce(s.spent, 0) - coalesce(s.returned, 0) END,
       a.payment_id, a.paid_at, a.due_at, coalesce(s.n, 0), a.overdue_at IS NOT NULL,
       greatest(l.global_position, r.global_position)
FROM gen_adv a JOIN gen_funds fu USING (f) JOIN last l ON l.id = a.req_id
LEFT JOIN returned r ON r.settlement_id = l.settlement_id
LEFT JOIN (SELECT i, sum(spent) AS spent, sum(returned) AS returned, count(*)::int AS n FROM gen_adv_set GROUP BY i) s
       USING (i)
ORDER BY a.req_id;

SELECT (SELECT count(*) FROM gen_users) AS n_users, (SELECT count(*) FROM gen_ev) + (SELECT count(*) FROM gen_users)
       + :funds + (SELECT count(*) FROM gen_units) + (SELECT count(*) FROM gen_user_unit) AS n_events,
       (SELECT count(*) FROM gen_units) AS n_units, (SELECT count(*) FROM gen_paid WHERE mm) AS n_mm,
       (SELECT count(*) FROM gen_counts) AS n_counts, (SELECT count(*) FROM gen_adv WHERE paid_at IS NOT NULL) AS n_adv,
       (SELECT count(*) FROM gen_adv a WHERE a.paid_at IS NOT NULL AND a.amount > coalesce(
            (SELECT sum(s.spent + s.returned) FROM gen_adv_set s WHERE s.i = a.i), 0)) AS n_adv_out,
       (SELECT count(*) FROM gen_budgets) AS n_budgets, (SELECT count(*) FROM gen_flags) AS n_flags,
       (SELECT count(*) FROM gen_receipt_due) AS n_receipt_reminders \gset
COMMIT;
\echo generated :n_events events: :n_users users, :funds funds, :requisitions requisitions, :n_units units, :n_mm mobile-money payments, :n_counts cash counts, :n_adv advances paid (:n_adv_out outstanding), :n_budgets budgets (:n_flags flags), :n_receipt_reminders receipt reminders
