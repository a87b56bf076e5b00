//! `rm_requisitions`: one row per requisition, for lists, the approvals inbox and the
//! dashboard.

use crate::event::EventRow;
use crate::{table_name, Projection};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pettycash_domain::requisition::{apply_edit, RequisitionEvent};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::PgConnection;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub const TABLE: &str = "rm_requisitions";

pub struct Requisitions {
    version: i32,
    generation: i32,
    table: String,
}

impl Requisitions {
    /// `version`, generation 0.
    pub fn new(version: i32) -> Self {
        Self::at(version, 0)
    }

    /// `version`, build `generation`.
    pub fn at(version: i32, generation: i32) -> Self {
        Self { version, generation, table: table_name(TABLE, version, generation) }
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
        &[TABLE]
    }
    fn create_tables(&self) -> Vec<String> {
        let t = &self.table;
        vec![
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
        upsert(tx, &self.table, rows.into_values().collect()).await
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
