//! Expense categories, cost centres and budgets (issue #14 [treasury]; the rules are
//! `pettycash_domain::category` and `pettycash_domain::budget`): what the commands look up
//! and pass in, and the reads.
//!
//! - A company's categories are one stream (`category_catalogue`, id the company's), read by
//!   folding it (a catalogue is small): the list, the check of a requisition's category.
//! - Cost centres are the organisation's `cost_centre` units (`org_units`).
//! - A company's budgets are one stream (`budget_plan`); what each consumed is the `budgets`
//!   read model's (`rm_budget_spend`: one row per requisition, with its paid amount and month),
//!   read at submission and by budget against actual (`GET /api/budgets?month=`).

use crate::context::CommandContext;
use crate::error::CommandError;
use crate::org::UnitView;
use crate::service::{CommandService, Source};
use crate::store::{decide, Loaded, StreamAppend};
use crate::Outcome;
use pettycash_domain::budget::{
    overruns, plan_id, Budget, BudgetCommand, BudgetFlag, BudgetPlan, BudgetScope, Month, ScopeKind,
};
use pettycash_domain::category::{catalogue_id, Catalogue, Category, CategoryCommand};
use pettycash_domain::organisation::UnitKind;
use pettycash_domain::requisition::Requisition;
use pettycash_domain::user::Requester;
use pettycash_domain::visibility::{may_read_budgets, may_read_catalogue};
use pettycash_domain::{Actor, DomainError, Id, Role};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// An expense category as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CategoryView {
    pub id: Uuid,
    /// Unique within the company; upper case.
    #[schema(example = "OFFICE")]
    pub code: String,
    #[schema(example = "Office supplies")]
    pub name: String,
    /// The general-ledger account.
    #[schema(example = "6100")]
    pub gl_code: String,
    pub active: bool,
    /// Global position of the command's last event (0 in lists).
    pub position: i64,
}

impl CategoryView {
    fn of(c: &Category, position: i64) -> Self {
        Self {
            id: c.id,
            code: c.code.clone(),
            name: c.name.clone(),
            gl_code: c.gl_code.clone(),
            active: c.active,
            position,
        }
    }
}

/// A budget a requisition's latest submission exceeds, as its view shows it (read from a
/// stored `BudgetFlag`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
#[serde(from = "BudgetFlag")]
pub struct BudgetFlagView {
    pub budget_id: Uuid,
    /// `cost_centre`, `department` or `branch`.
    #[schema(example = "department")]
    pub scope: String,
    /// The unit the budget is for.
    pub scope_id: Uuid,
    #[schema(example = "2026-12")]
    pub month: String,
    #[schema(value_type = String, example = "50000.00")]
    pub budget: Decimal,
    /// Paid from it in the month before this submission.
    #[schema(value_type = String, example = "48000.00")]
    pub consumed: Decimal,
    /// This requisition's amount.
    #[schema(value_type = String, example = "2500.00")]
    pub amount: Decimal,
}

impl From<BudgetFlag> for BudgetFlagView {
    fn from(f: BudgetFlag) -> Self {
        Self::from(&f)
    }
}

impl From<&BudgetFlag> for BudgetFlagView {
    fn from(f: &BudgetFlag) -> Self {
        Self {
            budget_id: f.budget_id,
            scope: f.scope.kind.as_str().to_string(),
            scope_id: f.scope.unit_id,
            month: f.month.to_string(),
            budget: f.budget,
            consumed: f.consumed,
            amount: f.amount,
        }
    }
}

/// A budget against what it consumed (paid amounts of its month).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BudgetLine {
    pub budget_id: Uuid,
    /// `cost_centre`, `department` or `branch`.
    #[schema(example = "department")]
    pub scope: String,
    pub scope_id: Uuid,
    /// The unit's code and name (`null` when the unit is gone from `org_units`).
    pub scope_code: Option<String>,
    pub scope_name: Option<String>,
    #[schema(example = "2026-12")]
    pub month: String,
    #[schema(example = "KES")]
    pub currency: String,
    #[schema(value_type = String, example = "50000.00")]
    pub amount: Decimal,
    /// Paid in the month by the requisitions it covers.
    #[schema(value_type = String, example = "48000.00")]
    pub consumed: Decimal,
    /// `amount − consumed` (negative when overspent).
    #[schema(value_type = String, example = "2000.00")]
    pub remaining: Decimal,
    /// Global position of the command's last event (0 in the report).
    pub position: i64,
}

/// Input of `set_budget`.
#[derive(Debug, Clone)]
pub struct NewBudget {
    pub scope: ScopeKind,
    pub scope_id: Id,
    pub month: String,
    pub currency: String,
    pub amount: Decimal,
}

/// The category and cost centre a requester chooses on a requisition (create, edit, submit);
/// `None`: none given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CategoryChoice {
    pub category_id: Option<Id>,
    pub cost_centre_id: Option<Id>,
}

impl CategoryChoice {
    pub fn is_empty(&self) -> bool {
        self.category_id.is_none() && self.cost_centre_id.is_none()
    }
}

/// The actor of a user command.
fn actor(ctx: &CommandContext) -> Result<Actor, CommandError> {
    ctx.actor.clone().ok_or(CommandError::Unauthenticated("this command needs a signed-in user"))
}

impl CommandService {
    // ----- categories -------------------------------------------------------------------

    /// The catalogue of `company` (`None`: the unscoped organisation's), folded from its stream.
    pub(crate) async fn catalogue(&self, company: Option<Id>) -> Result<Loaded<Catalogue>, CommandError> {
        self.load::<Catalogue>(catalogue_id(company), Source::Store).await
    }

    /// The expense categories of the actor's company, active and inactive, in the order they
    /// were created.
    pub async fn categories(&self, actor: &Actor) -> Result<Vec<CategoryView>, CommandError> {
        let company = actor.company();
        if !may_read_catalogue(actor, company) {
            return Ok(Vec::new());
        }
        let catalogue = self.catalogue(company).await?.state;
        Ok(catalogue.categories.iter().map(|c| CategoryView::of(c, 0)).collect())
    }

    /// Runs one command on the actor's company's catalogue; answers with category `id`.
    async fn on_catalogue(
        &self,
        ctx: &CommandContext,
        id: Id,
        make: impl Fn(Actor) -> CategoryCommand,
    ) -> Result<Outcome<CategoryView>, CommandError> {
        let actor = &actor(ctx)?;
        if !actor.has(Role::Admin) {
            return Err(DomainError::MissingRole { required: Role::Admin }.into());
        }
        let make = &make;
        self.retrying(|_| async move {
            let loaded = self.catalogue(actor.company()).await?;
            let mut catalogue = loaded.state.clone();
            let events = decide(&mut catalogue, make(actor.clone())).await?;
            let stream = StreamAppend::of(&loaded, &events, &catalogue)?;
            let view = catalogue
                .get(id)
                .map(|c| CategoryView::of(c, 0))
                .ok_or(CommandError::not_found("category"))?;
            self.commit(ctx, &[stream], vec![], view, |v, p| v.position = p).await
        })
        .await
    }

    /// An admin creates an expense category in their company.
    pub async fn create_category(
        &self,
        ctx: &CommandContext,
        code: &str,
        name: &str,
        gl_code: &str,
    ) -> Result<Outcome<CategoryView>, CommandError> {
        let category_id = Id::now_v7();
        self.on_catalogue(ctx, category_id, |actor| CategoryCommand::Create {
            category_id,
            code: code.into(),
            name: name.into(),
            gl_code: gl_code.into(),
            actor,
        })
        .await
    }

    pub async fn rename_category(
        &self,
        ctx: &CommandContext,
        id: Id,
        name: &str,
    ) -> Result<Outcome<CategoryView>, CommandError> {
        self.on_catalogue(ctx, id, |actor| CategoryCommand::Rename {
            category_id: id,
            name: name.into(),
            actor,
        })
        .await
    }

    /// Requisitions can no longer choose it; those that did keep it.
    pub async fn deactivate_category(
        &self,
        ctx: &CommandContext,
        id: Id,
    ) -> Result<Outcome<CategoryView>, CommandError> {
        self.on_catalogue(ctx, id, |actor| CategoryCommand::Deactivate { category_id: id, actor }).await
    }

    // ----- cost centres -----------------------------------------------------------------

    /// The cost centres of the actor's company (`org_units` of kind `cost_centre`), by code;
    /// none for an actor of no company.
    pub async fn cost_centres(&self, actor: &Actor) -> Result<Vec<UnitView>, CommandError> {
        let Some(company) = actor.company().filter(|c| may_read_catalogue(actor, Some(*c))) else {
            return Ok(Vec::new());
        };
        Ok(sqlx::query_as(&format!(
            "SELECT {} FROM org_units WHERE company_id = $1 AND kind = $2 ORDER BY code",
            crate::org::UNIT_COLUMNS
        ))
        .bind(company)
        .bind(UnitKind::CostCentre.as_str())
        .fetch_all(self.store().pool())
        .await?)
    }

    /// Refuses (422 on `cost_centre_id`) an id that is no open cost centre of `company`.
    pub(crate) async fn check_cost_centre(&self, company: Option<Id>, id: Id) -> Result<(), CommandError> {
        match self.unit(id).await? {
            Some(u) if Some(u.company_id) == company && u.kind == UnitKind::CostCentre && !u.closed => Ok(()),
            Some(u) if Some(u.company_id) == company && u.kind == UnitKind::CostCentre => {
                Err(DomainError::invalid("cost_centre_id", "this cost centre is closed").into())
            }
            _ => {
                Err(DomainError::invalid("cost_centre_id", "no cost centre of your company has this id")
                    .into())
            }
        }
    }

    /// Checks a choice for a requisition of `company` (the category active in its catalogue,
    /// the cost centre open and its own).
    pub(crate) async fn check_choice(
        &self,
        catalogue: &Catalogue,
        company: Option<Id>,
        choice: CategoryChoice,
    ) -> Result<(), CommandError> {
        if let Some(id) = choice.category_id {
            catalogue.active(id, "category_id")?;
        }
        if let Some(id) = choice.cost_centre_id {
            self.check_cost_centre(company, id).await?;
        }
        Ok(())
    }

    // ----- budgets ----------------------------------------------------------------------

    async fn plan(&self, company: Option<Id>) -> Result<Loaded<BudgetPlan>, CommandError> {
        self.store().load_snapshotted::<BudgetPlan>(&plan_id(company).to_string()).await
    }

    /// The CFO or an admin sets the budget of a cost centre, department or branch of their
    /// company for a month (again: replaces its amount).
    pub async fn set_budget(
        &self,
        ctx: &CommandContext,
        input: NewBudget,
    ) -> Result<Outcome<BudgetLine>, CommandError> {
        let actor = &actor(ctx)?;
        if !pettycash_domain::budget::BUDGET_SETTERS.iter().any(|r| actor.has(*r)) {
            return Err(DomainError::MissingRole { required: Role::Cfo }.into());
        }
        let unit =
            self.visible_unit(&Requester::Admin(actor.clone()), input.scope_id, Some("scope_id")).await?;
        let scope = BudgetScope { kind: input.scope, unit_id: input.scope_id };
        let (input, unit) = (&input, &unit);
        let budget_id = Id::now_v7();
        self.retrying(|_| async move {
            let loaded = self.plan(actor.company()).await?;
            let mut plan = loaded.state.clone();
            let command = BudgetCommand::Set {
                budget_id,
                scope,
                unit_kind: unit.kind,
                unit: unit.path(),
                month: input.month.clone(),
                currency: input.currency.clone(),
                amount: input.amount,
                actor: actor.clone(),
            };
            let events = decide(&mut plan, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &plan)?;
            let Some(pettycash_domain::budget::BudgetEvent::BudgetSet { budget_id, .. }) = events.first()
            else {
                return Err(anyhow::anyhow!("a budget set records its event").into());
            };
            let budget =
                plan.budgets.iter().find(|b| b.budget_id == *budget_id).cloned().ok_or_else(|| {
                    CommandError::Other(anyhow::anyhow!("the budget just set is in the plan"))
                })?;
            let consumed = self.consumed(actor.company(), &budget).await?;
            let line = line(&budget, consumed, Some(unit));
            self.commit(ctx, &[stream], vec![], line, |v, p| v.position = p).await
        })
        .await
    }

    /// Budget against actual: every budget of the actor's company for `month`, with what it
    /// consumed (paid amounts) and what remains. Readers: `visibility::BUDGET_READERS`.
    pub async fn budget_report(&self, actor: &Actor, month: Month) -> Result<Vec<BudgetLine>, CommandError> {
        if !may_read_budgets(actor) {
            return Err(DomainError::MissingRole { required: Role::Cfo }.into());
        }
        let plan = self.plan(actor.company()).await?.state;
        let budgets: Vec<&Budget> = plan.budgets.iter().filter(|b| b.month == month).collect();
        if budgets.is_empty() {
            return Ok(Vec::new());
        }
        // Two statements whatever the number of budgets (the dashboard and the load's budget
        // reads run this): the month's spending per currency and unit, and the units named.
        let spent = self.spent_in(actor.company(), &month).await?;
        let ids: Vec<Id> = budgets.iter().map(|b| b.scope.unit_id).collect();
        let units: std::collections::HashMap<Id, UnitView> = sqlx::query_as::<_, UnitView>(&format!(
            "SELECT {} FROM org_units WHERE id = ANY($1)",
            crate::org::UNIT_COLUMNS
        ))
        .bind(&ids)
        .fetch_all(self.store().pool())
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
        Ok(budgets
            .into_iter()
            .map(|budget| line(budget, consumed_of(&spent, budget), units.get(&budget.scope.unit_id)))
            .collect())
    }

    /// The paid amounts of `month` of `company`'s requisitions, summed per currency and
    /// charged units: what every budget of the month consumes ([`consumed_of`]). Read from
    /// `rm_budget_spend`; a store whose read model is not built yet has spent nothing.
    async fn spent_in(&self, company: Option<Id>, month: &Month) -> Result<Vec<Spent>, CommandError> {
        let found = sqlx::query_as::<_, Spent>(
            "SELECT currency, cost_centre_id, department_id, branch_id, sum(paid_amount) AS amount
             FROM rm_budget_spend WHERE company_id = $1 AND paid_month = $2
             GROUP BY 1, 2, 3, 4",
        )
        .bind(company)
        .bind(month.to_string())
        .fetch_all(self.store().pool())
        .await;
        match found {
            Ok(rows) => Ok(rows),
            Err(e) if crate::error::is_undefined_table(&e) => {
                tracing::info!("no budgets read model yet (a new store): nothing consumed");
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What `budget` consumed: the paid amounts of its month, in its currency, of the
    /// requisitions of `company` it covers (`Budget::covers`, as the read model stores it).
    pub(crate) async fn consumed(
        &self,
        company: Option<Id>,
        budget: &Budget,
    ) -> Result<Decimal, CommandError> {
        Ok(consumed_of(&self.spent_in(company, &budget.month).await?, budget))
    }

    /// The budgets a submission of `r` now would exceed: each budget of its company for this
    /// month in its currency that covers it, where `consumed + amount > budget`.
    pub(crate) async fn budget_flags(&self, r: &Requisition) -> Result<Vec<BudgetFlag>, CommandError> {
        let company = r.unit.map(|u| u.company);
        let Some(currency) = r.currency.as_ref() else { return Ok(Vec::new()) };
        let plan = self.plan(company).await?.state;
        let month = Month::of(self.clock().now());
        let budgets = plan.covering(month, currency, r.cost_centre_id, r.unit.as_ref());
        if budgets.is_empty() {
            return Ok(Vec::new());
        }
        let spent = self.spent_in(company, &month).await?;
        let covering: Vec<_> = budgets
            .into_iter()
            .map(|b| {
                let consumed = consumed_of(&spent, &b);
                (b, consumed)
            })
            .collect();
        Ok(overruns(&covering, r.amount))
    }
}

/// One currency and combination of charged units' paid amount in a month.
#[derive(sqlx::FromRow)]
struct Spent {
    currency: String,
    cost_centre_id: Option<Id>,
    department_id: Option<Id>,
    branch_id: Option<Id>,
    amount: Decimal,
}

impl Spent {
    /// Whether `budget` (of the same month) consumes this amount: its currency, and its unit
    /// in the column of its kind.
    fn counts_for(&self, budget: &Budget) -> bool {
        let unit = match budget.scope.kind {
            ScopeKind::CostCentre => self.cost_centre_id,
            ScopeKind::Department => self.department_id,
            ScopeKind::Branch => self.branch_id,
        };
        self.currency == budget.currency.code() && unit == Some(budget.scope.unit_id)
    }
}

/// What `budget` consumed of a month's `spent`.
fn consumed_of(spent: &[Spent], budget: &Budget) -> Decimal {
    spent.iter().filter(|s| s.counts_for(budget)).map(|s| s.amount).sum()
}

fn line(budget: &Budget, consumed: Decimal, unit: Option<&UnitView>) -> BudgetLine {
    BudgetLine {
        budget_id: budget.budget_id,
        scope: budget.scope.kind.as_str().to_string(),
        scope_id: budget.scope.unit_id,
        scope_code: unit.map(|u| u.code.clone()),
        scope_name: unit.map(|u| u.name.clone()),
        month: budget.month.to_string(),
        currency: budget.currency.to_string(),
        amount: budget.amount,
        consumed,
        remaining: budget.amount - consumed,
        position: 0,
    }
}
