//! Given/when/then tests for a requisition's category, cost centre and budget flags
//! (`requisition::budget`, issue #14 [treasury]).

use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use pettycash_domain::budget::{BudgetFlag, BudgetScope, Month, ScopeKind};
use pettycash_domain::requisition::{Requisition, RequisitionCommand as Cmd, RequisitionEvent as Ev, Status};
use pettycash_domain::{Actor, Currency, DomainError, Id, Role};
use rust_decimal::Decimal;

const REQUISITION: Id = Id::from_u128(0x7e0);
const REQUESTER: Id = Id::from_u128(1);
const CATEGORY: Id = Id::from_u128(0xca7);
const COST_CENTRE: Id = Id::from_u128(0xcc);
const BUDGET: Id = Id::from_u128(0xb0);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn requester() -> Actor {
    Actor::new(REQUESTER, [Role::Staff])
}

fn created() -> Ev {
    Ev::RequisitionCreated {
        requisition_id: REQUISITION,
        fund_id: Id::from_u128(0xf00),
        currency: Currency::parse("KES").unwrap(),
        amount: d("300.00"),
        purpose: "Toner".into(),
        payee: None,
        category: Some("office".into()),
        requester_id: REQUESTER,
        origin: None,
        unit: None,
        category_id: None,
        cost_centre_id: None,
    }
}

fn submitted() -> Ev {
    Ev::RequisitionSubmitted {
        amount: d("300.00"),
        chain: vec![Role::DepartmentHead],
        policy_version: 1,
        submitted_by: REQUESTER,
        threshold: None,
        eligible: None,
        comment: None,
        due: None,
    }
}

fn flag() -> BudgetFlag {
    BudgetFlag {
        budget_id: BUDGET,
        scope: BudgetScope { kind: ScopeKind::Department, unit_id: Id::from_u128(0xde) },
        month: Month { year: 2026, month: 12 },
        budget: d("1000.00"),
        consumed: d("800.00"),
        amount: d("300.00"),
    }
}

fn exceeded() -> Ev {
    let f = flag();
    Ev::BudgetExceeded {
        budget_id: f.budget_id,
        scope: f.scope,
        month: f.month,
        budget: f.budget,
        consumed: f.consumed,
        amount: f.amount,
    }
}

fn fold(events: Vec<Ev>) -> Requisition {
    let mut r = Requisition::default();
    for e in events {
        r.apply(e);
    }
    r
}

#[test]
fn the_requester_chooses_the_category_and_cost_centre_of_a_draft() {
    TestFramework::<Requisition>::with(())
        .given(vec![created()])
        .when(Cmd::Categorise {
            category_id: Some(CATEGORY),
            cost_centre_id: Some(COST_CENTRE),
            actor: requester(),
        })
        .then_expect_events(vec![Ev::CategoryChosen {
            category_id: Some(CATEGORY),
            cost_centre_id: Some(COST_CENTRE),
        }]);
    let r = fold(vec![
        created(),
        Ev::CategoryChosen { category_id: Some(CATEGORY), cost_centre_id: Some(COST_CENTRE) },
        Ev::CategoryChosen { category_id: None, cost_centre_id: None },
    ]);
    assert_eq!((r.category_id, r.cost_centre_id), (Some(CATEGORY), Some(COST_CENTRE)), "null keeps");
    assert_eq!(r.category.as_deref(), Some("office"), "the free text stays, as a label");
}

#[test]
fn nobody_else_chooses_the_category_nor_after_submission() {
    let other = Actor::new(Id::from_u128(9), [Role::Staff, Role::Admin]);
    TestFramework::<Requisition>::with(())
        .given(vec![created()])
        .when(Cmd::Categorise { category_id: Some(CATEGORY), cost_centre_id: None, actor: other })
        .then_expect_error(DomainError::NotRequester { action: "edit" });
    TestFramework::<Requisition>::with(())
        .given(vec![created(), submitted()])
        .when(Cmd::Categorise { category_id: Some(CATEGORY), cost_centre_id: None, actor: requester() })
        .then_expect_error(DomainError::InvalidTransition {
            status: Status::PendingApproval,
            action: "edit",
        });
}

#[test]
fn overruns_are_flagged_before_the_submission_which_takes_them_over() {
    TestFramework::<Requisition>::with(())
        .given(vec![created()])
        .when(Cmd::CheckBudgets { flags: vec![flag()], block: false, actor: requester() })
        .then_expect_events(vec![exceeded()]);
    let r = fold(vec![created(), exceeded(), submitted()]);
    assert_eq!(r.budget_exceeded, vec![flag()]);
    assert!(r.next_budget_exceeded.is_empty());
    // A later round without overruns clears them.
    let changes = Ev::ChangesRequested {
        step: 0,
        role: Role::DepartmentHead,
        requested_by: Id::from_u128(2),
        reason: "quote".into(),
        deadline: None,
        on_behalf_of: None,
        delegation_id: None,
    };
    let r = fold(vec![created(), exceeded(), submitted(), changes, submitted()]);
    assert!(r.budget_exceeded.is_empty());
}

#[test]
fn with_budgets_blocking_an_overrun_refuses_the_submission_naming_the_budget() {
    let result = TestFramework::<Requisition>::with(())
        .given(vec![created()])
        .when(Cmd::CheckBudgets { flags: vec![flag()], block: true, actor: requester() })
        .inspect_result();
    match result {
        Err(e @ DomainError::BudgetExceeded { budget_id, .. }) => {
            assert_eq!(budget_id, BUDGET);
            assert_eq!(e.code(), "budget_exceeded");
            assert!(e.to_string().contains(&BUDGET.to_string()), "{e}");
        }
        other => panic!("{other:?}"),
    }
    TestFramework::<Requisition>::with(())
        .given(vec![created()])
        .when(Cmd::CheckBudgets { flags: vec![], block: true, actor: requester() })
        .then_expect_events(vec![]);
}
