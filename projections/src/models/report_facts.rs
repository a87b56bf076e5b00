//! `rm_report_requisitions`: one row per requisition holding what the approvals, payments and
//! exceptions reports know of it ([`RequisitionFacts`]: its approval actions with the time each
//! step became the approver's, its payment attempts, its exceptions) as jsonb, with the
//! columns the reports select on (company, requester, status, created and last changed).
//!
//! A projection of its own rather than more columns of `rm_requisitions`: it reads the
//! requisition events only ([`Projection::aggregate_types`]) and no metadata, so building it
//! costs a fraction of a `requisitions` rebuild, and adding it rebuilds nothing else. The value
//! is [`RequisitionFacts::fold`], the very fold `pettycash-replay report` applies to the events.

use crate::event::EventRow;
use crate::reports::facts::RequisitionFacts;
use crate::{table_name, Phase, Projection};
use async_trait::async_trait;
use pettycash_domain::requisition::RequisitionEvent;
use sqlx::types::Json;
use sqlx::PgConnection;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub const TABLE: &str = "rm_report_requisitions";

pub struct ReportFacts {
    version: i32,
    generation: i32,
    table: String,
}

impl ReportFacts {
    /// `version`, generation 0.
    pub fn new(version: i32) -> Self {
        Self::at(version, 0)
    }

    /// `version`, build `generation`.
    pub fn at(version: i32, generation: i32) -> Self {
        Self { version, generation, table: table_name(TABLE, version, generation) }
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
        Some(&["requisition"])
    }
    fn uses_metadata(&self) -> bool {
        false
    }
    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }
    fn create_tables(&self) -> Vec<String> {
        let t = &self.table;
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {t} (
                id uuid PRIMARY KEY, company_id uuid, requester_id uuid NOT NULL, status text NOT NULL,
                created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, facts jsonb NOT NULL,
                last_position bigint NOT NULL)"
        )]
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
