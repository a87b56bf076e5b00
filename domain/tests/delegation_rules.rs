//! Given/when/then tests for granting and revoking delegations (`Delegation`). Acting on a
//! delegation is the requisition's rule: `requisition_rules.rs`, "Delegation".
//!
//! The cast: ACME, with two branches; branch managers ANN and BOB in branch one, CAROL in
//! branch two; an admin of ACME and one of GLOBEX. Times are fixed: the aggregate reads no
//! clock.

use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;
use pettycash_domain::delegation::{
    Delegation, DelegationCommand as Cmd, DelegationEvent as Ev, DelegationStatus, Party,
};
use pettycash_domain::organisation::{UnitKind, UnitPath};
use pettycash_domain::{Actor, DomainError, Id, Role};

const ACME: Id = Id::from_u128(0xac);
const GLOBEX: Id = Id::from_u128(0x61);
const DELEGATION: Id = Id::from_u128(0xde1);
const ANN: Id = Id::from_u128(1);
const BOB: Id = Id::from_u128(2);
const CAROL: Id = Id::from_u128(3);
const ACME_ADMIN: Id = Id::from_u128(0xa1);

fn company(id: Id) -> UnitPath {
    UnitPath::child(id, UnitKind::Company, None).unwrap()
}

fn branch(n: u128) -> UnitPath {
    let region = UnitPath::child(Id::from_u128(0x10), UnitKind::Region, Some(&company(ACME))).unwrap();
    UnitPath::child(Id::from_u128(0x20 + n), UnitKind::Branch, Some(&region)).unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-03-01T09:00:00Z".parse().unwrap()
}

fn manager(id: Id, unit: UnitPath) -> Party {
    Party { user_id: id, active: true, roles: vec![Role::Staff, Role::BranchManager], unit: Some(unit) }
}

fn actor(p: &Party) -> Actor {
    Actor::new(p.user_id, p.roles.clone()).in_unit(p.unit)
}

fn ann() -> Party {
    manager(ANN, branch(1))
}

fn bob() -> Party {
    manager(BOB, branch(1))
}

/// ANN delegates her branch manager approvals to `delegate` for a week from now, by `by`.
fn grant_to(delegate: Party, by: Actor) -> Cmd {
    grant(ann(), delegate, (now(), now() + Duration::days(7)), by)
}

fn grant(delegator: Party, delegate: Party, period: (DateTime<Utc>, DateTime<Utc>), by: Actor) -> Cmd {
    Cmd::Grant {
        delegation_id: DELEGATION,
        delegator,
        delegate,
        role: Role::BranchManager,
        starts_at: period.0,
        ends_at: period.1,
        now: now(),
        by,
    }
}

fn granted(granted_by: Id) -> Ev {
    Ev::DelegationGranted {
        delegation_id: DELEGATION,
        delegator_id: ANN,
        delegate_id: BOB,
        role: Role::BranchManager,
        starts_at: now(),
        ends_at: now() + Duration::days(7),
        company_id: Some(ACME),
        granted_by,
    }
}

fn outcome(given: Vec<Ev>, command: Cmd) -> Result<Vec<Ev>, DomainError> {
    TestFramework::<Delegation>::with(()).given(given).when(command).inspect_result()
}

fn not_eligible(reason: &'static str) -> DomainError {
    DomainError::DelegateNotEligible { role: Role::BranchManager, reason }
}

#[test]
fn an_approver_delegates_to_another_holder_of_the_role_in_the_same_branch() {
    assert_eq!(outcome(vec![], grant_to(bob(), actor(&ann()))), Ok(vec![granted(ANN)]));
}

#[test]
fn an_admin_of_the_company_may_grant_for_the_delegator_but_nobody_else_may() {
    let admin = Actor::new(ACME_ADMIN, [Role::Admin]).in_unit(Some(company(ACME)));
    assert_eq!(outcome(vec![], grant_to(bob(), admin)), Ok(vec![granted(ACME_ADMIN)]));
    let other_admin = Actor::new(Id::from_u128(0xb1), [Role::Admin]).in_unit(Some(company(GLOBEX)));
    for by in [other_admin, actor(&bob())] {
        assert_eq!(
            outcome(vec![], grant_to(bob(), by)),
            Err(DomainError::DelegationNotYours { action: "grant" })
        );
    }
}

#[test]
fn the_delegate_must_hold_the_role_in_the_same_scope_be_active_and_be_someone_else() {
    let cases = [
        (manager(CAROL, branch(2)), "the delegate is in another part of the organisation"),
        (
            Party { roles: vec![Role::Staff, Role::DepartmentHead], ..bob() },
            "the delegate does not hold the role",
        ),
        (Party { active: false, ..bob() }, "the delegate is not an active user"),
        (Party { unit: None, ..bob() }, "the delegate is in another part of the organisation"),
        (ann(), "no one delegates to themselves"),
    ];
    for (delegate, reason) in cases {
        assert_eq!(outcome(vec![], grant_to(delegate, actor(&ann()))), Err(not_eligible(reason)), "{reason}");
    }
}

#[test]
fn a_company_wide_role_is_delegated_within_the_company_and_an_unscoped_one_among_the_unscoped() {
    let cfo =
        |id: Id, unit: Option<UnitPath>| Party { user_id: id, active: true, roles: vec![Role::Cfo], unit };
    let grant = |delegator: Party, delegate: Party| Cmd::Grant {
        delegation_id: DELEGATION,
        by: actor(&delegator),
        delegator,
        delegate,
        role: Role::Cfo,
        starts_at: now(),
        ends_at: now() + Duration::days(1),
        now: now(),
    };
    let ok = |r: Result<Vec<Ev>, DomainError>| r.map(|events| events.len());
    assert_eq!(ok(outcome(vec![], grant(cfo(ANN, Some(branch(1))), cfo(BOB, Some(company(ACME)))))), Ok(1));
    assert_eq!(ok(outcome(vec![], grant(cfo(ANN, None), cfo(BOB, None)))), Ok(1));
    assert_eq!(
        outcome(vec![], grant(cfo(ANN, Some(company(ACME))), cfo(BOB, Some(company(GLOBEX))))),
        Err(DomainError::DelegateNotEligible {
            role: Role::Cfo,
            reason: "the delegate is in another part of the organisation"
        })
    );
}

#[test]
fn only_a_role_the_delegator_holds_and_that_can_be_a_step_is_delegated() {
    let with_role = |role| Cmd::Grant {
        delegation_id: DELEGATION,
        delegator: ann(),
        delegate: bob(),
        role,
        starts_at: now(),
        ends_at: now() + Duration::days(1),
        now: now(),
        by: actor(&ann()),
    };
    assert!(matches!(
        outcome(vec![], with_role(Role::Cfo)),
        Err(DomainError::Invalid { field: "role", message }) if message.contains("does not hold")
    ));
    assert!(matches!(
        outcome(vec![], with_role(Role::Staff)),
        Err(DomainError::Invalid { field: "role", message }) if message.contains("no step")
    ));
    let inactive =
        grant(Party { active: false, ..ann() }, bob(), (now(), now() + Duration::days(1)), actor(&ann()));
    assert!(matches!(outcome(vec![], inactive), Err(DomainError::Invalid { field: "role", .. })));
}

#[test]
fn the_period_ends_after_it_starts_starts_no_earlier_than_now_and_ends_within_ninety_days() {
    let period = |starts_at, ends_at| grant(ann(), bob(), (starts_at, ends_at), actor(&ann()));
    let field = |r: Result<Vec<Ev>, DomainError>| match r {
        Err(DomainError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(outcome(vec![], period(now(), now()))), "ends_at");
    assert_eq!(
        field(outcome(vec![], period(now() - Duration::hours(1), now() + Duration::days(1)))),
        "starts_at"
    );
    assert_eq!(
        field(outcome(vec![], period(now(), now() + Duration::days(90) + Duration::seconds(1)))),
        "ends_at"
    );
    assert!(outcome(vec![], period(now() + Duration::days(10), now() + Duration::days(90))).is_ok());
    assert!(outcome(vec![granted(ANN)], grant_to(bob(), actor(&ann()))).is_err(), "granted once");
}

#[test]
fn a_delegation_is_scheduled_then_active_then_ended_unless_revoked() {
    let mut d = Delegation::default();
    cqrs_es::Aggregate::apply(&mut d, granted(ANN));
    assert_eq!(d.status_at(now() - Duration::seconds(1)), DelegationStatus::Scheduled);
    assert_eq!(d.status_at(now()), DelegationStatus::Active);
    assert_eq!(d.status_at(now() + Duration::days(7) - Duration::seconds(1)), DelegationStatus::Active);
    assert_eq!(d.status_at(now() + Duration::days(7)), DelegationStatus::Ended);
    cqrs_es::Aggregate::apply(&mut d, Ev::DelegationRevoked { revoked_by: ANN, reason: None });
    assert_eq!(d.status_at(now()), DelegationStatus::Revoked);
}

#[test]
fn the_delegator_or_their_admin_revokes_once_and_the_delegate_may_not() {
    let revoke = |by: Actor| Cmd::Revoke { reason: Some(" back early ".into()), by };
    assert_eq!(
        outcome(vec![granted(ANN)], revoke(actor(&ann()))),
        Ok(vec![Ev::DelegationRevoked { revoked_by: ANN, reason: Some("back early".into()) }])
    );
    let admin = Actor::new(ACME_ADMIN, [Role::Admin]).in_unit(Some(company(ACME)));
    assert!(outcome(vec![granted(ANN)], revoke(admin)).is_ok());
    assert_eq!(
        outcome(vec![granted(ANN)], revoke(actor(&bob()))),
        Err(DomainError::DelegationNotYours { action: "revoke" })
    );
    let revoked = Ev::DelegationRevoked { revoked_by: ANN, reason: None };
    assert_eq!(outcome(vec![granted(ANN), revoked], revoke(actor(&ann()))), Ok(vec![]), "nothing more");
    assert_eq!(outcome(vec![], revoke(actor(&ann()))), Err(DomainError::NotFound { what: "delegation" }));
}
