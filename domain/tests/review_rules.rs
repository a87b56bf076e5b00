//! Given/when/then tests for possible duplicates and FP&A's review after payment
//! (`requisition::review`).
//!
//! The cast: a requester (staff), a department head and a group finance manager (the chain),
//! a treasurer who pays, an FP&A analyst who took no part; anyone else is `someone(...)`.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use pettycash_domain::delegation::Received;
use pettycash_domain::fund::PaymentMethod;
use pettycash_domain::money::Currency;
use pettycash_domain::policy::{ApprovalPolicy, Tier, Tiers};
use pettycash_domain::requisition::{
    Deadlines, Dismissal, DuplicateCheck, DuplicateFlag, PaymentReview, Requisition,
    RequisitionCommand as Cmd, RequisitionEvent as Ev, ReviewStatus, Status,
};
use pettycash_domain::routing::{Directory, Holder};
use pettycash_domain::{Actor, DomainError, Id, Role};

const REQUISITION: Id = Id::from_u128(0x7e0);
const OTHER: Id = Id::from_u128(0x7e1);
const ANOTHER: Id = Id::from_u128(0x7e2);
const FUND: Id = Id::from_u128(0xf00);

const REQUESTER: Id = Id::from_u128(1);
const HEAD: Id = Id::from_u128(2);
const FINANCE_MANAGER: Id = Id::from_u128(3);
const TREASURER: Id = Id::from_u128(5);
const ANALYST: Id = Id::from_u128(6);

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
fn analyst() -> Actor {
    Actor::new(ANALYST, [Role::Fpa])
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

fn review(by: Actor, comment: Option<&str>) -> Cmd {
    Cmd::MarkReviewed { comment: comment.map(Into::into), now: now(), actor: by }
}

fn flag(by: Actor, reason: &str) -> Cmd {
    Cmd::FlagAfterPayment { reason: reason.into(), now: now(), actor: by }
}

fn dismiss(by: Actor, reason: &str) -> Cmd {
    Cmd::DismissDuplicate { reason: reason.into(), actor: by }
}

fn flagged_as_duplicate_of(others: &[Id]) -> DuplicateCheck {
    DuplicateCheck { others: others.to_vec(), window_days: 30 }
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

// ---------------------------------------------------------------------------------------------
// Possible duplicates
// ---------------------------------------------------------------------------------------------

#[test]
fn a_submission_like_others_of_the_requester_records_the_suspicion_just_before_it() {
    let events = history([create(), submit(flagged_as_duplicate_of(&[ANOTHER, OTHER, OTHER, REQUISITION]))]);
    // Sorted, once each, never itself; before the submission it concerns.
    assert_eq!(events[1], Ev::DuplicateSuspected { others: vec![OTHER, ANOTHER], window_days: 30 });
    assert!(matches!(events[2], Ev::RequisitionSubmitted { .. }), "{events:?}");
    let r = state(events);
    assert_eq!(
        r.duplicates,
        Some(DuplicateFlag { others: vec![OTHER, ANOTHER], window_days: 30, dismissed: None })
    );
    assert_eq!(r.next_duplicates, None);
}

#[test]
fn a_submission_like_no_other_records_no_suspicion() {
    for check in [
        DuplicateCheck::default(),
        DuplicateCheck { others: vec![REQUISITION], window_days: 30 },
        // The window is 0: the check is off whatever the caller found.
        DuplicateCheck { others: vec![OTHER], window_days: 0 },
    ] {
        let events = history([create(), submit(check.clone())]);
        assert!(!events.iter().any(|e| matches!(e, Ev::DuplicateSuspected { .. })), "{check:?}: {events:?}");
        assert_eq!(state(events).duplicates, None);
    }
}

#[test]
fn a_resubmission_without_duplicates_clears_the_flag_of_the_earlier_round() {
    let sent_back = history([
        create(),
        submit(flagged_as_duplicate_of(&[OTHER])),
        Cmd::RequestChanges {
            reason: "Other payee?".into(),
            deadline: now() + chrono::Duration::hours(48),
            now: now(),
            delegations: Received::none(now()),
            actor: head(),
        },
    ]);
    assert!(state(sent_back.clone()).duplicates.is_some());
    let mut events = sent_back;
    events.extend(outcome(events.clone(), submit(DuplicateCheck::default())).unwrap());
    assert_eq!(state(events).duplicates, None);
}

#[test]
fn the_current_steps_approver_dismisses_the_flag_with_a_trimmed_reason() {
    let given = history([create(), submit(flagged_as_duplicate_of(&[OTHER]))]);
    TestFramework::<Requisition>::with(())
        .given(given.clone())
        .when(dismiss(head(), "  Two deliveries, two invoices "))
        .then_expect_events(vec![Ev::DuplicateDismissed {
            dismissed_by: HEAD,
            reason: "Two deliveries, two invoices".into(),
        }]);
    let mut events = given;
    events.extend(outcome(events.clone(), dismiss(head(), "Two deliveries")).unwrap());
    let r = state(events.clone());
    assert_eq!(
        r.duplicates.unwrap().dismissed,
        Some(Dismissal { by: HEAD, reason: "Two deliveries".into() })
    );
    // Once: a dismissed flag is no flag.
    assert_eq!(outcome(events, dismiss(head(), "again")), Err(DomainError::NoDuplicateFlag));
}

#[test]
fn dismissing_needs_a_reason() {
    let given = history([create(), submit(flagged_as_duplicate_of(&[OTHER]))]);
    assert_eq!(
        outcome(given, dismiss(head(), "  ")),
        Err(DomainError::invalid("reason", "must not be blank"))
    );
}

#[test]
fn only_someone_who_may_decide_the_current_step_dismisses_the_flag() {
    let given = history([create(), submit(flagged_as_duplicate_of(&[OTHER]))]);
    let refused = |by: Actor| outcome(given.clone(), dismiss(by, "fine"));
    assert_eq!(refused(requester()), Err(DomainError::SelfApproval));
    // The next step's approver, not this one's.
    assert_eq!(refused(finance_manager()), Err(DomainError::MissingRole { required: Role::DepartmentHead }));
    // A holder of the role the step was not routed to.
    assert_eq!(
        refused(someone([Role::DepartmentHead])),
        Err(DomainError::NotEligible { role: Role::DepartmentHead })
    );
    assert_eq!(refused(analyst()), Err(DomainError::MissingRole { required: Role::DepartmentHead }));
}

#[test]
fn dismissing_without_a_flag_or_once_decided_is_refused() {
    let unflagged = history([create(), submit(DuplicateCheck::default())]);
    assert_eq!(outcome(unflagged, dismiss(head(), "fine")), Err(DomainError::NoDuplicateFlag));
    let draft = history([create()]);
    assert_eq!(
        outcome(draft, dismiss(head(), "fine")),
        Err(DomainError::InvalidTransition {
            status: Status::Draft,
            action: "dismiss the duplicate flag of"
        })
    );
}

#[test]
fn an_undismissed_flag_does_not_stop_approval() {
    let events = history([
        create(),
        submit(flagged_as_duplicate_of(&[OTHER])),
        approve(head()),
        approve(finance_manager()),
    ]);
    let r = state(events);
    assert_eq!(r.status, Status::Approved);
    assert!(r.duplicates.is_some_and(|d| d.dismissed.is_none()));
}

// ---------------------------------------------------------------------------------------------
// FP&A review after payment
// ---------------------------------------------------------------------------------------------

#[test]
fn an_analyst_who_took_no_part_marks_a_paid_requisition_reviewed() {
    TestFramework::<Requisition>::with(())
        .given(paid())
        .when(review(analyst(), Some("  Receipt matches ")))
        .then_expect_events(vec![Ev::PaymentReviewed {
            reviewed_by: ANALYST,
            comment: Some("Receipt matches".into()),
            at: now(),
        }]);
    let mut events = paid();
    events.extend(outcome(events.clone(), review(analyst(), None)).unwrap());
    assert_eq!(
        state(events).review,
        Some(PaymentReview {
            status: ReviewStatus::Reviewed,
            by: ANALYST,
            at: now(),
            comment: None,
            reason: None
        })
    );
}

#[test]
fn an_analyst_flags_a_paid_requisition_with_a_reason() {
    TestFramework::<Requisition>::with(())
        .given(paid())
        .when(flag(analyst(), "No receipt attached"))
        .then_expect_events(vec![Ev::PaymentFlagged {
            flagged_by: ANALYST,
            reason: "No receipt attached".into(),
            at: now(),
        }]);
    assert_eq!(
        outcome(paid(), flag(analyst(), " ")),
        Err(DomainError::invalid("reason", "must not be blank"))
    );
}

#[test]
fn only_fpa_reviews_or_flags() {
    for roles in [vec![Role::Auditor], vec![Role::Admin], vec![Role::Cfo], vec![Role::Treasury]] {
        for command in [review(someone(roles.clone()), None), flag(someone(roles.clone()), "why")] {
            assert_eq!(outcome(paid(), command), Err(DomainError::MissingRole { required: Role::Fpa }));
        }
    }
}

#[test]
fn only_paid_requisitions_are_reviewed_or_flagged() {
    let approved =
        history([create(), submit(DuplicateCheck::default()), approve(head()), approve(finance_manager())]);
    assert_eq!(
        outcome(approved.clone(), review(analyst(), None)),
        Err(DomainError::InvalidTransition { status: Status::Approved, action: "review" })
    );
    assert_eq!(
        outcome(approved, flag(analyst(), "why")),
        Err(DomainError::InvalidTransition { status: Status::Approved, action: "flag" })
    );
    let draft = history([create()]);
    assert_eq!(
        outcome(draft, review(analyst(), None)),
        Err(DomainError::InvalidTransition { status: Status::Draft, action: "review" })
    );
}

#[test]
fn nobody_who_took_part_reviews_it_even_holding_fpa() {
    let with_fpa = |a: Actor| Actor::new(a.user_id, a.roles.into_iter().chain([Role::Fpa]));
    for (who, part) in [
        (requester(), "requester"),
        (head(), "approver"),
        (finance_manager(), "approver"),
        (treasurer(), "payer"),
    ] {
        assert_eq!(
            outcome(paid(), review(with_fpa(who.clone()), None)),
            Err(DomainError::ReviewerTookPart { part }),
            "{part}"
        );
        assert_eq!(outcome(paid(), flag(with_fpa(who), "x")), Err(DomainError::ReviewerTookPart { part }));
    }
}

#[test]
fn an_approver_of_an_earlier_round_or_who_asked_for_changes_took_part() {
    // The head approved, the finance manager sent it back; the second round went to two others.
    let other_head = Actor::new(Id::from_u128(12), [Role::DepartmentHead]);
    let other_gfm = Actor::new(Id::from_u128(13), [Role::GroupFinanceManager]);
    let second_round = |a: Actor| Holder { user_id: a.user_id, roles: a.roles, unit: None, sponsors: vec![] };
    let mut resubmit = submit(DuplicateCheck::default());
    if let Cmd::Submit { directory, .. } = &mut resubmit {
        *directory = Directory {
            holders: vec![second_round(other_head.clone()), second_round(other_gfm.clone())],
            admins: vec![],
        };
    }
    let events = history([
        create(),
        submit(DuplicateCheck::default()),
        approve(head()),
        Cmd::RequestChanges {
            reason: "Quote".into(),
            deadline: now() + chrono::Duration::hours(48),
            now: now(),
            delegations: Received::none(now()),
            actor: finance_manager(),
        },
        resubmit,
        approve(other_head),
        approve(other_gfm),
        pay(),
    ]);
    let with_fpa = |a: Actor| Actor::new(a.user_id, [Role::Fpa]);
    assert_eq!(
        outcome(events.clone(), review(with_fpa(head()), None)),
        Err(DomainError::ReviewerTookPart { part: "approver" })
    );
    assert_eq!(
        outcome(events, review(with_fpa(finance_manager()), None)),
        Err(DomainError::ReviewerTookPart { part: "approver who asked for changes" })
    );
}

#[test]
fn an_analyst_sponsored_by_a_participant_is_refused() {
    for sponsor in [REQUESTER, HEAD, TREASURER] {
        let puppet = someone([Role::Fpa]).with_sponsors([sponsor]);
        assert_eq!(
            outcome(paid(), review(puppet.clone(), None)),
            Err(DomainError::SponsoredByParticipant { action: "review" })
        );
        assert_eq!(
            outcome(paid(), flag(puppet, "x")),
            Err(DomainError::SponsoredByParticipant { action: "flag" })
        );
    }
    // Sponsored by someone unrelated: fine.
    assert!(outcome(paid(), review(someone([Role::Fpa]).with_sponsors([Id::new_v4()]), None)).is_ok());
}

#[test]
fn reviewed_once_but_a_flag_may_follow_a_review() {
    let mut events = paid();
    events.extend(outcome(events.clone(), review(analyst(), None)).unwrap());
    let second_analyst = someone([Role::Fpa]);
    assert_eq!(
        outcome(events.clone(), review(second_analyst.clone(), None)),
        Err(DomainError::AlreadyReviewed { status: "reviewed" })
    );
    // Something found later is still raised.
    events.extend(outcome(events.clone(), flag(second_analyst.clone(), "Same receipt as another")).unwrap());
    let r = state(events.clone());
    assert_eq!(
        r.review.as_ref().map(|v| (v.status, v.by)),
        Some((ReviewStatus::Flagged, second_analyst.user_id))
    );
    // Nothing follows a flag.
    for command in [review(analyst(), None), flag(analyst(), "again")] {
        assert_eq!(outcome(events.clone(), command), Err(DomainError::AlreadyReviewed { status: "flagged" }));
    }
}
