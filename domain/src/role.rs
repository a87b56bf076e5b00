//! Roles, named as in the system being replaced.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A role a user may hold. A user may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May request cash.
    Staff,
    BranchManager,
    DepartmentHead,
    RegionalManager,
    GroupFinanceManager,
    /// Financial planning and analysis (`fp&a` in the old system).
    Fpa,
    Cfo,
    Ceo,
    /// Pays out approved requisitions.
    Treasury,
    /// Reads everything, changes nothing.
    Auditor,
    /// Users, funds and policy. Does not approve or pay unless also given that role.
    Admin,
}

impl Role {
    pub const ALL: [Role; 11] = [
        Role::Staff,
        Role::BranchManager,
        Role::DepartmentHead,
        Role::RegionalManager,
        Role::GroupFinanceManager,
        Role::Fpa,
        Role::Cfo,
        Role::Ceo,
        Role::Treasury,
        Role::Auditor,
        Role::Admin,
    ];

    /// Roles that may appear as a step of an approval chain.
    pub const APPROVERS: [Role; 7] = [
        Role::BranchManager,
        Role::DepartmentHead,
        Role::RegionalManager,
        Role::GroupFinanceManager,
        Role::Fpa,
        Role::Cfo,
        Role::Ceo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::BranchManager => "branch_manager",
            Role::DepartmentHead => "department_head",
            Role::RegionalManager => "regional_manager",
            Role::GroupFinanceManager => "group_finance_manager",
            Role::Fpa => "fpa",
            Role::Cfo => "cfo",
            Role::Ceo => "ceo",
            Role::Treasury => "treasury",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn is_approver(self) -> bool {
        Self::APPROVERS.contains(&self)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a known role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        // The old system spelled FP&A as `fp&a`; accept it on input.
        let wanted = if wanted == "fp&a" { "fpa".to_string() } else { wanted };
        Role::ALL.into_iter().find(|r| r.as_str() == wanted).ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        assert_eq!("FP&A".parse::<Role>().unwrap(), Role::Fpa);
        assert!("root".parse::<Role>().is_err());
    }
}
