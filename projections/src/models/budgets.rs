//! `rm_budget_spend`: what budgets consume (issue #14 [treasury], `pettycash_domain::budget`).
//! One row per requisition with what a budget needs to know whether it covers it (company,
//! currency, the cost centre it is charged to, its department and branch), its category, and
//! once paid the amount paid and the month of the payment. Only `RequisitionPaid` fills the
//! paid columns: an approved but unpaid requisition consumes nothing (the old system summed
//! every status). A budget's consumption is the sum of `paid_amount` over the rows of its
//! company, month and currency whose column of its scope is its unit (the command service's
//! `consumed`); `pettycash-replay verify` recomputes the rows from the events.

use crate::event::EventRow;
use crate::{table_name, Phase, Projection};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pettycash_domain::budget::{charged_cost_centre, Month};
use pettycash_domain::requisition::RequisitionEvent;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub const SPEND: &str = "rm_budget_spend";

pub struct Budgets {
    version: i32,
    generation: i32,
    spend: String,
}

impl Budgets {
    /// `version`, generation 0.
    pub fn new(version: i32) -> Self {
        Self::at(version, 0)
    }

    /// `version`, build `generation`.
    pub fn at(version: i32, generation: i32) -> Self {
        Self { version, generation, spend: table_name(SPEND, version, generation) }
    }
}

/// A requisition's row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SpendRow {
    pub id: Uuid,
    pub company_id: Option<Uuid>,
    pub currency: String,
    pub category_id: Option<Uuid>,
    /// The cost centre it chose, and the one of the unit it was created in.
    pub chosen_cost_centre_id: Option<Uuid>,
    pub unit_cost_centre_id: Option<Uuid>,
    /// The cost centre it is charged to (`budget::charged_cost_centre`).
    pub cost_centre_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    pub branch_id: Option<Uuid>,
    pub paid_amount: Option<Decimal>,
    pub paid_at: Option<DateTime<Utc>>,
    /// `YYYY-MM` of `paid_at` (UTC).
    pub paid_month: Option<String>,
    pub last_position: i64,
}

pub const SPEND_COLUMNS: &str = "id, company_id, currency, category_id, chosen_cost_centre_id, \
     unit_cost_centre_id, cost_centre_id, department_id, branch_id, paid_amount, paid_at, paid_month, last_position";

impl SpendRow {
    /// Applies one requisition event recorded at `at`, position `position`; a
    /// `RequisitionCreated` makes the row (`None` before it).
    pub fn fold(
        row: Option<Self>,
        event: &RequisitionEvent,
        at: DateTime<Utc>,
        position: i64,
    ) -> Option<Self> {
        use RequisitionEvent as E;
        let mut row = match (row, event) {
            (
                _,
                E::RequisitionCreated { requisition_id, currency, unit, category_id, cost_centre_id, .. },
            ) => SpendRow {
                id: *requisition_id,
                company_id: unit.map(|u| u.company),
                currency: currency.code().to_string(),
                category_id: *category_id,
                chosen_cost_centre_id: *cost_centre_id,
                unit_cost_centre_id: unit.and_then(|u| u.cost_centre),
                cost_centre_id: charged_cost_centre(*cost_centre_id, unit.as_ref()),
                department_id: unit.and_then(|u| u.department),
                branch_id: unit.and_then(|u| u.branch),
                paid_amount: None,
                paid_at: None,
                paid_month: None,
                last_position: position,
            },
            (None, _) => return None,
            (Some(row), _) => row,
        };
        match event {
            E::CategoryChosen { category_id, cost_centre_id } => {
                if category_id.is_some() {
                    row.category_id = *category_id;
                }
                if cost_centre_id.is_some() {
                    row.chosen_cost_centre_id = *cost_centre_id;
                    row.cost_centre_id = cost_centre_id.or(row.unit_cost_centre_id);
                }
            }
            E::RequisitionPaid { amount, .. } => {
                row.paid_amount = Some(*amount);
                row.paid_at = Some(at);
                row.paid_month = Some(Month::of(at).to_string());
            }
            _ => {}
        }
        row.last_position = position;
        Some(row)
    }

    /// Whether the event changes a row (the others are skipped without reading rows).
    pub fn concerns(event: &RequisitionEvent) -> bool {
        matches!(
            event,
            RequisitionEvent::RequisitionCreated { .. }
                | RequisitionEvent::CategoryChosen { .. }
                | RequisitionEvent::RequisitionPaid { .. }
        )
    }
}

#[async_trait]
impl Projection for Budgets {
    fn name(&self) -> &'static str {
        "budgets"
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
    fn uses_metadata(&self) -> bool {
        false
    }
    fn tables(&self) -> &'static [&'static str] {
        &[SPEND]
    }
    fn create_tables(&self) -> Vec<String> {
        let s = &self.spend;
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {s} (
                id uuid PRIMARY KEY, company_id uuid, currency text NOT NULL, category_id uuid,
                chosen_cost_centre_id uuid, unit_cost_centre_id uuid, cost_centre_id uuid, department_id uuid,
                branch_id uuid, paid_amount numeric, paid_at timestamptz, paid_month text,
                last_position bigint NOT NULL)"
        )]
    }
    fn create_indexes(&self) -> Vec<String> {
        let s = &self.spend;
        vec![format!(
            "CREATE INDEX IF NOT EXISTS {s}_month_idx ON {s} (company_id, paid_month) WHERE paid_month IS NOT NULL"
        )]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        _after: i64,
        _phase: Phase,
        events: &[EventRow],
    ) -> anyhow::Result<()> {
        let mut decoded = Vec::new();
        for e in events.iter().filter(|e| e.aggregate_type == "requisition") {
            let event: RequisitionEvent = e.decode()?;
            if SpendRow::concerns(&event) {
                decoded.push((e.aggregate_id.parse::<Uuid>()?, e, event));
            }
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = decoded.iter().map(|(id, ..)| *id).collect();
        let mut rows: HashMap<Uuid, SpendRow> = sqlx::query_as::<_, SpendRow>(&format!(
            "SELECT {SPEND_COLUMNS} FROM {} WHERE id = ANY($1)",
            self.spend
        ))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
        for (id, e, event) in decoded {
            if let Some(row) = SpendRow::fold(rows.remove(&id), &event, e.recorded_at, e.global_position) {
                rows.insert(id, row);
            }
        }
        let rows: Vec<SpendRow> = rows.into_values().collect();
        macro_rules! col {
            ($f:ident) => {
                rows.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
            };
        }
        sqlx::query(&format!(
            "INSERT INTO {} ({SPEND_COLUMNS})
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::uuid[], $7::uuid[],
                                  $8::uuid[], $9::uuid[], $10::numeric[], $11::timestamptz[], $12::text[], $13::bigint[])
             ON CONFLICT (id) DO UPDATE SET category_id = EXCLUDED.category_id,
                 chosen_cost_centre_id = EXCLUDED.chosen_cost_centre_id, cost_centre_id = EXCLUDED.cost_centre_id,
                 paid_amount = EXCLUDED.paid_amount, paid_at = EXCLUDED.paid_at, paid_month = EXCLUDED.paid_month,
                 last_position = EXCLUDED.last_position",
            self.spend
        ))
        .bind(col!(id))
        .bind(col!(company_id))
        .bind(col!(currency))
        .bind(col!(category_id))
        .bind(col!(chosen_cost_centre_id))
        .bind(col!(unit_cost_centre_id))
        .bind(col!(cost_centre_id))
        .bind(col!(department_id))
        .bind(col!(branch_id))
        .bind(col!(paid_amount))
        .bind(col!(paid_at))
        .bind(col!(paid_month))
        .bind(col!(last_position))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
