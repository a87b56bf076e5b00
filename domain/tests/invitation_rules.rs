//! Given/when/then tests for invitations (`Invitation`) and the user an accepted invitation
//! becomes (`UserCommand::AcceptInvitation`).
//!
//! The cast: ACME (a company with a department) and GLOBEX; an admin of ACME, an admin of
//! GLOBEX, a staff member. Times are fixed: the aggregate reads no clock.

use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use pettycash_domain::invitation::{
    EmailTaken, Invitation, InvitationCommand as Cmd, InvitationEvent as Ev, InvitationStatus, NewLink,
};
use pettycash_domain::organisation::{UnitKind, UnitPath};
use pettycash_domain::settings::{SettingKey, Settings};
use pettycash_domain::user::{AssignedUnit, Requester, User, UserCommand, UserEvent};
use pettycash_domain::{Actor, DomainError, Id, Role};

const ACME: Id = Id::from_u128(0xac);
const GLOBEX: Id = Id::from_u128(0x61);
const DEPARTMENT: Id = Id::from_u128(0x30);
const INVITATION: Id = Id::from_u128(0x1);
const ACME_ADMIN: Id = Id::from_u128(0xa1);
const NEW_USER: Id = Id::from_u128(0x99);

fn company(id: Id) -> UnitPath {
    UnitPath::child(id, UnitKind::Company, None).unwrap()
}

fn department() -> AssignedUnit {
    let region = UnitPath::child(Id::from_u128(0x10), UnitKind::Region, Some(&company(ACME))).unwrap();
    let branch = UnitPath::child(Id::from_u128(0x20), UnitKind::Branch, Some(&region)).unwrap();
    AssignedUnit {
        path: UnitPath::child(DEPARTMENT, UnitKind::Department, Some(&branch)).unwrap(),
        closed: false,
    }
}

fn admin_of(company_id: Id, id: Id) -> Requester {
    Requester::Admin(Actor::new(id, [Role::Admin]).in_unit(Some(company(company_id))))
}

fn acme_admin() -> Requester {
    admin_of(ACME, ACME_ADMIN)
}

fn now() -> DateTime<Utc> {
    "2026-03-01T09:00:00Z".parse().unwrap()
}

fn link(hash: &str, days: u32) -> NewLink {
    NewLink { token_hash: hash.into(), now: now(), valid_days: days }
}

fn issue() -> Cmd {
    Cmd::Issue {
        invitation_id: INVITATION,
        email: " Ann@Example.COM ".into(),
        name: "Ann".into(),
        roles: vec![Role::Treasury, Role::Staff, Role::Staff],
        unit: Some(department()),
        email_taken: None,
        link: link("aa", 7),
        by: acme_admin(),
    }
}

fn issued() -> Ev {
    Ev::InvitationIssued {
        invitation_id: INVITATION,
        email: "ann@example.com".into(),
        name: "Ann".into(),
        roles: vec![Role::Staff, Role::Treasury],
        unit_id: Some(DEPARTMENT),
        token_hash: "aa".into(),
        expires_at: now() + Duration::days(7),
        invited_by: Some(ACME_ADMIN),
    }
}

fn accept(hash: &str, at: DateTime<Utc>) -> Cmd {
    Cmd::Accept { user_id: NEW_USER, token_hash: hash.into(), now: at }
}

fn invalid(result: Result<(), DomainError>) -> &'static str {
    match result {
        Err(DomainError::InvitationInvalid { reason }) => reason,
        other => panic!("expected invitation_invalid, got {other:?}"),
    }
}

fn fold(events: Vec<Ev>) -> Invitation {
    let mut i = Invitation::default();
    for e in events {
        i.apply(e);
    }
    i
}

fn when(given: Vec<Ev>, command: Cmd) -> Result<Vec<Ev>, DomainError> {
    TestFramework::<Invitation>::with(()).given(given).when(command).inspect_result()
}

fn issue_with(adjust: impl FnOnce(&mut Cmd)) -> Cmd {
    let mut command = issue();
    adjust(&mut command);
    command
}

#[test]
fn an_admin_invites_an_email_with_roles_into_a_unit_of_their_company() {
    TestFramework::<Invitation>::with(())
        .given_no_previous_events()
        .when(issue())
        .then_expect_events(vec![issued()]);
}

#[test]
fn the_link_lasts_the_days_the_setting_gives() {
    let mut settings = Settings::default();
    assert_eq!(settings.invitations.expiry_days, 7, "a week by default");
    settings.set(SettingKey::InvitationExpiryDays, &serde_json::json!(1)).unwrap();
    let days = settings.invitations.expiry_days;
    let events = when(
        vec![],
        issue_with(|c| {
            if let Cmd::Issue { link: l, .. } = c {
                *l = link("aa", days)
            }
        }),
    )
    .unwrap();
    assert!(
        matches!(events[..], [Ev::InvitationIssued { expires_at, .. }] if expires_at == now() + Duration::days(1))
    );
    for out_of_range in [0, 91] {
        let err = Settings::default().set(SettingKey::InvitationExpiryDays, &serde_json::json!(out_of_range));
        assert!(matches!(err, Err(DomainError::Invalid { field: "value", .. })), "{out_of_range}");
    }
}

#[test]
fn only_admins_invite() {
    let staff = Requester::Admin(Actor::new(Id::from_u128(0x5), [Role::Staff]).in_unit(Some(company(ACME))));
    let result = when(
        vec![],
        issue_with(|c| {
            if let Cmd::Issue { by, .. } = c {
                *by = staff
            }
        }),
    );
    assert_eq!(result, Err(DomainError::MissingRole { required: Role::Admin }));
}

#[test]
fn an_admin_cannot_invite_into_a_unit_of_another_company() {
    let globex_admin = admin_of(GLOBEX, Id::from_u128(0xb1));
    let result = when(
        vec![],
        issue_with(|c| {
            if let Cmd::Issue { by, .. } = c {
                *by = globex_admin
            }
        }),
    );
    assert_eq!(result, Err(DomainError::NotFound { what: "unit" }));
}

#[test]
fn nobody_is_invited_into_a_closed_unit() {
    let result = when(
        vec![],
        issue_with(|c| {
            if let Cmd::Issue { unit: Some(u), .. } = c {
                u.closed = true
            }
        }),
    );
    assert_eq!(result, Err(DomainError::UnitClosed));
}

#[test]
fn an_email_a_user_or_an_open_invitation_has_cannot_be_invited() {
    for (taken, what) in [
        (EmailTaken::User, "a user with this email"),
        (EmailTaken::OpenInvitation, "an open invitation to this email (resend or revoke it)"),
    ] {
        let result = when(
            vec![],
            issue_with(|c| {
                if let Cmd::Issue { email_taken, .. } = c {
                    *email_taken = Some(taken)
                }
            }),
        );
        assert_eq!(result, Err(DomainError::AlreadyExists { what }));
    }
}

#[test]
fn an_invitation_follows_the_registration_rules_email_name_and_roles() {
    for (adjust, field) in [
        (
            Box::new(|c: &mut Cmd| {
                if let Cmd::Issue { email, .. } = c {
                    *email = "no-at".into()
                }
            }) as Box<dyn Fn(&mut Cmd)>,
            "email",
        ),
        (
            Box::new(|c: &mut Cmd| {
                if let Cmd::Issue { name, .. } = c {
                    *name = "  ".into()
                }
            }),
            "name",
        ),
        (
            Box::new(|c: &mut Cmd| {
                if let Cmd::Issue { roles, .. } = c {
                    roles.clear()
                }
            }),
            "roles",
        ),
    ] {
        let result = when(vec![], issue_with(|c| adjust(c)));
        assert!(
            matches!(result, Err(DomainError::Invalid { field: f, .. }) if f == field),
            "{field}: {result:?}"
        );
    }
}

#[test]
fn the_invitee_accepts_with_the_current_link_before_it_expires() {
    TestFramework::<Invitation>::with(())
        .given(vec![issued()])
        .when(accept("aa", now() + Duration::days(7) - Duration::seconds(1)))
        .then_expect_events(vec![Ev::InvitationAccepted { user_id: NEW_USER }]);
}

#[test]
fn a_link_works_once() {
    let used = vec![issued(), Ev::InvitationAccepted { user_id: NEW_USER }];
    assert_eq!(invalid(when(used, accept("aa", now())).map(|_| ())), "already used");
}

#[test]
fn an_expired_link_does_not_work_and_the_invitation_reads_as_expired() {
    let at = now() + Duration::days(7);
    assert_eq!(invalid(when(vec![issued()], accept("aa", at)).map(|_| ())), "expired");
    let invitation = fold(vec![issued()]);
    assert_eq!(invitation.status_at(at - Duration::seconds(1)), InvitationStatus::Pending);
    assert_eq!(invitation.status_at(at), InvitationStatus::Expired);
    assert_eq!(invitation.status, InvitationStatus::Pending, "no event records the expiry");
}

#[test]
fn a_revoked_invitation_does_not_work() {
    let revoked = vec![issued(), Ev::InvitationRevoked { by: Some(ACME_ADMIN), reason: None }];
    assert_eq!(invalid(when(revoked, accept("aa", now())).map(|_| ())), "revoked");
}

#[test]
fn a_resent_invitation_works_with_the_new_link_only_and_for_the_new_time() {
    TestFramework::<Invitation>::with(())
        .given(vec![issued()])
        .when(Cmd::Resend {
            link: NewLink { token_hash: "bb".into(), now: now() + Duration::days(10), valid_days: 7 },
            by: acme_admin(),
        })
        .then_expect_events(vec![Ev::InvitationResent {
            token_hash: "bb".into(),
            expires_at: now() + Duration::days(17),
            by: Some(ACME_ADMIN),
        }]);
    let resent = vec![
        issued(),
        Ev::InvitationResent { token_hash: "bb".into(), expires_at: now() + Duration::days(17), by: None },
    ];
    assert_eq!(invalid(when(resent.clone(), accept("aa", now())).map(|_| ())), "replaced by a newer link");
    let at = now() + Duration::days(12);
    assert_eq!(when(resent, accept("bb", at)).unwrap(), vec![Ev::InvitationAccepted { user_id: NEW_USER }]);
}

#[test]
fn an_unknown_invitation_is_invalid_like_any_other_bad_link() {
    assert_eq!(invalid(when(vec![], accept("aa", now())).map(|_| ())), "unknown");
    let messages: std::collections::BTreeSet<String> =
        ["unknown", "already used", "revoked", "replaced by a newer link", "expired"]
            .into_iter()
            .map(|reason| DomainError::InvitationInvalid { reason }.to_string())
            .collect();
    assert_eq!(messages.len(), 1, "one message whatever the reason: {messages:?}");
}

#[test]
fn revoking_twice_records_once_and_a_used_invitation_cannot_be_revoked_or_resent() {
    let revoked = vec![issued(), Ev::InvitationRevoked { by: Some(ACME_ADMIN), reason: None }];
    assert_eq!(when(revoked.clone(), Cmd::Revoke { reason: None, by: acme_admin() }).unwrap(), vec![]);
    let resend = || Cmd::Resend { link: link("cc", 7), by: acme_admin() };
    assert_eq!(
        when(revoked, resend()),
        Err(DomainError::InvitationNotPending { status: InvitationStatus::Revoked })
    );
    let used = vec![issued(), Ev::InvitationAccepted { user_id: NEW_USER }];
    for command in [Cmd::Revoke { reason: Some("no".into()), by: acme_admin() }, resend()] {
        assert_eq!(
            when(used.clone(), command),
            Err(DomainError::InvitationNotPending { status: InvitationStatus::Accepted })
        );
    }
}

#[test]
fn an_expired_invitation_may_be_revoked_or_resent() {
    // The aggregate judges "open" by its events; expiry does not close it.
    TestFramework::<Invitation>::with(())
        .given(vec![issued()])
        .when(Cmd::Revoke { reason: Some(" left before starting ".into()), by: acme_admin() })
        .then_expect_events(vec![Ev::InvitationRevoked {
            by: Some(ACME_ADMIN),
            reason: Some("left before starting".into()),
        }]);
}

#[test]
fn the_accepted_invitation_registers_the_user_sponsored_by_the_inviter_in_the_invited_unit() {
    let invitation = fold(vec![issued(), Ev::InvitationAccepted { user_id: NEW_USER }]);
    TestFramework::<User>::with(())
        .given_no_previous_events()
        .when(UserCommand::AcceptInvitation {
            user_id: NEW_USER,
            invitation: Box::new(invitation.clone()),
            unit: Some(department()),
        })
        .then_expect_events(vec![
            UserEvent::UserRegistered {
                user_id: NEW_USER,
                email: "ann@example.com".into(),
                name: "Ann".into(),
                roles: vec![Role::Staff, Role::Treasury],
                registered_by: Some(ACME_ADMIN),
            },
            UserEvent::UnitAssigned { unit_id: Some(DEPARTMENT), assigned_by: Some(ACME_ADMIN) },
        ]);
    let mut user = User::default();
    user.apply(UserEvent::UserRegistered {
        user_id: NEW_USER,
        email: "ann@example.com".into(),
        name: "Ann".into(),
        roles: vec![Role::Staff],
        registered_by: Some(ACME_ADMIN),
    });
    assert_eq!(user.sponsors, vec![ACME_ADMIN]);

    // Only an invitation this user accepted, into its own unit, while the unit is open.
    let pending = fold(vec![issued()]);
    let closed = AssignedUnit { closed: true, ..department() };
    for (invitation, unit) in
        [(pending, Some(department())), (invitation.clone(), Some(closed)), (invitation, None)]
    {
        let result = TestFramework::<User>::with(())
            .given_no_previous_events()
            .when(UserCommand::AcceptInvitation { user_id: NEW_USER, invitation: Box::new(invitation), unit })
            .inspect_result();
        assert!(result.is_err(), "{result:?}");
    }
}
