//! `rm_report_funds` and `rm_report_advances`: the treasury report's funds and advances
//! ([`FundFacts`], [`AdvanceFacts`]), one jsonb value each.
//!
//! `rm_report_requisitions`: one row per requisition holding what the approvals, payments and
//! exceptions reports know of it ([`RequisitionFacts`]: its approval actions with the time each
//! step became the approver's, its payment attempts, its exceptions) as jsonb, with the
//! columns the reports select on (company, requester, status, created and last changed).
//!
//! A projection of its own rather than more columns of `rm_requisitions`: it reads the
//! requisition, fund and advance events only ([`Projection::aggregate_types`]) and no metadata, so building it
//! costs a fraction of a `requisitions` rebuild, and adding it rebuilds nothing else. The value
//! is [`RequisitionFacts::fold`], the very fold `pettycash-replay report` applies to the events.

use crate::event::EventRow;
use crate::reports::facts::RequisitionFacts;
use crate::reports::treasury::{AdvanceFacts, FundFacts};
use crate::{table_name, Phase, Projection};
use async_trait::async_trait;
use pettycash_domain::advance::AdvanceEvent;
use pettycash_domain::fund::FundEvent;
use pettycash_domain::requisition::RequisitionEvent;
use sqlx::types::Json;
use sqlx::PgConnection;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub const TABLE: &str = "rm_report_requisitions";
pub const FUNDS: &str = "rm_report_funds";
pub const ADVANCES: &str = "rm_report_advances";

pub struct ReportFacts {
    version: i32,
    generation: i32,
    table: String,
    funds: String,
    advances: String,
}

impl ReportFacts {
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
            funds: table_name(FUNDS, version, generation),
            advances: table_name(ADVANCES, version, generation),
        }
    }
}

#[async_trait]
impl Projection for ReportFacts {
    fn name(&self) -> &'static str {
        "report_facts"
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
        Some(&["requisition", "fund", "advance_account"])
    }
    fn uses_metadata(&self) -> bool {
        false
    }
    fn tables(&self) -> &'static [&'static str] {
        &[TABLE, FUNDS, ADVANCES]
    }
    fn create_tables(&self) -> Vec<String> {
        let (t, f, a) = (&self.table, &self.funds, &self.advances);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    id uuid PRIMARY KEY, company_id uuid, requester_id uuid NOT NULL, status text NOT NULL,
                    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, facts jsonb NOT NULL,
                    last_position bigint NOT NULL)"
            ),
            format!("CREATE TABLE IF NOT EXISTS {f} (id uuid PRIMARY KEY, company_id uuid, facts jsonb NOT NULL)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {a} (requisition_id uuid PRIMARY KEY, fund_id uuid NOT NULL, facts jsonb NOT NULL)"
            ),
        ]
    }
    fn create_indexes(&self) -> Vec<String> {
        let t = &self.table;
        vec![
            format!("CREATE INDEX IF NOT EXISTS {t}_updated_idx ON {t} (company_id, updated_at)"),
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_pending_idx ON {t} (company_id) WHERE status = 'pending_approval'"
            ),
        ]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        _after: i64,
        _phase: Phase,
        events: &[EventRow],
    ) -> anyhow::Result<()> {
        self.apply_treasury(tx, events).await?;
        let mut decoded = Vec::new();
        for e in events.iter().filter(|e| e.aggregate_type == "requisition") {
            let event: RequisitionEvent = e.decode()?;
            if RequisitionFacts::concerns(&event) {
                decoded.push((e.aggregate_id.parse::<Uuid>()?, e, event));
            }
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = decoded.iter().map(|(id, ..)| *id).collect();
        let stored: Vec<(Json<RequisitionFacts>, i64)> =
            sqlx::query_as(&format!("SELECT facts, last_position FROM {} WHERE id = ANY($1)", self.table))
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?;
        let mut rows: HashMap<Uuid, (RequisitionFacts, i64)> =
            stored.into_iter().map(|(f, p)| (f.0.id, (f.0, p))).collect();
        for (id, e, event) in decoded {
            let before = rows.remove(&id).map(|(f, _)| f);
            if let Some(f) = RequisitionFacts::fold(before, &event, e.recorded_at) {
                rows.insert(id, (f, e.global_position));
            }
        }
        let rows: Vec<(RequisitionFacts, i64)> = rows.into_values().collect();
        sqlx::query(&format!(
            "INSERT INTO {} (id, company_id, requester_id, status, created_at, updated_at, facts, last_position)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[],
                                  $6::timestamptz[], $7::jsonb[], $8::bigint[])
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
                 facts = EXCLUDED.facts, last_position = EXCLUDED.last_position",
            self.table
        ))
        .bind(rows.iter().map(|(f, _)| f.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|(f, _)| f.company_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|(f, _)| f.requester_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|(f, _)| f.status).collect::<Vec<_>>())
        .bind(rows.iter().map(|(f, _)| f.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|(f, _)| f.updated_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|(f, _)| Json(f)).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, p)| *p).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

impl ReportFacts {
    /// The funds' and advances' values (few rows, few events: read, folded, written back).
    async fn apply_treasury(&self, tx: &mut PgConnection, events: &[EventRow]) -> anyhow::Result<()> {
        let mut fund_events = Vec::new();
        let mut advance_events = Vec::new();
        for e in events {
            match e.aggregate_type.as_str() {
                "fund" => fund_events.push((
                    e.aggregate_id.parse::<Uuid>()?,
                    e.decode::<FundEvent>()?,
                    e.recorded_at,
                )),
                "advance_account" => {
                    let event: AdvanceEvent = e.decode()?;
                    advance_events.push((AdvanceFacts::key(&event), event));
                }
                _ => {}
            }
        }
        if !fund_events.is_empty() {
            let ids: Vec<Uuid> = fund_events.iter().map(|(id, ..)| *id).collect();
            let stored: Vec<Json<FundFacts>> =
                sqlx::query_scalar(&format!("SELECT facts FROM {} WHERE id = ANY($1)", self.funds))
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await?;
            let mut rows: HashMap<Uuid, FundFacts> = stored.into_iter().map(|j| (j.0.id, j.0)).collect();
            for (id, event, at) in fund_events {
                if let Some(f) = FundFacts::fold(rows.remove(&id), &event, at) {
                    rows.insert(id, f);
                }
            }
            let rows: Vec<FundFacts> = rows.into_values().collect();
            sqlx::query(&format!(
                "INSERT INTO {} (id, company_id, facts)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::jsonb[])
                 ON CONFLICT (id) DO UPDATE SET facts = EXCLUDED.facts",
                self.funds
            ))
            .bind(rows.iter().map(|f| f.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|f| f.unit.map(|u| u.company)).collect::<Vec<_>>())
            .bind(rows.iter().map(Json).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !advance_events.is_empty() {
            let ids: Vec<Uuid> = advance_events.iter().map(|(id, _)| *id).collect();
            let stored: Vec<Json<AdvanceFacts>> = sqlx::query_scalar(&format!(
                "SELECT facts FROM {} WHERE requisition_id = ANY($1)",
                self.advances
            ))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            let mut rows: HashMap<Uuid, AdvanceFacts> =
                stored.into_iter().map(|j| (j.0.requisition_id, j.0)).collect();
            for (id, event) in advance_events {
                if let Some(a) = AdvanceFacts::fold(rows.remove(&id), &event) {
                    rows.insert(id, a);
                }
            }
            let rows: Vec<AdvanceFacts> = rows.into_values().collect();
            sqlx::query(&format!(
                "INSERT INTO {} (requisition_id, fund_id, facts)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::jsonb[])
                 ON CONFLICT (requisition_id) DO UPDATE SET facts = EXCLUDED.facts",
                self.advances
            ))
            .bind(rows.iter().map(|a| a.requisition_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|a| a.fund_id).collect::<Vec<_>>())
            .bind(rows.iter().map(Json).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}
