//! `verify` for budgets (issue #14 [treasury], `pettycash_domain::budget`):
//!
//! - `over_budget_submitted`: while the `budget_block` setting was on, a submission recorded
//!   budget flags (`BudgetExceeded`), or exceeded a budget that covered it, recomputed here from
//!   the budgets (`BudgetSet`) and the payments (`RequisitionPaid`) before it: `consumed +
//!   amount > budget` for the month the submission was recorded in. (The service reads what
//!   was consumed from the read model, which may miss a payment committed a few milliseconds
//!   earlier: such a race shows here too, and is worth an auditor's look.)
//! - `budget_consumption_mismatch` (checked at the end against the database): what each budget
//!   scope (company, month, currency, cost centre / department / branch) consumed, recomputed
//!   from the payments, differs from the `budgets` read model (`rm_budget_spend`). Checked only
//!   when that read model is live at the store's last event; otherwise reported as not checked
//!   (unless the events consumed nothing).

use super::{Verifier, Violation};
use crate::EventRow;
use pettycash_domain::budget::{charged_cost_centre, plan_id, BudgetEvent, BudgetPlan, Month, ScopeKind};
use pettycash_domain::organisation::UnitPath;
use pettycash_domain::requisition::RequisitionEvent;
use rust_decimal::Decimal;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// What `verify` could not check when the budgets read model is not at the store's end.
pub const BUDGETS_BEHIND: &str =
    "budget consumption: the budgets read model is not live at the store's last event (not compared)";

/// One budget scope's consumption key: company, month, currency, scope kind, unit.
pub(super) type SpendKey = (Option<Uuid>, String, String, &'static str, Uuid);

/// What `verify` follows for budgets.
#[derive(Default)]
pub(super) struct BudgetsV {
    /// The `budget_block` setting as its events left it.
    pub(super) block: bool,
    /// Each company's budgets (by plan stream id).
    plans: HashMap<Uuid, BudgetPlan>,
    /// Paid amounts per scope key.
    pub(super) consumed: BTreeMap<SpendKey, Decimal>,
    /// Per requisition: the cost centre it chose, and the flags waiting for its submission.
    chosen: HashMap<Uuid, Option<Uuid>>,
    flags: HashMap<Uuid, usize>,
}

fn keys(
    company: Option<Uuid>,
    month: &str,
    currency: &str,
    cost_centre: Option<Uuid>,
    unit: Option<&UnitPath>,
) -> Vec<SpendKey> {
    let mut keys = Vec::new();
    let mut push = |kind: ScopeKind, id: Option<Uuid>| {
        if let Some(id) = id {
            keys.push((company, month.to_string(), currency.to_string(), kind.as_str(), id));
        }
    };
    push(ScopeKind::CostCentre, charged_cost_centre(cost_centre, unit));
    push(ScopeKind::Department, unit.and_then(|u| u.department));
    push(ScopeKind::Branch, unit.and_then(|u| u.branch));
    keys
}

impl Verifier {
    /// Folds a `budget_plan` event.
    pub(super) fn budget_plan(&mut self, e: &EventRow, ev: BudgetEvent) {
        let Some(id) = self.id(e) else { return };
        cqrs_es::Aggregate::apply(self.budgets.plans.entry(id).or_default(), ev);
    }

    /// Follows and checks a requisition's events for budgets, before the other arms fold them.
    pub(super) fn budget_requisition(&mut self, e: &EventRow, id: Uuid, ev: &RequisitionEvent) {
        use RequisitionEvent as E;
        match ev {
            E::RequisitionCreated { cost_centre_id, .. } => {
                self.budgets.chosen.insert(id, *cost_centre_id);
            }
            E::CategoryChosen { cost_centre_id: Some(cc), .. } => {
                self.budgets.chosen.insert(id, Some(*cc));
            }
            E::BudgetExceeded { .. } => *self.budgets.flags.entry(id).or_default() += 1,
            E::RequisitionSubmitted { amount, .. } => {
                let flags = self.budgets.flags.remove(&id).unwrap_or_default();
                if !self.budgets.block {
                    return;
                }
                let Some(r) = self.requisitions.get(&id) else { return };
                let (unit, currency) = (r.unit, r.currency.clone());
                let company = unit.map(|u| u.company);
                let chosen = self.budgets.chosen.get(&id).copied().flatten();
                let month = Month::of(e.recorded_at);
                let over = currency.as_ref().and_then(|currency| {
                    let plan = self.budgets.plans.get(&plan_id(company))?;
                    plan.covering(month, currency, chosen, unit.as_ref()).into_iter().find_map(|b| {
                        let kind = b.scope.kind.as_str();
                        let key =
                            (company, month.to_string(), currency.code().to_string(), kind, b.scope.unit_id);
                        let consumed = self.budgets.consumed.get(&key).copied().unwrap_or_default();
                        (consumed + *amount > b.amount).then(|| {
                            format!(
                                "budget {} ({kind}, {month}): {consumed} consumed + {amount} > {}",
                                b.budget_id, b.amount
                            )
                        })
                    })
                });
                let detail = match (flags, over) {
                    (_, Some(over)) => Some(over),
                    (n, None) if n > 0 => Some(format!("{n} budget flag(s) recorded")),
                    _ => None,
                };
                if let Some(detail) = detail {
                    self.flag(
                        e,
                        "over_budget_submitted",
                        format!("submitted over budget while budgets block: {detail}"),
                    );
                }
            }
            E::RequisitionPaid { amount, .. } => {
                let Some(r) = self.requisitions.get(&id) else { return };
                let Some(currency) = r.currency.as_ref() else { return };
                let company = r.unit.map(|u| u.company);
                let chosen = self.budgets.chosen.get(&id).copied().flatten();
                let month = Month::of(e.recorded_at).to_string();
                for key in keys(company, &month, currency.code(), chosen, r.unit.as_ref()) {
                    *self.budgets.consumed.entry(key).or_default() += *amount;
                }
            }
            _ => {}
        }
    }
}

/// Compares the consumption `v` recomputed with the `budgets` read model; the violations, or
/// `Err(BUDGETS_BEHIND)` when the read model is not live at `last_position`.
pub(super) async fn compare_consumption(
    pool: &PgPool,
    consumed: &BTreeMap<SpendKey, Decimal>,
    last_position: Option<i64>,
) -> Result<Result<Vec<Violation>, &'static str>, sqlx::Error> {
    let Some(last) = last_position else { return Ok(Ok(Vec::new())) };
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT max(last_position) FROM projection_checkpoints WHERE name = 'budgets' AND state = 'live'",
    )
    .fetch_optional(pool)
    .await
    .or_else(|e| if is_undefined(&e) { Ok(None) } else { Err(e) })?
    .flatten();
    if at != Some(last) {
        // Nothing consumed per the events: nothing the read model could be missing.
        return Ok(if consumed.is_empty() { Ok(Vec::new()) } else { Err(BUDGETS_BEHIND) });
    }
    let rows: Vec<(Option<Uuid>, String, String, String, Uuid, Decimal)> = sqlx::query_as(
        "SELECT company_id, paid_month, currency, kind, unit_id, sum(paid_amount) FROM (
             SELECT company_id, paid_month, currency, 'cost_centre' AS kind, cost_centre_id AS unit_id, paid_amount
             FROM rm_budget_spend WHERE paid_month IS NOT NULL AND cost_centre_id IS NOT NULL
             UNION ALL
             SELECT company_id, paid_month, currency, 'department', department_id, paid_amount
             FROM rm_budget_spend WHERE paid_month IS NOT NULL AND department_id IS NOT NULL
             UNION ALL
             SELECT company_id, paid_month, currency, 'branch', branch_id, paid_amount
             FROM rm_budget_spend WHERE paid_month IS NOT NULL AND branch_id IS NOT NULL) s
         GROUP BY 1, 2, 3, 4, 5",
    )
    .fetch_all(pool)
    .await?;
    let mut stored: BTreeMap<(Option<Uuid>, String, String, String, Uuid), Decimal> = BTreeMap::new();
    for (company, month, currency, kind, unit, sum) in rows {
        stored.insert((company, month, currency, kind, unit), sum);
    }
    let mut violations = Vec::new();
    let mut mismatch = |key: String, events: Decimal, model: Decimal| {
        violations.push(Violation {
            position: last,
            aggregate_type: "read_model".into(),
            aggregate_id: "rm_budget_spend".into(),
            rule: "budget_consumption_mismatch",
            detail: format!("{key}: {events} paid per the events, {model} in the budgets read model"),
        })
    };
    for ((company, month, currency, kind, unit), sum) in consumed {
        let key = (*company, month.clone(), currency.clone(), kind.to_string(), *unit);
        let model = stored.remove(&key).unwrap_or_default();
        if model != *sum {
            mismatch(format!("{kind} {unit} {month} {currency}"), *sum, model);
        }
    }
    for ((_, month, currency, kind, unit), model) in stored {
        if !model.is_zero() {
            mismatch(format!("{kind} {unit} {month} {currency}"), Decimal::ZERO, model);
        }
    }
    Ok(Ok(violations))
}

fn is_undefined(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01"))
}
