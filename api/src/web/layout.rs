//! What every page's frame shows (`templates/base.html`): the title, the stylesheet, and for a
//! signed-in user their name, roles, the navigation their roles give them and the sign-out
//! form.

use super::{assets, csrf};
use crate::error::ApiResult;
use crate::state::AppState;
use pettycash_commands::auth::AuthUser;
use pettycash_domain::report::{ReportName, ReportScope};
use pettycash_domain::visibility::{self, RequisitionScope};
use pettycash_domain::{Actor, Role};

/// The frame of a page.
pub struct Layout {
    pub title: String,
    /// `/static/app.<hash>.css` ([`assets::stylesheet`]).
    pub stylesheet: &'static str,
    /// `None` on the sign-in and error pages.
    pub viewer: Option<Viewer>,
}

/// The signed-in user as the header shows them.
pub struct Viewer {
    pub name: String,
    /// Their roles as people read them, e.g. `Department head, Treasury`.
    pub roles: String,
    pub nav: Vec<NavLink>,
    /// For the sign-out form.
    pub csrf_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavLink {
    pub label: &'static str,
    pub href: &'static str,
    /// The page being shown (`aria-current="page"`).
    pub current: bool,
}

impl Layout {
    /// The frame of a page without a signed-in user.
    pub fn anonymous(title: &str) -> Self {
        Self { title: title.into(), stylesheet: assets::stylesheet(), viewer: None }
    }

    /// The frame of a page for `user`, signed in with the session `token`, on the page at
    /// `current` (one of the navigation's `href`s).
    pub fn signed_in(
        state: &AppState,
        title: &str,
        user: &AuthUser,
        token: &str,
        current: &str,
    ) -> ApiResult<Self> {
        let actor = user.actor();
        let roles = actor.roles.iter().map(|r| role_label(*r)).collect::<Vec<_>>().join(", ");
        Ok(Self {
            title: title.into(),
            stylesheet: assets::stylesheet(),
            viewer: Some(Viewer {
                name: user.name.clone(),
                roles,
                nav: nav(&actor, current),
                csrf_token: csrf::token(state, csrf::Binding::Session(token))?,
            }),
        })
    }
}

/// A role as people read it. Exhaustive: a new role in `domain` does not compile until it has
/// a label here.
pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::Staff => "Staff",
        Role::BranchManager => "Branch manager",
        Role::DepartmentHead => "Department head",
        Role::RegionalManager => "Regional manager",
        Role::GroupFinanceManager => "Group finance manager",
        Role::Fpa => "FP&A",
        Role::Cfo => "CFO",
        Role::Ceo => "CEO",
        Role::Treasury => "Treasury",
        Role::Auditor => "Auditor",
        Role::Admin => "Admin",
    }
}

/// An area of the site (issue #16's list) and who it is for.
struct Area {
    label: &'static str,
    /// Its first page; `None` while its pages are not built (the area is not shown yet).
    page: Option<&'static str>,
    /// Whether `actor` has any business there: the domain's rules (roles, visibility), never a
    /// list of role names of our own.
    for_actor: fn(&Actor) -> bool,
}

/// The navigation, in order. The rule for each area is set now, with the foundation, so that
/// the pages that come later only fill in `page`.
const AREAS: [Area; 8] = [
    Area { label: "Dashboard", page: Some("/dashboard/"), for_actor: |_| true },
    // Everyone requests cash or sees what they requested.
    Area { label: "Requisitions", page: Some("/requisitions/"), for_actor: |_| true },
    // Whoever an approval chain can wait on (the approvals inbox's own rule).
    Area {
        label: "Approvals",
        page: Some("/approvals/"),
        for_actor: |a| !RequisitionScope::of(a).chain_roles.is_empty(),
    },
    // Whoever reads treasury's payments (the pages' own rule, `visibility::may_read_payments`):
    // treasury acts there, the others read.
    Area { label: "Treasury", page: Some("/treasury/"), for_actor: visibility::may_read_payments },
    Area {
        label: "Reports",
        page: Some("/reports/"),
        for_actor: |a| ReportName::ALL.into_iter().any(|n| ReportScope::of(a, n).is_some()),
    },
    // Anyone may be named responsible for an alert (`visibility::AlertScope`).
    Area { label: "Alerts", page: Some("/alerts/"), for_actor: |_| true },
    Area { label: "Admin", page: Some(super::admin::HOME), for_actor: |a| a.has(Role::Admin) },
    Area { label: "Audit", page: Some(super::audit::HOME), for_actor: |a| a.has(Role::Auditor) },
];

/// The areas `actor` has business in, built or not.
fn areas_for<'a>(actor: &'a Actor) -> impl Iterator<Item = &'static Area> + 'a {
    AREAS.iter().filter(|a| (a.for_actor)(actor))
}

/// The navigation of `actor` on the page `current`: the built areas they have business in.
pub fn nav(actor: &Actor, current: &str) -> Vec<NavLink> {
    areas_for(actor)
        .filter_map(|a| a.page.map(|href| NavLink { label: a.label, href, current: href == current }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn actor(roles: &[Role]) -> Actor {
        Actor::new(Uuid::new_v4(), roles.iter().copied())
    }

    fn labels(roles: &[Role]) -> Vec<&'static str> {
        areas_for(&actor(roles)).map(|a| a.label).collect()
    }

    #[test]
    fn each_role_is_shown_the_areas_it_has_business_in() {
        assert_eq!(labels(&[Role::Staff]), ["Dashboard", "Requisitions", "Reports", "Alerts"]);
        assert_eq!(
            labels(&[Role::DepartmentHead]),
            ["Dashboard", "Requisitions", "Approvals", "Reports", "Alerts"]
        );
        // Treasury may be a validation step of a chain, so it has an approvals inbox too.
        assert_eq!(
            labels(&[Role::Treasury]),
            ["Dashboard", "Requisitions", "Approvals", "Treasury", "Reports", "Alerts"]
        );
        // Auditors and admins read treasury's payments (`may_read_payments`), as the pages let them.
        assert_eq!(
            labels(&[Role::Auditor, Role::Admin]),
            ["Dashboard", "Requisitions", "Treasury", "Reports", "Alerts", "Admin", "Audit"]
        );
    }

    #[test]
    fn only_built_areas_are_linked_and_the_current_page_is_marked() {
        let links = nav(&actor(&[Role::Staff]), "/reports/");
        let shown: Vec<_> = links.iter().map(|l| (l.label, l.href, l.current)).collect();
        assert_eq!(
            shown,
            [
                ("Dashboard", "/dashboard/", false),
                ("Requisitions", "/requisitions/", false),
                ("Reports", "/reports/", true),
                ("Alerts", "/alerts/", false)
            ]
        );
        let links = nav(&actor(&[Role::DepartmentHead]), "/approvals/");
        let shown: Vec<_> = links.iter().map(|l| (l.label, l.current)).collect();
        assert_eq!(
            shown,
            [
                ("Dashboard", false),
                ("Requisitions", false),
                ("Approvals", true),
                ("Reports", false),
                ("Alerts", false)
            ]
        );
        let links = nav(&actor(&[Role::Auditor, Role::Admin]), "/admin/");
        let shown: Vec<_> = links.iter().map(|l| (l.label, l.current)).collect();
        assert!(shown.contains(&("Admin", true)) && shown.contains(&("Audit", false)), "{shown:?}");
    }

    #[test]
    fn roles_read_as_words() {
        assert_eq!(role_label(Role::GroupFinanceManager), "Group finance manager");
        assert_eq!(role_label(Role::Fpa), "FP&A");
    }
}
