//! Given/when/then tests for receipts on a requisition (`requisition::receipts`): who may
//! attach one and when, what is recorded, and the one reminder of a paid requisition without
//! a receipt.
//!
//! The cast: a requester (staff), a department head and a group finance manager (the chain),
//! a treasurer who pays; anyone else is `someone(...)`.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use pettycash_domain::delegation::Received;
use pettycash_domain::fund::PaymentMethod;
use pettycash_domain::money::Currency;
use pettycash_domain::policy::{ApprovalPolicy, Tier, Tiers};
use pettycash_domain::requisition::{
    Deadlines, DuplicateCheck, Receipt, ReceiptFile, Requisition, RequisitionCommand as Cmd,
    RequisitionEvent as Ev, Status,
};
use pettycash_domain::routing::{Directory, Holder};
use pettycash_domain::{Actor, DomainError, Id, Role};

const REQUISITION: Id = Id::from_u128(0x7e0);
const FUND: Id = Id::from_u128(0xf00);

const REQUESTER: Id = Id::from_u128(1);
const HEAD: Id = Id::from_u128(2);
const FINANCE_MANAGER: Id = Id::from_u128(3);
const TREASURER: Id = Id::from_u128(5);

const CHAIN: [Role; 2] = [Role::DepartmentHead, Role::GroupFinanceManager];

fn requester() -> Actor {
    Actor::new(REQUESTER, [Role::Staff])
}
fn head() -> Actor {
    Actor::new(HEAD, [Role::Staff, Role::DepartmentHead])
}
fn finance_manager() -> Actor {
    Actor::new(FINANCE_MANAGER, [Role::Staff, Role::GroupFinanceManager])
}
fn treasurer() -> Actor {
    Actor::new(TREASURER, [Role::Treasury])
}
fn someone(roles: impl IntoIterator<Item = Role>) -> Actor {
    Actor::new(Id::new_v4(), roles)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn directory() -> Directory {
    let holder = |a: Actor| Holder { user_id: a.user_id, roles: a.roles, unit: None, sponsors: vec![] };
    Directory { holders: [head(), finance_manager()].map(holder).to_vec(), admins: vec![] }
}

fn create() -> Cmd {
    Cmd::Create {
        requisition_id: REQUISITION,
        fund_id: FUND,
        currency: Currency::parse("USD").unwrap(),
        amount: "2500.00".parse().unwrap(),
        purpose: "Printer toner".into(),
        payee: Some("Office Mart".into()),
        category: None,
        category_id: None,
        cost_centre_id: None,
        requester: requester(),
        origin: None,
    }
}

fn submit(duplicates: DuplicateCheck) -> Cmd {
    Cmd::Submit {
        policy: ApprovalPolicy {
            version: 1,
            tiers: Some(Tiers(vec![Tier { up_to: None, chain: CHAIN.to_vec() }])),
            thresholds: None,
        },
        directory: directory(),
        comment: None,
        urgency: None,
        deadlines: Deadlines { now: now(), remind_after_hours: 24, escalate_after_hours: 72 },
        duplicates,
        actor: requester(),
    }
}

fn approve(by: Actor) -> Cmd {
    Cmd::Approve {
        comment: None,
        deadlines: Deadlines { now: now(), remind_after_hours: 24, escalate_after_hours: 72 },
        delegations: Received::none(now()),
        actor: by,
    }
}

fn pay() -> Cmd {
    Cmd::Pay {
        payment_id: Id::from_u128(0x9a1),
        method: PaymentMethod::Cash,
        reference: None,
        payer: treasurer(),
    }
}

/// Runs `command` against `given` and returns what it emitted or the error.
fn outcome(given: Vec<Ev>, command: Cmd) -> Result<Vec<Ev>, DomainError> {
    TestFramework::<Requisition>::with(()).given(given).when(command).inspect_result()
}

/// The events of `commands`, each of which must succeed, in order.
fn history(commands: impl IntoIterator<Item = Cmd>) -> Vec<Ev> {
    let mut events = Vec::new();
    for command in commands {
        let emitted = outcome(events.clone(), command).unwrap_or_else(|e| panic!("command refused: {e}"));
        events.extend(emitted);
    }
    events
}

fn paid() -> Vec<Ev> {
    history([create(), submit(DuplicateCheck::default()), approve(head()), approve(finance_manager()), pay()])
}

fn state(events: impl IntoIterator<Item = Ev>) -> Requisition {
    let mut r = Requisition::default();
    for e in events {
        cqrs_es::Aggregate::apply(&mut r, e);
    }
    r
}

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const RECEIPT: Id = Id::from_u128(0x5ec);

fn file(sha256: &str, name: &str) -> ReceiptFile {
    ReceiptFile {
        sha256: sha256.into(),
        size: 1234,
        content_type: "application/pdf".into(),
        original_name: name.into(),
    }
}

fn attach(by: Actor, sha256: &str) -> Cmd {
    Cmd::AttachReceipt { receipt_id: RECEIPT, file: file(sha256, "../slip.pdf"), actor: by }
}

fn remind(days_ago: i64, days: u32) -> Cmd {
    Cmd::RemindReceipt { paid_at: now() - chrono::Duration::days(days_ago), days, now: now() }
}

fn submitted() -> Vec<Ev> {
    history([create(), submit(DuplicateCheck::default())])
}

#[test]
fn the_requester_attaches_a_receipt_recorded_with_a_clean_name() {
    let events = outcome(submitted(), attach(requester(), SHA)).unwrap();
    assert_eq!(
        events,
        vec![Ev::ReceiptAttached {
            receipt_id: RECEIPT,
            sha256: SHA.into(),
            size: 1234,
            content_type: "application/pdf".into(),
            original_name: "slip.pdf".into(),
            attached_by: REQUESTER,
        }]
    );
    let r = state(submitted().into_iter().chain(events));
    assert_eq!(
        r.receipts,
        vec![Receipt {
            receipt_id: RECEIPT,
            sha256: SHA.into(),
            size: 1234,
            content_type: "application/pdf".into(),
            original_name: "slip.pdf".into(),
            attached_by: REQUESTER,
        }]
    );
}

#[test]
fn the_same_file_is_attached_once() {
    let given = history([create(), attach(requester(), SHA)]);
    assert!(matches!(outcome(given, attach(requester(), SHA)), Err(DomainError::Receipt(_))));
}

#[test]
fn treasury_attaches_only_to_a_paid_requisition_and_nobody_else_at_all() {
    assert!(matches!(outcome(submitted(), attach(treasurer(), SHA)), Err(DomainError::Receipt(_))));
    assert!(outcome(paid(), attach(treasurer(), SHA)).is_ok());
    assert!(matches!(outcome(paid(), attach(head(), SHA)), Err(DomainError::NotRequester { .. })));
    assert!(matches!(
        outcome(paid(), attach(someone([Role::Admin]), SHA)),
        Err(DomainError::NotRequester { .. })
    ));
}

#[test]
fn nothing_is_attached_to_a_cancelled_requisition_nor_a_file_that_is_not_one() {
    let cancelled = history([create(), Cmd::Cancel { reason: None, actor: requester() }]);
    assert!(matches!(
        outcome(cancelled, attach(requester(), SHA)),
        Err(DomainError::InvalidTransition { status: Status::Cancelled, .. })
    ));
    assert!(matches!(
        outcome(submitted(), attach(requester(), "not-a-hash")),
        Err(DomainError::Invalid { field: "file", .. })
    ));
    let text = Cmd::AttachReceipt {
        receipt_id: RECEIPT,
        file: ReceiptFile { content_type: "text/plain".into(), ..file(SHA, "a.pdf") },
        actor: requester(),
    };
    assert!(matches!(outcome(submitted(), text), Err(DomainError::Invalid { field: "file", .. })));
}

#[test]
fn a_paid_requisition_without_a_receipt_reminds_once_after_the_days() {
    assert!(matches!(outcome(paid(), remind(1, 3)), Err(DomainError::NotDueYet)));
    let events = outcome(paid(), remind(3, 3)).unwrap();
    assert_eq!(events, vec![Ev::ReceiptOverdue { days: 3 }]);
    let reminded: Vec<Ev> = paid().into_iter().chain(events).collect();
    assert!(matches!(outcome(reminded, remind(10, 3)), Err(DomainError::NotDueYet)));
    let with_receipt: Vec<Ev> =
        paid().into_iter().chain(outcome(paid(), attach(requester(), SHA)).unwrap()).collect();
    assert!(matches!(outcome(with_receipt, remind(10, 3)), Err(DomainError::NotDueYet)));
    assert!(matches!(outcome(paid(), remind(10, 0)), Err(DomainError::NotDueYet)), "0: off");
    assert!(matches!(outcome(submitted(), remind(10, 3)), Err(DomainError::InvalidTransition { .. })));
}
