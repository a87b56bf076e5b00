//! Given/when/then tests for the organisation: units (`OrgUnit`), users' units, deactivation,
//! a requisition's origin, and how the visibility rule follows the organisation.
//!
//! The cast: two companies, ACME (with a region, a branch, a department and a cost centre
//! under it) and GLOBEX; an admin of no unit (the organisation's first admin), an admin of
//! ACME, and a staff member.

use cqrs_es::test::TestFramework;
use pettycash_domain::organisation::{
    OrgUnit, Origin, ParentUnit, UnitCommand as Cmd, UnitEvent as Ev, UnitKind, UnitPath,
};
use pettycash_domain::requisition::Requisition;
use pettycash_domain::user::{AssignedUnit, Requester, User, UserCommand, UserEvent};
use pettycash_domain::visibility::{may_read_fund, may_see_unit, RequisitionFacts, RequisitionScope};
use pettycash_domain::{Actor, DomainError, Id, Role};

const ACME: Id = Id::from_u128(0xac);
const GLOBEX: Id = Id::from_u128(0x61);
const REGION: Id = Id::from_u128(0x10);
const BRANCH: Id = Id::from_u128(0x20);
const OTHER_BRANCH: Id = Id::from_u128(0x21);
const DEPARTMENT: Id = Id::from_u128(0x30);
const OTHER_DEPARTMENT: Id = Id::from_u128(0x31);
const COST_CENTRE: Id = Id::from_u128(0x40);
const NEW: Id = Id::from_u128(0x99);

const ORG_ADMIN: Id = Id::from_u128(1);
const ACME_ADMIN: Id = Id::from_u128(2);

fn company_path(id: Id) -> UnitPath {
    UnitPath::child(id, UnitKind::Company, None).unwrap()
}

fn region_path() -> UnitPath {
    UnitPath::child(REGION, UnitKind::Region, Some(&company_path(ACME))).unwrap()
}

fn branch_path(id: Id) -> UnitPath {
    UnitPath::child(id, UnitKind::Branch, Some(&region_path())).unwrap()
}

fn department_path(id: Id, branch: Id) -> UnitPath {
    UnitPath::child(id, UnitKind::Department, Some(&branch_path(branch))).unwrap()
}

fn parent(kind: UnitKind, path: UnitPath) -> Option<ParentUnit> {
    Some(ParentUnit { kind, path, closed: false })
}

/// The organisation's first admin: an admin of no unit.
fn org_admin() -> Requester {
    Requester::Admin(Actor::new(ORG_ADMIN, [Role::Admin]))
}

/// An admin of ACME (at the company level).
fn acme_admin() -> Requester {
    Requester::Admin(Actor::new(ACME_ADMIN, [Role::Admin]).in_unit(Some(company_path(ACME))))
}

fn open(kind: UnitKind, code: &str, parent: Option<ParentUnit>, by: Requester) -> Cmd {
    Cmd::Open { unit_id: NEW, kind, name: format!("The {kind}"), code: code.into(), phone: None, parent, by }
}

fn opened(kind: UnitKind, code: &str, path: UnitPath, opened_by: Id) -> Ev {
    Ev::UnitOpened {
        unit_id: path.unit_id,
        kind,
        name: format!("The {kind}"),
        code: code.into(),
        phone: None,
        parent_id: None,
        path,
        opened_by: Some(opened_by),
    }
}

// ---------------------------------------------------------------------------------------------
// Units

#[test]
fn the_organisations_admin_opens_a_company_whose_path_is_itself() {
    TestFramework::<OrgUnit>::with(())
        .given_no_previous_events()
        .when(open(UnitKind::Company, " acme ", None, org_admin()))
        .then_expect_events(vec![opened(UnitKind::Company, "ACME", company_path(NEW), ORG_ADMIN)]);
}

#[test]
fn an_admin_of_a_company_cannot_open_another_company() {
    TestFramework::<OrgUnit>::with(())
        .given_no_previous_events()
        .when(open(UnitKind::Company, "INITECH", None, acme_admin()))
        .then_expect_error(DomainError::OrganisationAdminOnly { action: "open a company" });
}

#[test]
fn a_unit_opens_under_the_kind_directly_above_it_and_takes_its_path() {
    let events = TestFramework::<OrgUnit>::with(())
        .given_no_previous_events()
        .when(open(UnitKind::Department, "OPS", parent(UnitKind::Branch, branch_path(BRANCH)), acme_admin()))
        .inspect_result()
        .unwrap();
    let [Ev::UnitOpened { path, parent_id, .. }] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(*parent_id, Some(BRANCH));
    assert_eq!(
        (path.unit_id, path.company, path.region, path.branch, path.department, path.cost_centre),
        (NEW, ACME, Some(REGION), Some(BRANCH), Some(NEW), None)
    );
    // Cost centres and positions both hang under a department; only a cost centre is a level.
    let cost_centre = UnitPath::child(COST_CENTRE, UnitKind::CostCentre, Some(path)).unwrap();
    assert_eq!(cost_centre.cost_centre, Some(COST_CENTRE));
    let position = UnitPath::child(NEW, UnitKind::Position, Some(path)).unwrap();
    assert_eq!((position.department, position.cost_centre), (Some(NEW), None));
}

#[test]
fn a_unit_under_the_wrong_kind_or_without_a_parent_is_refused_naming_the_parent() {
    for (kind, given) in [
        (UnitKind::Branch, parent(UnitKind::Company, company_path(ACME))),
        (UnitKind::CostCentre, parent(UnitKind::Branch, branch_path(BRANCH))),
        (UnitKind::Region, None),
        (UnitKind::Company, parent(UnitKind::Company, company_path(ACME))),
    ] {
        let result = TestFramework::<OrgUnit>::with(())
            .given_no_previous_events()
            .when(open(kind, "X", given, org_admin()))
            .inspect_result();
        let err = result.unwrap_err();
        assert!(matches!(err, DomainError::WrongParent { .. }), "{kind}: {err:?}");
        assert_eq!(err.field(), Some("parent_id"));
    }
}

#[test]
fn an_admin_of_a_company_reaches_no_unit_of_another_company() {
    let globex = ParentUnit { kind: UnitKind::Company, path: company_path(GLOBEX), closed: false };
    TestFramework::<OrgUnit>::with(())
        .given_no_previous_events()
        .when(open(UnitKind::Region, "EAST", Some(globex), acme_admin()))
        .then_expect_error(DomainError::NotFound { what: "unit" });
    TestFramework::<OrgUnit>::with(())
        .given(vec![opened(UnitKind::Company, "GLOBEX", company_path(GLOBEX), ORG_ADMIN)])
        .when(Cmd::Rename { name: "Mine now".into(), by: acme_admin() })
        .then_expect_error(DomainError::NotFound { what: "unit" });
}

#[test]
fn nothing_opens_under_a_closed_unit() {
    let closed = ParentUnit { kind: UnitKind::Region, path: region_path(), closed: true };
    TestFramework::<OrgUnit>::with(())
        .given_no_previous_events()
        .when(open(UnitKind::Branch, "NBI", Some(closed), acme_admin()))
        .then_expect_error(DomainError::UnitClosed);
}

#[test]
fn only_admins_change_the_organisation() {
    let staff = Requester::Admin(Actor::new(Id::from_u128(7), [Role::Staff, Role::Cfo]));
    TestFramework::<OrgUnit>::with(())
        .given_no_previous_events()
        .when(open(UnitKind::Company, "ACME", None, staff))
        .then_expect_error(DomainError::MissingRole { required: Role::Admin });
}

#[test]
fn codes_and_names_are_checked_and_named() {
    for (name, code, field) in
        [("", "OK", "name"), ("Fine", "not ok", "code"), ("Fine", "", "code"), ("Fine", "OK", "phone")]
    {
        let result = TestFramework::<OrgUnit>::with(())
            .given_no_previous_events()
            .when(Cmd::Open {
                unit_id: NEW,
                kind: UnitKind::Company,
                name: name.into(),
                code: code.into(),
                phone: (field == "phone").then(|| "call me".into()),
                parent: None,
                by: org_admin(),
            })
            .inspect_result();
        assert!(matches!(result, Err(DomainError::Invalid { field: f, .. }) if f == field), "{name}/{code}");
    }
}

#[test]
fn renaming_records_the_new_name_and_the_same_name_records_nothing() {
    let given = || vec![opened(UnitKind::Company, "ACME", company_path(ACME), ORG_ADMIN)];
    TestFramework::<OrgUnit>::with(())
        .given(given())
        .when(Cmd::Rename { name: " Acme Holdings ".into(), by: acme_admin() })
        .then_expect_events(vec![Ev::UnitRenamed {
            name: "Acme Holdings".into(),
            renamed_by: Some(ACME_ADMIN),
        }]);
    TestFramework::<OrgUnit>::with(())
        .given(given())
        .when(Cmd::Rename { name: "The company".into(), by: acme_admin() })
        .then_expect_events(vec![]);
}

#[test]
fn a_unit_closes_only_without_open_children_or_active_members_and_once() {
    let given = || vec![opened(UnitKind::Branch, "NBI", branch_path(BRANCH), ACME_ADMIN)];
    TestFramework::<OrgUnit>::with(())
        .given(given())
        .when(Cmd::Close { open_children: 1, members: 2, by: acme_admin() })
        .then_expect_error(DomainError::UnitNotEmpty { open_children: 1, members: 2 });
    TestFramework::<OrgUnit>::with(())
        .given(given())
        .when(Cmd::Close { open_children: 0, members: 0, by: acme_admin() })
        .then_expect_events(vec![Ev::UnitClosed { closed_by: Some(ACME_ADMIN) }]);
    let mut closed = given();
    closed.push(Ev::UnitClosed { closed_by: None });
    TestFramework::<OrgUnit>::with(())
        .given(closed.clone())
        .when(Cmd::Close { open_children: 0, members: 0, by: acme_admin() })
        .then_expect_events(vec![]);
    TestFramework::<OrgUnit>::with(())
        .given(closed)
        .when(Cmd::Rename { name: "Reopened?".into(), by: acme_admin() })
        .then_expect_error(DomainError::UnitClosed);
}

// ---------------------------------------------------------------------------------------------
// Users: units, deactivation

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        user_id: Id::from_u128(5),
        email: "a@example.com".into(),
        name: "A".into(),
        roles: vec![Role::Staff],
        registered_by: None,
    }
}

fn unit(path: UnitPath) -> Option<AssignedUnit> {
    Some(AssignedUnit { path, closed: false })
}

#[test]
fn an_admin_assigns_a_user_to_a_unit_of_their_company_once() {
    let branch = branch_path(BRANCH);
    TestFramework::<User>::with(())
        .given(vec![registered()])
        .when(UserCommand::AssignUnit { unit: unit(branch), by: acme_admin() })
        .then_expect_events(vec![UserEvent::UnitAssigned {
            unit_id: Some(BRANCH),
            assigned_by: Some(ACME_ADMIN),
        }]);
    TestFramework::<User>::with(())
        .given(vec![registered(), UserEvent::UnitAssigned { unit_id: Some(BRANCH), assigned_by: None }])
        .when(UserCommand::AssignUnit { unit: unit(branch), by: acme_admin() })
        .then_expect_events(vec![]);
    TestFramework::<User>::with(())
        .given(vec![registered()])
        .when(UserCommand::AssignUnit { unit: unit(company_path(GLOBEX)), by: acme_admin() })
        .then_expect_error(DomainError::NotFound { what: "unit" });
    TestFramework::<User>::with(())
        .given(vec![registered()])
        .when(UserCommand::AssignUnit {
            unit: Some(AssignedUnit { path: branch, closed: true }),
            by: acme_admin(),
        })
        .then_expect_error(DomainError::UnitClosed);
}

#[test]
fn a_deactivated_user_keeps_their_history_and_is_reactivated_into_an_open_unit_only() {
    let deactivated = UserEvent::UserDeactivated { by: Some(ACME_ADMIN), reason: "left the company".into() };
    TestFramework::<User>::with(())
        .given(vec![registered()])
        .when(UserCommand::Deactivate { reason: " left the company ".into(), by: acme_admin() })
        .then_expect_events(vec![deactivated.clone()]);
    TestFramework::<User>::with(())
        .given(vec![registered()])
        .when(UserCommand::Deactivate { reason: " ".into(), by: acme_admin() })
        .then_expect_error(DomainError::invalid("reason", "must not be blank"));
    TestFramework::<User>::with(())
        .given(vec![registered(), deactivated.clone()])
        .when(UserCommand::Deactivate { reason: "again".into(), by: acme_admin() })
        .then_expect_events(vec![]);
    let in_closed_unit = vec![
        registered(),
        UserEvent::UnitAssigned { unit_id: Some(BRANCH), assigned_by: None },
        deactivated.clone(),
    ];
    TestFramework::<User>::with(())
        .given(in_closed_unit.clone())
        .when(UserCommand::Reactivate { unit_closed: true, by: acme_admin() })
        .then_expect_error(DomainError::UnitClosed);
    TestFramework::<User>::with(())
        .given(in_closed_unit)
        .when(UserCommand::Reactivate { unit_closed: false, by: acme_admin() })
        .then_expect_events(vec![UserEvent::UserReactivated { by: Some(ACME_ADMIN) }]);
}

// ---------------------------------------------------------------------------------------------
// Origin

#[test]
fn origin_follows_the_unit_and_field_is_for_requesters_in_a_region() {
    let branch = department_path(DEPARTMENT, BRANCH);
    let hq = company_path(ACME);
    let region = region_path();
    assert_eq!(Origin::of(None, None), Ok(None), "unscoped");
    assert_eq!(Origin::of(Some(&branch), None), Ok(Some(Origin::Branch)));
    assert_eq!(Origin::of(Some(&hq), None), Ok(Some(Origin::Hq)));
    assert_eq!(Origin::of(Some(&region), None), Ok(Some(Origin::Hq)));
    assert_eq!(Origin::of(Some(&region), Some(Origin::Field)), Ok(Some(Origin::Field)));
    assert_eq!(Origin::of(Some(&branch), Some(Origin::Field)), Ok(Some(Origin::Field)));
    assert_eq!(Origin::of(Some(&branch), Some(Origin::Branch)), Ok(Some(Origin::Branch)));
    for (unit, asked) in [
        (Some(&hq), Some(Origin::Field)),
        (Some(&branch), Some(Origin::Hq)),
        (Some(&hq), Some(Origin::Branch)),
        (None, Some(Origin::Field)),
    ] {
        let err = Origin::of(unit, asked).unwrap_err();
        assert_eq!(err.field(), Some("origin"), "{asked:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Visibility

/// A submitted requisition of a requester in `unit` whose chain is `chain`.
fn submitted(unit: Option<UnitPath>, chain: &[Role]) -> RequisitionFacts<'_> {
    RequisitionFacts { requester_id: Some(Id::from_u128(0x5e)), submitted: true, chain, approvers: &[], unit }
}

fn scope(roles: &[Role], unit: Option<UnitPath>) -> RequisitionScope {
    RequisitionScope::of(&Actor::new(Id::from_u128(0xa), roles.iter().copied()).in_unit(unit))
}

#[test]
fn approvers_see_their_own_part_of_the_organisation() {
    let here = Some(department_path(DEPARTMENT, BRANCH));
    let next_door = Some(department_path(OTHER_DEPARTMENT, BRANCH));
    let other_branch = Some(department_path(OTHER_DEPARTMENT, OTHER_BRANCH));
    let chain = [Role::DepartmentHead, Role::BranchManager, Role::RegionalManager];

    let head = scope(&[Role::DepartmentHead], here);
    assert!(head.admits(&submitted(here, &chain)));
    assert!(!head.admits(&submitted(next_door, &chain)), "another department");

    let manager = scope(&[Role::BranchManager], Some(branch_path(BRANCH)));
    assert!(manager.admits(&submitted(here, &chain)));
    assert!(manager.admits(&submitted(next_door, &chain)));
    assert!(!manager.admits(&submitted(other_branch, &chain)), "another branch");
    assert!(!manager.admits(&submitted(here, &[Role::DepartmentHead])), "not asked of a branch manager");

    let regional = scope(&[Role::RegionalManager], Some(region_path()));
    assert!(regional.admits(&submitted(other_branch, &chain)), "the whole region");

    let misplaced = scope(&[Role::BranchManager], Some(region_path()));
    assert!(misplaced.own_only(), "a branch manager in no branch reaches nothing by that role");
    assert!(!misplaced.admits(&submitted(here, &chain)));
}

#[test]
fn nobody_sees_another_companys_requisitions_and_the_unscoped_see_only_the_unscoped() {
    let acme = Some(department_path(DEPARTMENT, BRANCH));
    let globex = Some(company_path(GLOBEX));
    let chain = [Role::DepartmentHead];
    for roles in [vec![Role::Auditor], vec![Role::Admin], vec![Role::Cfo], vec![Role::Treasury]] {
        let in_acme = scope(&roles, Some(company_path(ACME)));
        assert!(in_acme.admits(&submitted(acme, &chain)), "{roles:?}: their company");
        assert!(!in_acme.admits(&submitted(globex, &chain)), "{roles:?}: another company");
        assert!(!in_acme.admits(&submitted(None, &chain)), "{roles:?}: unscoped");
        let unscoped = scope(&roles, None);
        assert!(unscoped.admits(&submitted(None, &chain)), "{roles:?}: unscoped, as before units");
        assert!(!unscoped.admits(&submitted(acme, &chain)), "{roles:?}: no company's");
    }
    // The requester always sees their own, and an approver what they approved (in their
    // company).
    let mine = RequisitionFacts { requester_id: Some(Id::from_u128(0xa)), ..submitted(globex, &chain) };
    assert!(scope(&[Role::Staff], Some(company_path(ACME))).admits(&mine));
    let approver = Id::from_u128(0xa);
    let approved = RequisitionFacts { approvers: &[approver], ..submitted(acme, &[Role::Cfo]) };
    assert!(scope(&[Role::DepartmentHead], Some(department_path(OTHER_DEPARTMENT, BRANCH))).admits(&approved));
}

#[test]
fn funds_and_units_are_their_companys() {
    let acme_staff = Actor::new(Id::from_u128(0xb), [Role::Staff]).in_unit(Some(company_path(ACME)));
    assert!(may_read_fund(&acme_staff, Some(ACME)));
    assert!(!may_read_fund(&acme_staff, Some(GLOBEX)));
    assert!(!may_read_fund(&acme_staff, None));
    assert!(may_read_fund(&Actor::new(Id::from_u128(0xb), [Role::Staff]), None));
    assert!(may_see_unit(&acme_staff, ACME));
    assert!(!may_see_unit(&acme_staff, GLOBEX));
    assert!(may_see_unit(&Actor::new(ORG_ADMIN, [Role::Admin]), GLOBEX), "the organisation's admin");
    assert!(!may_see_unit(&Actor::new(ORG_ADMIN, [Role::Staff]), GLOBEX));
}

#[test]
fn a_requisition_keeps_the_unit_it_was_created_in() {
    use cqrs_es::Aggregate;
    use pettycash_domain::requisition::RequisitionEvent;
    let here = department_path(DEPARTMENT, BRANCH);
    let mut r = Requisition::default();
    r.apply(RequisitionEvent::RequisitionCreated {
        requisition_id: NEW,
        fund_id: NEW,
        currency: pettycash_domain::Currency::parse("KES").unwrap(),
        amount: 10.into(),
        purpose: "p".into(),
        payee: None,
        category: None,
        requester_id: Id::from_u128(0x5e),
        origin: Some(Origin::Branch),
        unit: Some(here),
        category_id: None,
        cost_centre_id: None,
    });
    assert_eq!((r.unit, r.origin), (Some(here), Some(Origin::Branch)));
    let admin_elsewhere = Actor::new(Id::from_u128(0xc), [Role::Admin]).in_unit(Some(company_path(GLOBEX)));
    assert!(!r.readable_by(&admin_elsewhere));
    assert!(r.readable_by(&Actor::new(Id::from_u128(0xc), [Role::Admin]).in_unit(Some(company_path(ACME)))));
}
