//! `rm_funds` (balances against float), `rm_ledger` (the cash book: every movement with its
//! running balance) and `rm_payments` (treasury's payment list). One projection, because all
//! three come from the fund's stream and a payment row needs its fund's currency and company.
//! Version 2: funds and payments carry the fund's owning unit's company (`company_id`, NULL
//! when unscoped), which every reader filters on.
//! Version 3 (fund operations, issue #14): funds carry reorder level, minimum balance,
//! auto-replenish, `status` (`ok`, `warning`, `critical`: `FundStatus`), the open
//! replenishment request, the latest closed period and whether the fund is closed; the ledger
//! has replenishments, variance adjustments and the closing return (`MovementKind`).
//! Version 4 (issue #14 [treasury]): the ledger has reservations (lines of amount 0,
//! `reserved`, `reserved_after`), what a line comes from (`source_id`: the replenishment, the
//! count, the advance's settlement) and a payment's reconciliation (`reconciled_reference`,
//! `reconciled_at`, from the requisition's `PaymentReconciled`, also on `rm_payments`); funds
//! carry the cash `reserved`.
//! Version 5 (issue #15, the dashboard): funds carry how many counts' variances wait for an
//! approver (`pending_variances`), and `rm_fund_daily` holds each fund's closing balance per
//! UTC day it moved (the balance of its last cash-book line that day), so that the
//! dashboard's balance-against-float chart reads one row per fund and day instead of every
//! line of the cash book.

use crate::event::EventRow;
use crate::{table_name, Phase, Projection};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pettycash_domain::fund::{
    CashBook, FundEvent, FundStatus, Movement, MovementKind, PaymentMethod, ReplenishmentStatus,
};
use pettycash_domain::requisition::RequisitionEvent;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub const FUNDS: &str = "rm_funds";
pub const LEDGER: &str = "rm_ledger";
pub const PAYMENTS: &str = "rm_payments";
pub const DAILY: &str = "rm_fund_daily";

pub struct Cash {
    version: i32,
    generation: i32,
    funds: String,
    ledger: String,
    payments: String,
    daily: String,
}

impl Cash {
    /// `version`, generation 0.
    pub fn new(version: i32) -> Self {
        Self::at(version, 0)
    }

    /// `version`, build `generation`.
    pub fn at(version: i32, generation: i32) -> Self {
        Self {
            version,
            generation,
            funds: table_name(FUNDS, version, generation),
            ledger: table_name(LEDGER, version, generation),
            payments: table_name(PAYMENTS, version, generation),
            daily: table_name(DAILY, version, generation),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Fund {
    id: Uuid,
    name: String,
    currency: String,
    float: Decimal,
    balance: Decimal,
    custodian_id: Option<Uuid>,
    disbursed_total: Decimal,
    disbursements: i64,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_position: i64,
    unit_id: Option<Uuid>,
    company_id: Option<Uuid>,
    reorder_level: Option<Decimal>,
    minimum_balance: Decimal,
    auto_replenish: bool,
    status: String,
    open_replenishment_id: Option<Uuid>,
    open_replenishment_amount: Option<Decimal>,
    open_replenishment_status: Option<String>,
    closed_through: Option<String>,
    closed: bool,
    reserved: Decimal,
    pending_variances: i32,
}

const FUND_COLUMNS: &str =
    "id, name, currency, float, balance, custodian_id, disbursed_total, disbursements, \
     opened_at, updated_at, last_position, unit_id, company_id, reorder_level, minimum_balance, \
     auto_replenish, status, open_replenishment_id, open_replenishment_amount, \
     open_replenishment_status, closed_through, closed, reserved, pending_variances";

#[derive(Default)]
struct Movements {
    fund_id: Vec<Uuid>,
    position: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    kind: Vec<MovementKind>,
    amount: Vec<Decimal>,
    balance_after: Vec<Decimal>,
    requisition_id: Vec<Option<Uuid>>,
    payment_id: Vec<Option<Uuid>>,
    reference: Vec<Option<String>>,
    reserved: Vec<Decimal>,
    reserved_after: Vec<Decimal>,
    source_id: Vec<Option<Uuid>>,
}

/// `PaymentReconciled` events of a batch: (fund, payment, statement reference, at).
#[derive(Default)]
struct Reconciled {
    fund_id: Vec<Uuid>,
    payment_id: Vec<Uuid>,
    reference: Vec<String>,
    at: Vec<DateTime<Utc>>,
}

#[derive(Default)]
struct Payments {
    payment_id: Vec<Uuid>,
    requisition_id: Vec<Uuid>,
    fund_id: Vec<Uuid>,
    amount: Vec<Decimal>,
    currency: Vec<String>,
    method: Vec<PaymentMethod>,
    reference: Vec<Option<String>>,
    paid_by: Vec<Uuid>,
    paid_at: Vec<DateTime<Utc>>,
    balance_after: Vec<Decimal>,
    position: Vec<i64>,
    company_id: Vec<Option<Uuid>>,
}

#[async_trait]
impl Projection for Cash {
    fn name(&self) -> &'static str {
        "cash"
    }
    fn version(&self) -> i32 {
        self.version
    }
    fn generation(&self) -> i32 {
        self.generation
    }
    fn at_generation(&self, generation: i32) -> Arc<dyn Projection> {
        Arc::new(Self::at(self.version, generation))
    }
    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["fund"])
    }
    fn other_events(&self) -> &'static [(&'static str, &'static str)] {
        // The requisitions' `PaymentReconciled` marks a disbursement reconciled.
        &[("requisition", "PaymentReconciled")]
    }
    fn uses_metadata(&self) -> bool {
        false
    }

    fn tables(&self) -> &'static [&'static str] {
        &[FUNDS, LEDGER, PAYMENTS, DAILY]
    }
    fn create_tables(&self) -> Vec<String> {
        let (f, l, p, d) = (&self.funds, &self.ledger, &self.payments, &self.daily);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {f} (
                    id uuid PRIMARY KEY, name text NOT NULL, currency text NOT NULL, float numeric NOT NULL,
                    balance numeric NOT NULL, custodian_id uuid, disbursed_total numeric NOT NULL,
                    disbursements bigint NOT NULL, opened_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
                    last_position bigint NOT NULL, unit_id uuid, company_id uuid, reorder_level numeric,
                    minimum_balance numeric NOT NULL, auto_replenish boolean NOT NULL, status text NOT NULL,
                    open_replenishment_id uuid, open_replenishment_amount numeric, open_replenishment_status text,
                    closed_through text, closed boolean NOT NULL, reserved numeric NOT NULL,
                    pending_variances integer NOT NULL)"
            ),
            // `position`: the cash-book line the closing balance is from (a later batch's line
            // of the same day replaces it).
            format!(
                "CREATE TABLE IF NOT EXISTS {d} (
                    fund_id uuid NOT NULL, day date NOT NULL, closing_balance numeric NOT NULL,
                    position bigint NOT NULL, PRIMARY KEY (fund_id, day))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {l} (
                    fund_id uuid NOT NULL, position bigint NOT NULL, at timestamptz NOT NULL, kind text NOT NULL,
                    amount numeric NOT NULL, balance_after numeric NOT NULL, requisition_id uuid, payment_id uuid,
                    reference text, reserved numeric NOT NULL, reserved_after numeric NOT NULL, source_id uuid,
                    reconciled_reference text, reconciled_at timestamptz, PRIMARY KEY (fund_id, position))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {p} (
                    payment_id uuid PRIMARY KEY, requisition_id uuid NOT NULL, fund_id uuid NOT NULL,
                    amount numeric NOT NULL, currency text NOT NULL, method text NOT NULL, reference text,
                    paid_by uuid NOT NULL, paid_at timestamptz NOT NULL, balance_after numeric NOT NULL,
                    position bigint NOT NULL, company_id uuid, reconciled_reference text,
                    reconciled_at timestamptz)"
            ),
            // A fund's row is updated by every payment.
            format!("ALTER TABLE {f} SET ({})", super::HOT_TABLE),
        ]
    }

    fn create_indexes(&self) -> Vec<String> {
        let (p, l) = (&self.payments, &self.ledger);
        vec![
            // A reconciliation finds its disbursement line by payment.
            format!("CREATE INDEX IF NOT EXISTS {l}_payment_idx ON {l} (payment_id) WHERE payment_id IS NOT NULL"),
            format!("CREATE INDEX IF NOT EXISTS {p}_paid_idx ON {p} (paid_at DESC, payment_id DESC)"),
            format!("CREATE INDEX IF NOT EXISTS {p}_fund_idx ON {p} (fund_id, paid_at DESC)"),
            format!("CREATE INDEX IF NOT EXISTS {p}_company_idx ON {p} (company_id, paid_at DESC, payment_id DESC)"),
        ]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        _after: i64,
        _phase: Phase,
        events: &[EventRow],
    ) -> anyhow::Result<()> {
        let mut reconciled = Reconciled::default();
        for e in
            events.iter().filter(|e| e.aggregate_type == "requisition" && e.event_type == "PaymentReconciled")
        {
            if let RequisitionEvent::PaymentReconciled {
                payment_id, fund_id, statement_reference, at, ..
            } = e.decode::<RequisitionEvent>()?
            {
                reconciled.fund_id.push(fund_id);
                reconciled.payment_id.push(payment_id);
                reconciled.reference.push(statement_reference);
                reconciled.at.push(at);
            }
        }
        let events: Vec<&EventRow> = events.iter().filter(|e| e.aggregate_type == "fund").collect();
        if !events.is_empty() {
            self.apply_funds(tx, &events).await?;
        }
        if !reconciled.payment_id.is_empty() {
            self.write_reconciled(tx, &reconciled).await?;
        }
        Ok(())
    }
}

impl Cash {
    /// The fund events of a batch: funds, cash book lines, payments.
    async fn apply_funds(&self, tx: &mut PgConnection, events: &[&EventRow]) -> anyhow::Result<()> {
        let ids: Vec<Uuid> = events.iter().filter_map(|e| e.aggregate_id.parse().ok()).collect();
        let mut funds: HashMap<Uuid, Fund> = sqlx::query_as::<_, Fund>(&format!(
            "SELECT {FUND_COLUMNS} FROM {} WHERE id = ANY($1)",
            self.funds
        ))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect();
        let mut moves = Movements::default();
        let mut pays = Payments::default();
        let mut books: HashMap<Uuid, CashBook> = HashMap::new();
        for e in events {
            let id: Uuid = e.aggregate_id.parse()?;
            let event = e.decode::<FundEvent>()?;
            // The cash book's fold (`pettycash_domain::fund::CashBook`), shared with
            // `pettycash-replay ledger`: what each event moves, and the balance after it.
            let book = books.entry(id).or_insert_with(|| {
                funds
                    .get(&id)
                    .map_or_else(CashBook::default, |f| CashBook::at_reserved(f.balance, f.reserved))
            });
            let movement = book
                .record(&event)
                .map_err(|_| anyhow::anyhow!("movement at {} of unknown fund {id}", e.global_position))?;
            let after = movement.as_ref().map(|m| (m.balance_after, m.reserved_after));
            if !matches!(event, FundEvent::FundOpened { .. }) {
                let fund = funds.get_mut(&id).ok_or_else(|| {
                    anyhow::anyhow!("{} at {} of unknown fund {id}", e.event_type, e.global_position)
                })?;
                fund.updated_at = e.recorded_at;
                fund.last_position = e.global_position;
                if let Some((balance, reserved)) = after {
                    fund.balance = balance;
                    fund.reserved = reserved;
                }
            }
            match event {
                FundEvent::FundOpened {
                    fund_id,
                    name,
                    currency,
                    float,
                    custodian_id,
                    unit,
                    reorder_level,
                    minimum_balance,
                    auto_replenish,
                    ..
                } => {
                    let movement = movement.as_ref().expect("an opening is a movement");
                    funds.insert(
                        fund_id,
                        Fund {
                            id: fund_id,
                            name,
                            currency: currency.to_string(),
                            float,
                            balance: movement.balance_after,
                            custodian_id,
                            disbursed_total: Decimal::ZERO,
                            disbursements: 0,
                            opened_at: e.recorded_at,
                            updated_at: e.recorded_at,
                            last_position: e.global_position,
                            unit_id: unit.map(|u| u.unit_id),
                            company_id: unit.map(|u| u.company),
                            reorder_level,
                            minimum_balance: minimum_balance.unwrap_or_default(),
                            auto_replenish: auto_replenish.unwrap_or(false),
                            status: String::new(),
                            open_replenishment_id: None,
                            open_replenishment_amount: None,
                            open_replenishment_status: None,
                            closed_through: None,
                            closed: false,
                            reserved: Decimal::ZERO,
                            pending_variances: 0,
                        },
                    );
                }
                // Lines of the book (amount 0) that change the fund's `reserved` only.
                FundEvent::CashReserved { .. } | FundEvent::ReservationReleased { .. } => {}
                FundEvent::CashDisbursed { payment_id, requisition_id, amount, method, paid_by, .. } => {
                    let movement = movement.as_ref().expect("a disbursement is a movement");
                    let fund = funds.get_mut(&id).expect("checked above");
                    fund.disbursed_total += amount;
                    fund.disbursements += 1;
                    pays.payment_id.push(payment_id);
                    pays.requisition_id.push(requisition_id);
                    pays.fund_id.push(id);
                    pays.amount.push(amount);
                    pays.currency.push(fund.currency.clone());
                    pays.method.push(method);
                    pays.reference.push(movement.reference.clone());
                    pays.paid_by.push(paid_by);
                    pays.paid_at.push(e.recorded_at);
                    pays.balance_after.push(movement.balance_after);
                    pays.position.push(e.global_position);
                    pays.company_id.push(fund.company_id);
                }
                other => {
                    let fund = funds.get_mut(&id).expect("checked above");
                    match other {
                        FundEvent::FundSettingsChanged {
                            reorder_level,
                            minimum_balance,
                            auto_replenish,
                            custodian_id,
                            ..
                        } => {
                            fund.reorder_level = reorder_level;
                            fund.minimum_balance = minimum_balance;
                            fund.auto_replenish = auto_replenish;
                            fund.custodian_id = custodian_id;
                        }
                        FundEvent::ReplenishmentRequested { replenishment_id, amount, .. } => {
                            fund.open_replenishment_id = Some(replenishment_id);
                            fund.open_replenishment_amount = Some(amount);
                            fund.open_replenishment_status =
                                Some(ReplenishmentStatus::Requested.as_str().into());
                        }
                        FundEvent::ReplenishmentApproved { .. } => {
                            fund.open_replenishment_status =
                                Some(ReplenishmentStatus::Approved.as_str().into());
                        }
                        FundEvent::ReplenishmentRejected { .. } | FundEvent::ReplenishmentFunded { .. } => {
                            fund.open_replenishment_id = None;
                            fund.open_replenishment_amount = None;
                            fund.open_replenishment_status = None;
                        }
                        FundEvent::PeriodClosed { period, .. } => {
                            fund.closed_through = Some(period.to_string())
                        }
                        FundEvent::FundClosed { .. } => fund.closed = true,
                        // As `Fund::apply` keeps `pending_variances`: a count with a variance
                        // waits until it is adjusted (within the tolerance at once) or rejected.
                        FundEvent::CashCounted { variance, .. } if !variance.is_zero() => {
                            fund.pending_variances += 1
                        }
                        FundEvent::VarianceAdjusted { .. } | FundEvent::VarianceRejected { .. } => {
                            fund.pending_variances = (fund.pending_variances - 1).max(0)
                        }
                        _ => {}
                    }
                }
            }
            if let Some(movement) = movement {
                moves.push(id, e, movement);
            }
        }
        self.write_funds(tx, funds.into_values().collect()).await?;
        self.write_daily(tx, &moves).await?;
        sqlx::query(&format!(
            "INSERT INTO {} (fund_id, position, at, kind, amount, balance_after, requisition_id, payment_id, reference,
                             reserved, reserved_after, source_id)
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::numeric[],
                                  $6::numeric[], $7::uuid[], $8::uuid[], $9::text[], $10::numeric[], $11::numeric[],
                                  $12::uuid[])",
            self.ledger
        ))
        .bind(&moves.fund_id)
        .bind(&moves.position)
        .bind(&moves.at)
        .bind(&moves.kind)
        .bind(&moves.amount)
        .bind(&moves.balance_after)
        .bind(&moves.requisition_id)
        .bind(&moves.payment_id)
        .bind(&moves.reference)
        .bind(&moves.reserved)
        .bind(&moves.reserved_after)
        .bind(&moves.source_id)
        .execute(&mut *tx)
        .await?;
        if !pays.payment_id.is_empty() {
            sqlx::query(&format!(
                "INSERT INTO {} (payment_id, requisition_id, fund_id, amount, currency, method, reference, paid_by,
                                 paid_at, balance_after, position, company_id)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::numeric[], $5::text[], $6::text[],
                                      $7::text[], $8::uuid[], $9::timestamptz[], $10::numeric[], $11::bigint[],
                                      $12::uuid[])",
                self.payments
            ))
            .bind(&pays.payment_id)
            .bind(&pays.requisition_id)
            .bind(&pays.fund_id)
            .bind(&pays.amount)
            .bind(&pays.currency)
            .bind(&pays.method)
            .bind(&pays.reference)
            .bind(&pays.paid_by)
            .bind(&pays.paid_at)
            .bind(&pays.balance_after)
            .bind(&pays.position)
            .bind(&pays.company_id)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

impl Movements {
    fn push(&mut self, fund_id: Uuid, e: &EventRow, m: Movement) {
        self.fund_id.push(fund_id);
        self.position.push(e.global_position);
        self.at.push(e.recorded_at);
        self.kind.push(m.kind);
        self.amount.push(m.amount);
        self.balance_after.push(m.balance_after);
        self.requisition_id.push(m.requisition_id);
        self.payment_id.push(m.payment_id);
        self.reference.push(m.reference);
        self.reserved.push(m.reserved);
        self.reserved_after.push(m.reserved_after);
        self.source_id.push(m.source_id);
    }
}

impl Cash {
    /// Marks reconciled payments: their disbursement line and their payment row. A
    /// reconciliation always comes after its disbursement (the payment succeeded first), so
    /// the rows are there.
    async fn write_reconciled(&self, tx: &mut PgConnection, r: &Reconciled) -> anyhow::Result<()> {
        let disbursement = MovementKind::Disbursement.as_str();
        let lines = (&self.ledger, format!("AND t.kind = '{disbursement}'"));
        for (table, only) in [lines, (&self.payments, String::new())] {
            sqlx::query(&format!(
                "UPDATE {table} AS t SET reconciled_reference = r.reference, reconciled_at = r.at
                 FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[]) AS r(fund_id, payment_id, reference, at)
                 WHERE t.fund_id = r.fund_id AND t.payment_id = r.payment_id {only}"
            ))
            .bind(&r.fund_id)
            .bind(&r.payment_id)
            .bind(&r.reference)
            .bind(&r.at)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    async fn write_funds(&self, tx: &mut PgConnection, mut funds: Vec<Fund>) -> anyhow::Result<()> {
        macro_rules! col {
            ($f:ident) => {
                funds.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
            };
        }
        for f in &mut funds {
            f.status = FundStatus::of(f.balance, f.reorder_level, f.minimum_balance).as_str().to_string();
        }
        sqlx::query(&format!(
            "INSERT INTO {} ({FUND_COLUMNS})
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::numeric[], $6::uuid[],
                                  $7::numeric[], $8::bigint[], $9::timestamptz[], $10::timestamptz[], $11::bigint[],
                                  $12::uuid[], $13::uuid[], $14::numeric[], $15::numeric[], $16::boolean[],
                                  $17::text[], $18::uuid[], $19::numeric[], $20::text[], $21::text[], $22::boolean[],
                                  $23::numeric[], $24::integer[])
             ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance, disbursed_total = EXCLUDED.disbursed_total,
                 disbursements = EXCLUDED.disbursements, updated_at = EXCLUDED.updated_at,
                 last_position = EXCLUDED.last_position, custodian_id = EXCLUDED.custodian_id,
                 reorder_level = EXCLUDED.reorder_level, minimum_balance = EXCLUDED.minimum_balance,
                 auto_replenish = EXCLUDED.auto_replenish, status = EXCLUDED.status,
                 open_replenishment_id = EXCLUDED.open_replenishment_id,
                 open_replenishment_amount = EXCLUDED.open_replenishment_amount,
                 open_replenishment_status = EXCLUDED.open_replenishment_status,
                 closed_through = EXCLUDED.closed_through, closed = EXCLUDED.closed,
                 reserved = EXCLUDED.reserved, pending_variances = EXCLUDED.pending_variances",
            self.funds
        ))
        .bind(col!(id))
        .bind(col!(name))
        .bind(col!(currency))
        .bind(col!(float))
        .bind(col!(balance))
        .bind(col!(custodian_id))
        .bind(col!(disbursed_total))
        .bind(col!(disbursements))
        .bind(col!(opened_at))
        .bind(col!(updated_at))
        .bind(col!(last_position))
        .bind(col!(unit_id))
        .bind(col!(company_id))
        .bind(col!(reorder_level))
        .bind(col!(minimum_balance))
        .bind(col!(auto_replenish))
        .bind(col!(status))
        .bind(col!(open_replenishment_id))
        .bind(col!(open_replenishment_amount))
        .bind(col!(open_replenishment_status))
        .bind(col!(closed_through))
        .bind(col!(closed))
        .bind(col!(reserved))
        .bind(col!(pending_variances))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Each fund's closing balance per UTC day of the batch's movements: the balance after
    /// its last line of the day, replacing an earlier batch's row of the same day.
    async fn write_daily(&self, tx: &mut PgConnection, moves: &Movements) -> anyhow::Result<()> {
        let mut last: HashMap<(Uuid, chrono::NaiveDate), (i64, Decimal)> = HashMap::new();
        for i in 0..moves.position.len() {
            let key = (moves.fund_id[i], moves.at[i].date_naive());
            let line = (moves.position[i], moves.balance_after[i]);
            last.entry(key).and_modify(|l| *l = (*l).max(line)).or_insert(line);
        }
        if last.is_empty() {
            return Ok(());
        }
        let (mut fund, mut day, mut position, mut balance) = (vec![], vec![], vec![], vec![]);
        for ((f, d), (p, b)) in last {
            fund.push(f);
            day.push(d);
            position.push(p);
            balance.push(b);
        }
        sqlx::query(&format!(
            "INSERT INTO {} AS t (fund_id, day, position, closing_balance)
             SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::bigint[], $4::numeric[])
             ON CONFLICT (fund_id, day) DO UPDATE SET position = EXCLUDED.position,
                 closing_balance = EXCLUDED.closing_balance
             WHERE t.position < EXCLUDED.position",
            self.daily
        ))
        .bind(&fund)
        .bind(&day)
        .bind(&position)
        .bind(&balance)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
