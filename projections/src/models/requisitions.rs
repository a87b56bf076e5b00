//! `rm_requisitions`: one row per requisition, for lists and the approvals inbox; and the
//! dashboard's running totals, kept as the rows change so that the dashboard reads a few
//! dozen rows however many requisitions there are:
//!
//! - `rm_requisition_totals`: count and amount per (requester, status, currency);
//! - `rm_paid_daily`: payments per (requester, UTC day of payment, currency), with the summed
//!   seconds from (latest) submission to payment.
//!
//! Both hold each requester's rows and rows for everyone under [`EVERYONE`] (the nil uuid).
//! Version 2: version 1 had no totals.

use crate::event::EventRow;
use crate::{table_name, Projection};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use pettycash_domain::requisition::{apply_edit, RequisitionEvent};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::PgConnection;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub const TABLE: &str = "rm_requisitions";
pub const TOTALS: &str = "rm_requisition_totals";
pub const PAID_DAILY: &str = "rm_paid_daily";
/// The requester id under which the totals over everyone are kept.
pub const EVERYONE: Uuid = Uuid::nil();

pub struct Requisitions {
    version: i32,
    generation: i32,
    table: String,
    totals: String,
    daily: String,
}

impl Requisitions {
    /// `version`, generation 0.
    pub fn new(version: i32) -> Self {
        Self::at(version, 0)
    }

    /// `version`, build `generation`.
    pub fn at(version: i32, generation: i32) -> Self {
        Self {
            version,
            generation,
            table: table_name(TABLE, version, generation),
            totals: table_name(TOTALS, version, generation),
            daily: table_name(PAID_DAILY, version, generation),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    id: Uuid,
    fund_id: Uuid,
    requester_id: Uuid,
    status: String,
    amount: Decimal,
    currency: String,
    purpose: String,
    payee: Option<String>,
    category: Option<String>,
    chain: Value,
    approvers: Value,
    current_step: Option<String>,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    paid_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    last_position: i64,
}

const COLUMNS: &str =
    "id, fund_id, requester_id, status, amount, currency, purpose, payee, category, chain, \
     approvers, current_step, created_at, submitted_at, paid_at, updated_at, last_position";

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

impl Row {
    fn current_step_after(&mut self) {
        let chain = strings(&self.chain);
        let done = strings(&self.approvers).len();
        self.current_step = (self.status == "pending_approval").then(|| chain.get(done).cloned()).flatten();
    }

    fn apply(&mut self, event: RequisitionEvent, at: DateTime<Utc>) {
        use RequisitionEvent as E;
        match event {
            E::RequisitionCreated { .. } => {}
            E::RequisitionEdited { amount, purpose, payee, category } => apply_edit(
                (&mut self.amount, &mut self.purpose, &mut self.payee, &mut self.category),
                (amount, purpose, payee, category),
            ),
            E::RequisitionSubmitted { amount, chain, .. } => {
                self.amount = amount;
                self.chain = Value::Array(chain.iter().map(|r| Value::String(r.as_str().into())).collect());
                self.approvers = Value::Array(vec![]);
                self.status = "pending_approval".into();
                self.submitted_at = Some(at);
            }
            E::RequisitionApproved { approver_id, completes_chain, .. } => {
                if let Value::Array(a) = &mut self.approvers {
                    a.push(Value::String(approver_id.to_string()));
                }
                if completes_chain {
                    self.status = "approved".into();
                }
            }
            E::RequisitionRejected { .. } => self.status = "rejected".into(),
            E::ChangesRequested { .. } => self.status = "changes_requested".into(),
            E::RequisitionCancelled { .. } => self.status = "cancelled".into(),
            E::RequisitionPaid { .. } => {
                self.status = "paid".into();
                self.paid_at = Some(at);
            }
        }
        self.current_step_after();
    }
}

#[async_trait]
impl Projection for Requisitions {
    fn name(&self) -> &'static str {
        "requisitions"
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
        Some(&["requisition"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE, TOTALS, PAID_DAILY]
    }
    fn create_tables(&self) -> Vec<String> {
        let t = &self.table;
        let (totals, daily) = (&self.totals, &self.daily);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {totals} (
                    requester_id uuid NOT NULL, status text NOT NULL, currency text NOT NULL,
                    count bigint NOT NULL, amount numeric NOT NULL,
                    PRIMARY KEY (requester_id, status, currency))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {daily} (
                    requester_id uuid NOT NULL, day date NOT NULL, currency text NOT NULL,
                    count bigint NOT NULL, amount numeric NOT NULL,
                    timed bigint NOT NULL, seconds_to_payment numeric NOT NULL,
                    PRIMARY KEY (requester_id, day, currency))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    id uuid PRIMARY KEY, fund_id uuid NOT NULL, requester_id uuid NOT NULL, status text NOT NULL,
                    amount numeric NOT NULL, currency text NOT NULL, purpose text NOT NULL, payee text, category text,
                    chain jsonb NOT NULL, approvers jsonb NOT NULL, current_step text,
                    created_at timestamptz NOT NULL, submitted_at timestamptz, paid_at timestamptz,
                    updated_at timestamptz NOT NULL, last_position bigint NOT NULL)"
            ),
        ]
    }

    fn create_indexes(&self) -> Vec<String> {
        let t = &self.table;
        vec![
            format!("CREATE INDEX IF NOT EXISTS {t}_created_idx ON {t} (created_at DESC, id DESC)"),
            format!("CREATE INDEX IF NOT EXISTS {t}_requester_idx ON {t} (requester_id, created_at DESC)"),
            format!("CREATE INDEX IF NOT EXISTS {t}_fund_idx ON {t} (fund_id, created_at DESC)"),
            format!("CREATE INDEX IF NOT EXISTS {t}_status_idx ON {t} (status, created_at DESC)"),
            format!("CREATE INDEX IF NOT EXISTS {t}_inbox_idx ON {t} (current_step) WHERE current_step IS NOT NULL"),
        ]
    }

    async fn apply(&self, tx: &mut PgConnection, events: &[EventRow]) -> anyhow::Result<()> {
        let events: Vec<&EventRow> = events.iter().filter(|e| e.aggregate_type == "requisition").collect();
        if events.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = events.iter().filter_map(|e| e.aggregate_id.parse().ok()).collect();
        let mut rows: HashMap<Uuid, Row> =
            sqlx::query_as::<_, Row>(&format!("SELECT {COLUMNS} FROM {} WHERE id = ANY($1)", self.table))
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| (r.id, r))
                .collect();
        let before: HashMap<Uuid, (String, String, Decimal)> =
            rows.values().map(|r| (r.id, (r.status.clone(), r.currency.clone(), r.amount))).collect();
        for e in events {
            let event: RequisitionEvent = e.decode()?;
            if let RequisitionEvent::RequisitionCreated {
                requisition_id,
                fund_id,
                currency,
                amount,
                purpose,
                payee,
                category,
                requester_id,
            } = &event
            {
                rows.insert(
                    *requisition_id,
                    Row {
                        id: *requisition_id,
                        fund_id: *fund_id,
                        requester_id: *requester_id,
                        status: "draft".into(),
                        amount: *amount,
                        currency: currency.to_string(),
                        purpose: purpose.clone(),
                        payee: payee.clone(),
                        category: category.clone(),
                        chain: Value::Array(vec![]),
                        approvers: Value::Array(vec![]),
                        current_step: None,
                        created_at: e.recorded_at,
                        submitted_at: None,
                        paid_at: None,
                        updated_at: e.recorded_at,
                        last_position: e.global_position,
                    },
                );
            }
            let id: Uuid = e.aggregate_id.parse()?;
            let row = rows.get_mut(&id).ok_or_else(|| {
                anyhow::anyhow!("event at {} for unknown requisition {id}", e.global_position)
            })?;
            row.apply(event, e.recorded_at);
            row.updated_at = e.recorded_at;
            row.last_position = e.global_position;
        }
        self.write_totals(tx, &before, &rows).await?;
        upsert(tx, &self.table, rows.into_values().collect()).await
    }
}

/// Payments of one day: count, amount, how many had a submission time, their summed seconds
/// from submission to payment.
type PaidDay = (i64, Decimal, i64, Decimal);

impl Requisitions {
    /// Moves the dashboard totals by what this batch changed: each requisition leaves its old
    /// (status, currency, amount) and enters its new one; one that became paid adds to its
    /// day. Deltas are summed per key first (one row per key and statement).
    async fn write_totals(
        &self,
        tx: &mut PgConnection,
        before: &HashMap<Uuid, (String, String, Decimal)>,
        rows: &HashMap<Uuid, Row>,
    ) -> anyhow::Result<()> {
        let mut totals: HashMap<(Uuid, String, String), (i64, Decimal)> = HashMap::new();
        let mut daily: HashMap<(Uuid, NaiveDate, String), PaidDay> = HashMap::new();
        for (id, row) in rows {
            let old = before.get(id);
            let changed =
                old.is_none_or(|(s, c, a)| *s != row.status || *c != row.currency || *a != row.amount);
            if changed {
                for who in [row.requester_id, EVERYONE] {
                    if let Some((s, c, a)) = old {
                        let t = totals.entry((who, s.clone(), c.clone())).or_default();
                        t.0 -= 1;
                        t.1 -= a;
                    }
                    let t = totals.entry((who, row.status.clone(), row.currency.clone())).or_default();
                    t.0 += 1;
                    t.1 += row.amount;
                }
            }
            let newly_paid = row.status == "paid" && old.is_none_or(|(s, _, _)| s != "paid");
            if let (true, Some(paid_at)) = (newly_paid, row.paid_at) {
                let (timed, seconds) = match row.submitted_at {
                    // Exact (microseconds as a decimal): sums do not depend on batch sizes.
                    Some(s) => (1, Decimal::new((paid_at - s).num_microseconds().unwrap_or(0), 6)),
                    None => (0, Decimal::ZERO),
                };
                for who in [row.requester_id, EVERYONE] {
                    let d = daily.entry((who, paid_at.date_naive(), row.currency.clone())).or_default();
                    d.0 += 1;
                    d.1 += row.amount;
                    d.2 += timed;
                    d.3 += seconds;
                }
            }
        }
        totals.retain(|_, (n, a)| *n != 0 || !a.is_zero());
        if !totals.is_empty() {
            let (mut who, mut status, mut currency, mut count, mut amount) =
                (vec![], vec![], vec![], vec![], vec![]);
            for ((w, s, c), (n, a)) in totals {
                who.push(w);
                status.push(s);
                currency.push(c);
                count.push(n);
                amount.push(a);
            }
            sqlx::query(&format!(
                "INSERT INTO {} AS t (requester_id, status, currency, count, amount)
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::numeric[])
                 ON CONFLICT (requester_id, status, currency)
                 DO UPDATE SET count = t.count + EXCLUDED.count, amount = t.amount + EXCLUDED.amount",
                self.totals
            ))
            .bind(&who)
            .bind(&status)
            .bind(&currency)
            .bind(count)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
            // Keys nobody is in any more go, so the table does not depend on how the events
            // were batched (a rebuild equals the live build row for row).
            sqlx::query(&format!(
                "DELETE FROM {} t USING UNNEST($1::uuid[], $2::text[], $3::text[]) AS k(r, s, c)
                 WHERE t.requester_id = k.r AND t.status = k.s AND t.currency = k.c AND t.count = 0",
                self.totals
            ))
            .bind(&who)
            .bind(&status)
            .bind(&currency)
            .execute(&mut *tx)
            .await?;
        }
        if !daily.is_empty() {
            let (mut who, mut day, mut currency, mut count, mut amount, mut timed, mut seconds) =
                (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for ((w, d, c), (n, a, t, s)) in daily {
                who.push(w);
                day.push(d);
                currency.push(c);
                count.push(n);
                amount.push(a);
                timed.push(t);
                seconds.push(s);
            }
            sqlx::query(&format!(
                "INSERT INTO {} AS t (requester_id, day, currency, count, amount, timed, seconds_to_payment)
                 SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::text[], $4::bigint[], $5::numeric[],
                                      $6::bigint[], $7::numeric[])
                 ON CONFLICT (requester_id, day, currency)
                 DO UPDATE SET count = t.count + EXCLUDED.count, amount = t.amount + EXCLUDED.amount,
                               timed = t.timed + EXCLUDED.timed,
                               seconds_to_payment = t.seconds_to_payment + EXCLUDED.seconds_to_payment",
                self.daily
            ))
            .bind(who)
            .bind(day)
            .bind(currency)
            .bind(count)
            .bind(amount)
            .bind(timed)
            .bind(seconds)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

async fn upsert(tx: &mut PgConnection, table: &str, rows: Vec<Row>) -> anyhow::Result<()> {
    macro_rules! col {
        ($f:ident) => {
            rows.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query(&format!(
        "INSERT INTO {table} ({COLUMNS})
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::numeric[], $6::text[], $7::text[],
                              $8::text[], $9::text[], $10::jsonb[], $11::jsonb[], $12::text[], $13::timestamptz[],
                              $14::timestamptz[], $15::timestamptz[], $16::timestamptz[], $17::bigint[])
         ON CONFLICT (id) DO UPDATE SET
            status = EXCLUDED.status, amount = EXCLUDED.amount, purpose = EXCLUDED.purpose,
            payee = EXCLUDED.payee, category = EXCLUDED.category, chain = EXCLUDED.chain,
            approvers = EXCLUDED.approvers, current_step = EXCLUDED.current_step,
            submitted_at = EXCLUDED.submitted_at, paid_at = EXCLUDED.paid_at,
            updated_at = EXCLUDED.updated_at, last_position = EXCLUDED.last_position"
    ))
    .bind(col!(id))
    .bind(col!(fund_id))
    .bind(col!(requester_id))
    .bind(col!(status))
    .bind(col!(amount))
    .bind(col!(currency))
    .bind(col!(purpose))
    .bind(col!(payee))
    .bind(col!(category))
    .bind(col!(chain))
    .bind(col!(approvers))
    .bind(col!(current_step))
    .bind(col!(created_at))
    .bind(col!(submitted_at))
    .bind(col!(paid_at))
    .bind(col!(updated_at))
    .bind(col!(last_position))
    .execute(&mut *tx)
    .await?;
    Ok(())
}
