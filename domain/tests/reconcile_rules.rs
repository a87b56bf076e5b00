//! Given/when/then tests for payment reconciliation (`requisition::reconcile`).
//!
//! The cast: a requester (staff), a department head (the chain), a treasurer who pays, a
//! second treasurer who reconciles.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use pettycash_domain::delegation::Received;
use pettycash_domain::fund::PaymentMethod;
use pettycash_domain::money::Currency;
use pettycash_domain::policy::{ApprovalPolicy, Tier, Tiers};
use pettycash_domain::requisition::{
    Deadlines, DuplicateCheck, Requisition, RequisitionCommand as Cmd, RequisitionEvent as Ev,
};
use pettycash_domain::routing::{Directory, Holder};
use pettycash_domain::{Actor, DomainError, Id, Role};

const REQUISITION: Id = Id::from_u128(0x7e0);
const FUND: Id = Id::from_u128(0xf00);
const PAYMENT: Id = Id::from_u128(0x9a1);

const REQUESTER: Id = Id::from_u128(1);
const HEAD: Id = Id::from_u128(2);
const TREASURER: Id = Id::from_u128(5);
const RECONCILER: Id = Id::from_u128(6);

fn requester() -> Actor {
    Actor::new(REQUESTER, [Role::Staff])
}
fn head() -> Actor {
    Actor::new(HEAD, [Role::Staff, Role::DepartmentHead])
}
fn treasurer() -> Actor {
    Actor::new(TREASURER, [Role::Treasury])
}
fn reconciler() -> Actor {
    Actor::new(RECONCILER, [Role::Treasury])
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap()
}

fn deadlines() -> Deadlines {
    Deadlines { now: now(), remind_after_hours: 24, escalate_after_hours: 72 }
}

/// Created, submitted and approved by the head.
fn approved() -> Vec<Ev> {
    let holder = |a: Actor| Holder { user_id: a.user_id, roles: a.roles, unit: None, sponsors: vec![] };
    history([
        Cmd::Create {
            requisition_id: REQUISITION,
            fund_id: FUND,
            currency: Currency::parse("KES").unwrap(),
            amount: "300.00".parse().unwrap(),
            purpose: "Courier".into(),
            payee: Some("Fast Courier".into()),
            category: None,
            category_id: None,
            cost_centre_id: None,
            requester: requester(),
            origin: None,
        },
        Cmd::Submit {
            policy: ApprovalPolicy {
                version: 1,
                tiers: Some(Tiers(vec![Tier { up_to: None, chain: vec![Role::DepartmentHead] }])),
                thresholds: None,
            },
            directory: Directory { holders: vec![holder(head())], admins: vec![] },
            comment: None,
            urgency: None,
            deadlines: deadlines(),
            duplicates: DuplicateCheck::default(),
            actor: requester(),
        },
        Cmd::Approve {
            comment: None,
            deadlines: deadlines(),
            delegations: Received::none(now()),
            actor: head(),
        },
    ])
}

fn start(method: PaymentMethod) -> Cmd {
    Cmd::StartPayment { payment_id: PAYMENT, method, reference: None, payer: treasurer() }
}

/// Paid by mobile money through the provider: started, then succeeded.
fn paid_by_mobile() -> Vec<Ev> {
    let mut events = approved();
    events.extend(run(events.clone(), start(PaymentMethod::MobileMoney)));
    events.extend(run(events.clone(), Cmd::CompletePayment { payment_id: PAYMENT }));
    events
}

fn reconcile(by: Actor, reference: &str) -> Cmd {
    Cmd::Reconcile { payment_id: PAYMENT, statement_reference: reference.into(), now: now(), actor: by }
}

fn reconciled(reference: &str) -> Ev {
    Ev::PaymentReconciled {
        payment_id: PAYMENT,
        fund_id: FUND,
        statement_reference: reference.into(),
        reconciled_by: RECONCILER,
        at: now(),
    }
}

fn outcome(given: Vec<Ev>, command: Cmd) -> Result<Vec<Ev>, DomainError> {
    TestFramework::<Requisition>::with(()).given(given).when(command).inspect_result()
}

fn run(given: Vec<Ev>, command: Cmd) -> Vec<Ev> {
    outcome(given, command).unwrap_or_else(|e| panic!("command refused: {e}"))
}

fn history(commands: impl IntoIterator<Item = Cmd>) -> Vec<Ev> {
    let mut events = Vec::new();
    for command in commands {
        let emitted = run(events.clone(), command);
        events.extend(emitted);
    }
    events
}

fn code(r: Result<Vec<Ev>, DomainError>) -> &'static str {
    r.expect_err("refused").code()
}

#[test]
fn a_succeeded_mobile_payment_is_reconciled_with_its_trimmed_reference() {
    assert_eq!(
        outcome(paid_by_mobile(), reconcile(reconciler(), "  MPESA-QX12  ")),
        Ok(vec![reconciled("MPESA-QX12")])
    );
}

#[test]
fn the_same_reference_again_records_nothing_and_another_one_is_refused() {
    let mut given = paid_by_mobile();
    given.push(reconciled("MPESA-QX12"));
    assert_eq!(outcome(given.clone(), reconcile(reconciler(), "MPESA-QX12")), Ok(vec![]));
    // By anyone of treasury, even the payer: it changes nothing.
    assert_eq!(outcome(given.clone(), reconcile(treasurer(), " MPESA-QX12")), Ok(vec![]));
    let refused = outcome(given, reconcile(reconciler(), "MPESA-OTHER")).expect_err("refused");
    assert_eq!(refused, DomainError::AlreadyReconciled { reference: "MPESA-QX12".into() });
    assert_eq!(refused.code(), "already_reconciled");
}

#[test]
fn the_payer_may_not_reconcile_their_own_payment() {
    assert_eq!(
        outcome(paid_by_mobile(), reconcile(treasurer(), "MPESA-QX12")),
        Err(DomainError::FourEyes { action: "made the payment" })
    );
}

#[test]
fn only_treasury_reconciles() {
    for roles in [vec![Role::Staff], vec![Role::Auditor], vec![Role::Admin], vec![Role::Cfo]] {
        let by = Actor::new(Id::new_v4(), roles.clone());
        assert_eq!(
            outcome(paid_by_mobile(), reconcile(by, "MPESA-QX12")),
            Err(DomainError::MissingRole { required: Role::Treasury }),
            "{roles:?}"
        );
    }
}

#[test]
fn a_cash_payment_is_not_reconcilable() {
    let mut given = approved();
    given.extend(run(
        given.clone(),
        Cmd::Pay { payment_id: PAYMENT, method: PaymentMethod::Cash, reference: None, payer: treasurer() },
    ));
    assert_eq!(code(outcome(given, reconcile(reconciler(), "STMT-1"))), "not_reconcilable");
}

#[test]
fn a_payment_that_did_not_succeed_is_not_reconcilable() {
    // Not paid at all.
    assert_eq!(code(outcome(approved(), reconcile(reconciler(), "STMT-1"))), "not_reconcilable");
    // Executing with the provider.
    let mut executing = approved();
    executing.extend(run(executing.clone(), start(PaymentMethod::Bank)));
    assert_eq!(code(outcome(executing.clone(), reconcile(reconciler(), "STMT-1"))), "not_reconcilable");
    // Failed.
    let mut failed = executing;
    failed
        .extend(run(failed.clone(), Cmd::FailPayment { payment_id: PAYMENT, reason: "2001: wrong".into() }));
    assert_eq!(code(outcome(failed, reconcile(reconciler(), "STMT-1"))), "not_reconcilable");
    // Paid, but by another payment than the one named.
    let other = Cmd::Reconcile {
        payment_id: Id::from_u128(0x9a2),
        statement_reference: "STMT-1".into(),
        now: now(),
        actor: reconciler(),
    };
    assert_eq!(code(outcome(paid_by_mobile(), other)), "not_reconcilable");
}

#[test]
fn a_statement_reference_is_1_to_64_printable_characters() {
    let long = "R".repeat(65);
    for bad in ["", "   ", long.as_str(), "STMT\n1", "STMT\t1", "A\u{0}B"] {
        let e = outcome(paid_by_mobile(), reconcile(reconciler(), bad)).expect_err("refused");
        assert_eq!(e.field(), Some("statement_reference"), "{bad:?}: {e}");
    }
    let ok = "R".repeat(64);
    assert_eq!(outcome(paid_by_mobile(), reconcile(reconciler(), &ok)), Ok(vec![reconciled(&ok)]));
}
