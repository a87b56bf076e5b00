//! Reading alerts (issue #15): the list with its filters, one alert with its history, and the
//! open alerts by severity for the dashboard. Written by the `alerts` projection
//! (`models::alerts`) and people's acknowledge/resolve (`pettycash_commands::alerts`); who may
//! read which is [`AlertScope`] (domain visibility), translated here into SQL.

use crate::queries::{page, Cursor, Page, PageRequest};
use chrono::{DateTime, Utc};
use pettycash_domain::alert::{AlertAction, AlertState, AlertType, ObjectType, Severity};
use pettycash_domain::visibility::AlertScope;
use pettycash_domain::Id;
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// An alert as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AlertView {
    pub id: Uuid,
    #[schema(value_type = String, example = "fund_low")]
    pub alert_type: AlertType,
    #[schema(value_type = String, example = "high")]
    pub severity: Severity,
    /// `open`, `acknowledged` or `resolved`.
    #[schema(value_type = String, example = "open")]
    pub state: AlertState,
    pub company_id: Option<Uuid>,
    pub fund_id: Option<Uuid>,
    /// `fund`, `requisition`, `advance` (by its requisition's id) or `count`.
    #[schema(value_type = String, example = "fund")]
    pub object_type: ObjectType,
    pub object_id: String,
    pub branch_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    /// The people responsible besides treasury (custodian, payer, holder).
    pub responsible_ids: Vec<Uuid>,
    pub title: String,
    pub message: String,
    pub raised_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<Uuid>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// `null` with `resolved_at` set: it resolved itself (its condition cleared).
    pub resolved_by: Option<Uuid>,
    pub resolution_note: Option<String>,
}

/// One line of an alert's history: who did what, when, with which note (`by` `null`: the
/// service).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AlertHistoryLine {
    /// `raise`, `acknowledge` or `resolve`.
    #[schema(value_type = String, example = "acknowledge")]
    pub action: AlertAction,
    pub by: Option<Uuid>,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

/// The list's filters (all optional; a unit filter matches the alert's company, branch or
/// department).
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub states: Vec<AlertState>,
    pub severities: Vec<Severity>,
    pub types: Vec<AlertType>,
    pub unit: Option<Id>,
    pub fund_id: Option<Id>,
}

const COLUMNS: &str =
    "id, alert_type, severity, state, company_id, fund_id, object_type, object_id, branch_id,
    department_id, responsible_ids, title, message, raised_at, acknowledged_at, acknowledged_by, resolved_at,
    resolved_by, resolution_note";

/// Restricts a query on `alerts` to what `scope` admits ([`AlertScope::admits`] as SQL).
fn push_scope(q: &mut QueryBuilder<'_, Postgres>, scope: &AlertScope) {
    q.push(" AND (");
    if let Some(company) = scope.company {
        q.push("company_id IS NOT DISTINCT FROM ").push_bind(company).push(" OR ");
    }
    q.push_bind(scope.user_id).push(" = ANY (responsible_ids))");
}

/// Alerts the scope admits, newest first, a page at a time.
pub async fn list(
    pool: &PgPool,
    scope: &AlertScope,
    filter: &AlertFilter,
    req: PageRequest,
) -> sqlx::Result<Page<AlertView>> {
    let limit = req.limit();
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM alerts WHERE true"));
    push_scope(&mut q, scope);
    if !filter.states.is_empty() {
        q.push(" AND state = ANY (").push_bind(filter.states.clone()).push(")");
    }
    if !filter.severities.is_empty() {
        q.push(" AND severity = ANY (").push_bind(filter.severities.clone()).push(")");
    }
    if !filter.types.is_empty() {
        q.push(" AND alert_type = ANY (").push_bind(filter.types.clone()).push(")");
    }
    if let Some(unit) = filter.unit {
        q.push(" AND (company_id = ")
            .push_bind(unit)
            .push(" OR branch_id = ")
            .push_bind(unit)
            .push(" OR department_id = ")
            .push_bind(unit)
            .push(")");
    }
    if let Some(fund) = filter.fund_id {
        q.push(" AND fund_id = ").push_bind(fund);
    }
    if let Some(after) = req.after {
        q.push(" AND (raised_at, id) < (").push_bind(after.at).push(", ").push_bind(after.id).push(")");
    }
    q.push(" ORDER BY raised_at DESC, id DESC LIMIT ").push_bind(limit + 1);
    let rows: Vec<AlertView> = q.build_query_as().fetch_all(pool).await?;
    Ok(page(rows, limit, |a| Cursor { at: a.raised_at, id: a.id }))
}

/// One alert the scope admits, with its history (oldest first); `None`: no such alert, or
/// not for this reader.
pub async fn get(
    pool: &PgPool,
    scope: &AlertScope,
    id: Id,
) -> sqlx::Result<Option<(AlertView, Vec<AlertHistoryLine>)>> {
    let alert: Option<AlertView> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    let Some(alert) = alert.filter(|a| scope.admits(a.company_id, &a.responsible_ids)) else {
        return Ok(None);
    };
    let history = sqlx::query_as(
        "SELECT action, by_user AS by, note, at FROM alert_history WHERE alert_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Some((alert, history)))
}

/// Open alerts (open or acknowledged) that `scope` admits, by severity, every severity listed
/// (most urgent first), for the dashboard: a finance reader's company's, anyone else's the
/// ones naming them responsible.
pub async fn open_by_severity(pool: &PgPool, scope: &AlertScope) -> sqlx::Result<Vec<(Severity, i64)>> {
    // The company's from the counts a trigger keeps (migration 0025), however many are open;
    // those naming the user from outside it through the index of the open alerts' responsible.
    let mut q = QueryBuilder::new("SELECT severity, sum(n)::bigint FROM (");
    if let Some(company) = scope.company {
        q.push("SELECT severity, open AS n FROM alert_open_counts WHERE company_key = ")
            .push_bind(company.unwrap_or(Uuid::nil()))
            .push(" UNION ALL ");
    }
    q.push("SELECT severity, 1 AS n FROM alerts WHERE state <> ")
        .push_bind(AlertState::Resolved)
        .push(" AND responsible_ids @> ARRAY[")
        .push_bind(scope.user_id)
        .push("]");
    if let Some(company) = scope.company {
        q.push(" AND company_id IS DISTINCT FROM ").push_bind(company);
    }
    q.push(") open GROUP BY severity");
    let rows: Vec<(Severity, i64)> = q.build_query_as().fetch_all(pool).await?;
    Ok(Severity::ALL
        .into_iter()
        .map(|s| (s, rows.iter().find(|(r, _)| *r == s).map_or(0, |(_, n)| *n)))
        .collect())
}
