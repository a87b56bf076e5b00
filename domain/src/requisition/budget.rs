//! A requisition's expense category, cost centre and budget flags (issue #14 [treasury]; the
//! rules of the catalogue and the budgets are `crate::category` and `crate::budget`).
//!
//! - **Category and cost centre** are chosen at creation (`RequisitionCreated` version 3) or
//!   later by the requester while it is a draft or sent back (`CategoryChosen`). The caller
//!   checks both against the requester's company (an inactive or another company's category,
//!   or a unit that is no cost centre of the company, is a 422 naming the field).
//! - **Budget flags**: at submission the caller computes the budgets the requisition would
//!   exceed. Each is a `BudgetExceeded`, recorded in the submission's transaction **just
//!   before** its `RequisitionSubmitted` (as a duplicate flag is), which takes them over as the
//!   round's flags (a submission without any clears an earlier round's). With the
//!   `budget_block` setting on, the first overrun refuses the submission instead (409
//!   `budget_exceeded` naming the budget), and nothing is recorded.

use super::{Requisition, RequisitionEvent, Status};
use crate::budget::BudgetFlag;
use crate::error::DomainError;
use crate::{Actor, Id};

impl Requisition {
    /// The requester chooses the category and/or the cost centre of a draft or of a
    /// requisition sent back for changes.
    pub(super) fn decide_categorise(
        &self,
        category_id: Option<Id>,
        cost_centre_id: Option<Id>,
        actor: &Actor,
    ) -> Result<RequisitionEvent, DomainError> {
        self.currency()?;
        self.require_requester(actor, "edit")?;
        self.require_status(&[Status::Draft, Status::ChangesRequested], "edit")?;
        if category_id.is_none() && cost_centre_id.is_none() {
            return Err(DomainError::invalid("category_id", "give a category or a cost centre to choose"));
        }
        Ok(RequisitionEvent::CategoryChosen { category_id, cost_centre_id })
    }

    /// The budget flags of the submission about to be made (by its requester, from a state
    /// that may be submitted), or the refusal when budgets block.
    pub(super) fn decide_budgets(
        &self,
        flags: Vec<BudgetFlag>,
        block: bool,
        actor: &Actor,
    ) -> Result<Vec<RequisitionEvent>, DomainError> {
        self.currency()?;
        self.require_requester(actor, "submit")?;
        self.require_status(&[Status::Draft, Status::ChangesRequested], "submit")?;
        if let (true, Some(f)) = (block, flags.first()) {
            return Err(DomainError::BudgetExceeded {
                budget_id: f.budget_id,
                scope: format!("{} {}", f.scope.kind, f.scope.unit_id),
                month: f.month.to_string(),
                budget: f.budget,
                consumed: f.consumed,
                amount: f.amount,
            });
        }
        Ok(flags
            .into_iter()
            .map(|f| RequisitionEvent::BudgetExceeded {
                budget_id: f.budget_id,
                scope: f.scope,
                month: f.month,
                budget: f.budget,
                consumed: f.consumed,
                amount: f.amount,
            })
            .collect())
    }

    /// Applies the events of this module.
    pub(super) fn apply_budget(&mut self, event: RequisitionEvent) {
        match event {
            RequisitionEvent::CategoryChosen { category_id, cost_centre_id } => {
                if category_id.is_some() {
                    self.category_id = category_id;
                }
                if cost_centre_id.is_some() {
                    self.cost_centre_id = cost_centre_id;
                }
            }
            RequisitionEvent::BudgetExceeded { budget_id, scope, month, budget, consumed, amount } => {
                self.next_budget_exceeded.push(BudgetFlag {
                    budget_id,
                    scope,
                    month,
                    budget,
                    consumed,
                    amount,
                });
            }
            _ => {}
        }
    }
}
