//! The organisation: company → region → branch → department → cost centre (and positions),
//! one aggregate type `org_unit` whose kind says which level a unit is.
//!
//! ```text
//! company ─ region ─ branch ─ department ─┬─ cost centre
//!                                          └─ position
//! ```
//!
//! A unit's parent is always of the kind directly above it, so a unit's *path* (its company,
//! region, branch, department and, for a cost centre, itself) follows from its parent's path
//! and never changes: units are opened, renamed and closed, never moved. The path is recorded
//! in `UnitOpened`, so that the `org_units` table, a user's unit and a requisition's unit all
//! read it without walking the tree.
//!
//! Who may change the organisation: admins only. An admin who belongs to a company acts on
//! that company's units; only an admin who belongs to no unit (the organisation's first admin,
//! made by the operator) opens companies. The commands service looks up what a decision needs
//! (the parent unit and its path, how many open children and members a unit has) and puts it
//! into the command, as everywhere else.
//!
//! Codes are upper-cased (`nbi-01` is `NBI-01`) and unique within their company; company codes
//! are unique across companies. Uniqueness is enforced where the `org_units` row is written,
//! in the transaction that appends the event (as `users.email` is).

use crate::error::{clean_text, DomainError};
use crate::role::Role;
use crate::user::Requester;
use crate::Id;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::fmt;

pub const NAME_MAX: usize = 200;
pub const CODE_MAX: usize = 32;
pub const PHONE_MAX: usize = 40;

/// Which level of the organisation a unit is. One text form ([`UnitKind::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    Company,
    Region,
    Branch,
    Department,
    CostCentre,
    /// A post in a department (a user may be assigned to it rather than to the department).
    Position,
}

impl UnitKind {
    pub const ALL: [UnitKind; 6] = [
        UnitKind::Company,
        UnitKind::Region,
        UnitKind::Branch,
        UnitKind::Department,
        UnitKind::CostCentre,
        UnitKind::Position,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Company => "company",
            UnitKind::Region => "region",
            UnitKind::Branch => "branch",
            UnitKind::Department => "department",
            UnitKind::CostCentre => "cost_centre",
            UnitKind::Position => "position",
        }
    }

    /// The kind a unit of this kind must hang under; `None` for a company.
    pub fn parent_kind(self) -> Option<UnitKind> {
        match self {
            UnitKind::Company => None,
            UnitKind::Region => Some(UnitKind::Company),
            UnitKind::Branch => Some(UnitKind::Region),
            UnitKind::Department => Some(UnitKind::Branch),
            UnitKind::CostCentre | UnitKind::Position => Some(UnitKind::Department),
        }
    }
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for UnitKind {
    type Err = crate::fund::UnknownWord;
    /// Exactly [`UnitKind::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| crate::fund::UnknownWord { what: "unit kind", text: s.to_string() })
    }
}

/// Where a unit sits: the unit itself and the units above it, by level. A unit's own level is
/// filled with its own id (a branch's `branch` is itself). This is what visibility compares:
/// the actor's path with the requisition's, level by level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnitPath {
    /// The unit itself (the most specific: a position, a cost centre, a department, ...).
    pub unit_id: Id,
    pub company: Id,
    pub region: Option<Id>,
    pub branch: Option<Id>,
    pub department: Option<Id>,
    pub cost_centre: Option<Id>,
}

impl UnitPath {
    /// The path of a new unit `id` of `kind` under a parent with path `parent` (`None` for a
    /// company).
    pub fn child(id: Id, kind: UnitKind, parent: Option<&UnitPath>) -> Option<UnitPath> {
        let mut path = match (kind, parent) {
            (UnitKind::Company, None) => {
                return Some(UnitPath {
                    unit_id: id,
                    company: id,
                    region: None,
                    branch: None,
                    department: None,
                    cost_centre: None,
                })
            }
            (UnitKind::Company, Some(_)) | (_, None) => return None,
            (_, Some(p)) => UnitPath { unit_id: id, cost_centre: None, ..*p },
        };
        match kind {
            UnitKind::Company => {}
            UnitKind::Region => path.region = Some(id),
            UnitKind::Branch => path.branch = Some(id),
            UnitKind::Department => path.department = Some(id),
            UnitKind::CostCentre => path.cost_centre = Some(id),
            UnitKind::Position => {}
        }
        Some(path)
    }
}

/// Where a requisition comes from, as the old system classed it: a branch, head office, or the
/// field (staff of a region working away from any office). One text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Branch,
    Hq,
    Field,
}

impl Origin {
    pub const ALL: [Origin; 3] = [Origin::Branch, Origin::Hq, Origin::Field];

    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Branch => "branch",
            Origin::Hq => "hq",
            Origin::Field => "field",
        }
    }

    /// The origin of a requisition by a requester at `unit`, who asked for `asked`:
    ///
    /// - no unit (an organisation without units): none — unscoped, as before;
    /// - a unit at or below a branch: `branch`; a company- or region-level unit: `hq`;
    /// - `field` when asked for, by a requester whose unit is in a region (a region or
    ///   anything below it). Asking for the origin the unit gives anyway is fine; asking for
    ///   any other is refused, naming `origin`.
    pub fn of(unit: Option<&UnitPath>, asked: Option<Origin>) -> Result<Option<Origin>, DomainError> {
        let Some(unit) = unit else {
            return match asked {
                None => Ok(None),
                Some(_) => Err(DomainError::invalid(
                    "origin",
                    "you belong to no organisation unit, so your requisitions have no origin",
                )),
            };
        };
        let derived = if unit.branch.is_some() { Origin::Branch } else { Origin::Hq };
        match asked {
            None => Ok(Some(derived)),
            Some(o) if o == derived => Ok(Some(o)),
            Some(Origin::Field) if unit.region.is_some() => Ok(Some(Origin::Field)),
            Some(Origin::Field) => {
                Err(DomainError::invalid("origin", "`field` is for requesters whose unit is in a region"))
            }
            Some(_) => Err(DomainError::invalid(
                "origin",
                format!(
                    "your unit gives the origin `{}`; only `field` may be chosen instead",
                    derived.as_str()
                ),
            )),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Origin {
    type Err = crate::fund::UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| crate::fund::UnknownWord { what: "origin", text: s.to_string() })
    }
}

/// Trims, upper-cases and checks a unit code: 1 to [`CODE_MAX`] characters of `A-Z 0-9 . _ -`
/// (and `/`, as some old branch codes have it).
pub fn clean_code(field: &'static str, code: &str) -> Result<String, DomainError> {
    let code = clean_text(field, code, CODE_MAX, true)?.to_ascii_uppercase();
    if !code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')) {
        return Err(DomainError::invalid(field, "may hold only letters, digits and . _ - /"));
    }
    Ok(code)
}

/// Checks an optional phone number: digits, spaces and `+ ( ) - .`, at most [`PHONE_MAX`]
/// characters; blank is none.
pub fn clean_phone(phone: Option<&str>) -> Result<Option<String>, DomainError> {
    let phone = crate::error::clean_optional("phone", phone, PHONE_MAX)?;
    if let Some(p) = &phone {
        if !p.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '(' | ')' | '-' | '.')) {
            return Err(DomainError::invalid("phone", "may hold only digits, spaces and + ( ) - ."));
        }
    }
    Ok(phone)
}

/// The parent of a unit being opened, as looked up by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentUnit {
    pub kind: UnitKind,
    pub path: UnitPath,
    pub closed: bool,
}

/// An organisation unit's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrgUnit {
    pub id: Option<Id>,
    pub kind: Option<UnitKind>,
    pub name: String,
    pub code: String,
    pub phone: Option<String>,
    pub parent_id: Option<Id>,
    pub path: Option<UnitPath>,
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UnitCommand {
    /// Open a unit. `parent` is `None` for a company, else the unit it hangs under.
    Open {
        unit_id: Id,
        kind: UnitKind,
        name: String,
        code: String,
        /// A contact number (branches have one in the old system's files).
        phone: Option<String>,
        parent: Option<ParentUnit>,
        by: Requester,
    },
    Rename {
        name: String,
        by: Requester,
    },
    /// Close: refused while `open_children` (units under it not closed) or `members` (active
    /// users assigned to it) are not zero, as counted by the caller (and checked again where
    /// the row is written, under a lock).
    Close {
        open_children: u64,
        members: u64,
        by: Requester,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UnitEvent {
    UnitOpened {
        unit_id: Id,
        kind: UnitKind,
        name: String,
        code: String,
        phone: Option<String>,
        parent_id: Option<Id>,
        /// The unit's path, itself included.
        path: UnitPath,
        opened_by: Option<Id>,
    },
    UnitRenamed {
        name: String,
        renamed_by: Option<Id>,
    },
    UnitClosed {
        closed_by: Option<Id>,
    },
}

impl DomainEvent for UnitEvent {
    fn event_type(&self) -> String {
        match self {
            UnitEvent::UnitOpened { .. } => "UnitOpened",
            UnitEvent::UnitRenamed { .. } => "UnitRenamed",
            UnitEvent::UnitClosed { .. } => "UnitClosed",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

impl Requester {
    /// The company an admin acts in (`None`: an admin of no unit, or the operator).
    fn company(&self) -> Option<Id> {
        match self {
            Requester::Admin(actor) => actor.company(),
            Requester::Operator => None,
        }
    }

    /// Refuses an admin of a company acting on a unit of another company as if the unit did
    /// not exist (the caller only finds units the admin may see; this is the same rule again).
    /// An admin of no unit, and the operator, reach every unit.
    pub(crate) fn check_reaches(&self, company: Id) -> Result<(), DomainError> {
        match self.company() {
            Some(own) if own != company => Err(DomainError::NotFound { what: "unit" }),
            _ => Ok(()),
        }
    }
}

impl Aggregate for OrgUnit {
    const TYPE: &'static str = "org_unit";
    type Command = UnitCommand;
    type Event = UnitEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: UnitCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            UnitCommand::Open { unit_id, kind, name, code, phone, parent, by } => {
                by.check_admin()?;
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists { what: "unit" });
                }
                let name = clean_text("name", &name, NAME_MAX, true)?;
                let code = clean_code("code", &code)?;
                let phone = clean_phone(phone.as_deref())?;
                let expected = kind.parent_kind();
                let parent_path = match (&parent, expected) {
                    (None, None) => {
                        if by.company().is_some() {
                            return Err(DomainError::OrganisationAdminOnly { action: "open a company" });
                        }
                        None
                    }
                    (Some(p), Some(expected)) if p.kind == expected => {
                        by.check_reaches(p.path.company)?;
                        if p.closed {
                            return Err(DomainError::UnitClosed);
                        }
                        Some(&p.path)
                    }
                    (Some(p), None) => {
                        return Err(DomainError::WrongParent { kind, expected: None, got: Some(p.kind) })
                    }
                    (p, Some(expected)) => {
                        return Err(DomainError::WrongParent {
                            kind,
                            expected: Some(expected),
                            got: p.as_ref().map(|p| p.kind),
                        })
                    }
                };
                let path = UnitPath::child(unit_id, kind, parent_path).ok_or(DomainError::WrongParent {
                    kind,
                    expected,
                    got: parent.as_ref().map(|p| p.kind),
                })?;
                let event = UnitEvent::UnitOpened {
                    unit_id,
                    kind,
                    name,
                    code,
                    phone,
                    parent_id: parent.map(|p| p.path.unit_id),
                    path,
                    opened_by: by.user_id(),
                };
                sink.write(event, self).await;
            }
            UnitCommand::Rename { name, by } => {
                by.check_admin()?;
                self.require_reachable(&by)?;
                if self.closed {
                    return Err(DomainError::UnitClosed);
                }
                let name = clean_text("name", &name, NAME_MAX, true)?;
                if name != self.name {
                    sink.write(UnitEvent::UnitRenamed { name, renamed_by: by.user_id() }, self).await;
                }
            }
            UnitCommand::Close { open_children, members, by } => {
                by.check_admin()?;
                self.require_reachable(&by)?;
                if self.closed {
                    return Ok(());
                }
                if open_children > 0 || members > 0 {
                    return Err(DomainError::UnitNotEmpty { open_children, members });
                }
                sink.write(UnitEvent::UnitClosed { closed_by: by.user_id() }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: UnitEvent) {
        match event {
            UnitEvent::UnitOpened { unit_id, kind, name, code, phone, parent_id, path, .. } => {
                self.id = Some(unit_id);
                self.phone = phone;
                self.kind = Some(kind);
                self.name = name;
                self.code = code;
                self.parent_id = parent_id;
                self.path = Some(path);
                self.closed = false;
            }
            UnitEvent::UnitRenamed { name, .. } => self.name = name,
            UnitEvent::UnitClosed { .. } => self.closed = true,
        }
    }
}

impl OrgUnit {
    /// Refuses when the unit does not exist or `by` may not act on it.
    fn require_reachable(&self, by: &Requester) -> Result<(), DomainError> {
        let path = self.path.as_ref().ok_or(DomainError::NotFound { what: "unit" })?;
        by.check_reaches(path.company)
    }
}

/// Roles whose view of requisitions is narrowed to one level of the organisation: a branch
/// manager to their branch, a department head to their department, a regional manager to
/// their region. Every other approver role sees the whole company (`visibility::COMPANY_WIDE`).
pub fn reach_level(role: Role) -> Option<UnitKind> {
    match role {
        Role::BranchManager => Some(UnitKind::Branch),
        Role::DepartmentHead => Some(UnitKind::Department),
        Role::RegionalManager => Some(UnitKind::Region),
        _ => None,
    }
}

impl UnitPath {
    /// The id of this path's unit at `level` (company, region, branch, department, cost
    /// centre); `None` when the path does not go through that level (or for positions, which
    /// are no level of a path).
    pub fn at(&self, level: UnitKind) -> Option<Id> {
        match level {
            UnitKind::Company => Some(self.company),
            UnitKind::Region => self.region,
            UnitKind::Branch => self.branch,
            UnitKind::Department => self.department,
            UnitKind::CostCentre => self.cost_centre,
            UnitKind::Position => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for kind in UnitKind::ALL {
            assert_eq!(kind.as_str().parse::<UnitKind>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for origin in Origin::ALL {
            assert_eq!(origin.as_str().parse::<Origin>().unwrap(), origin);
            assert_eq!(serde_json::to_value(origin).unwrap(), origin.as_str());
        }
        assert!("Branch".parse::<UnitKind>().is_err());
    }

    #[test]
    fn codes_are_upper_cased_and_plain() {
        assert_eq!(clean_code("code", " nbi-01 ").unwrap(), "NBI-01");
        for bad in ["", "a b", "x;y", &"A".repeat(CODE_MAX + 1)] {
            assert!(clean_code("code", bad).is_err(), "{bad}");
        }
    }
}
