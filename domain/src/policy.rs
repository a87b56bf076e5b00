//! Approval policy: amount tiers mapped to an ordered chain of approver roles, or (since
//! [workflow]) thresholds by currency, origin and amount (`crate::routing`).
//!
//! The policy is itself an event-sourced aggregate (one stream, id [`POLICY_ID`]); every change
//! is an `ApprovalPolicyChanged` event. The chain that applies to a requisition is resolved
//! when it is submitted and recorded in its `RequisitionSubmitted` event, so replay never
//! depends on the policy in force today.

use crate::error::DomainError;
use crate::money::Currency;
use crate::role::Role;
use crate::routing::{chain_for, Origin, Threshold, Thresholds};
use crate::{Actor, Id};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The single policy stream's aggregate id.
pub const POLICY_ID: &str = "default";

/// One tier: requisitions up to and including `up_to` (or any amount, when `None`) need
/// approvals from `chain`, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    #[serde(with = "rust_decimal::serde::str_option")]
    pub up_to: Option<Decimal>,
    pub chain: Vec<Role>,
}

/// Ordered tiers; the last one has no upper bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tiers(pub Vec<Tier>);

impl Tiers {
    /// The policy in force until an admin changes it: up to 1,000 → department head; up to
    /// 10,000 → department head, group finance manager; above → those and the CFO.
    pub fn default_policy() -> Self {
        Tiers(vec![
            Tier { up_to: Some(Decimal::from(1_000)), chain: vec![Role::DepartmentHead] },
            Tier {
                up_to: Some(Decimal::from(10_000)),
                chain: vec![Role::DepartmentHead, Role::GroupFinanceManager],
            },
            Tier { up_to: None, chain: vec![Role::DepartmentHead, Role::GroupFinanceManager, Role::Cfo] },
        ])
    }

    /// Checks the tiers: at least one; strictly increasing positive bounds; only the last
    /// unbounded; every chain non-empty, made of approver roles, without repeats.
    pub fn validate(&self) -> Result<(), DomainError> {
        let tiers = &self.0;
        if tiers.is_empty() {
            return Err(DomainError::invalid("tiers", "at least one tier is required"));
        }
        let mut previous: Option<Decimal> = None;
        for (i, tier) in tiers.iter().enumerate() {
            let last = i + 1 == tiers.len();
            match (tier.up_to, last) {
                (None, false) => {
                    return Err(DomainError::invalid("tiers", "only the last tier may be unbounded"))
                }
                (Some(_), true) => {
                    return Err(DomainError::invalid(
                        "tiers",
                        "the last tier must be unbounded (up_to: null)",
                    ))
                }
                (Some(bound), false) => {
                    if bound <= Decimal::ZERO || previous.is_some_and(|p| bound <= p) {
                        return Err(DomainError::invalid(
                            "tiers",
                            "tier bounds must be positive and increasing",
                        ));
                    }
                    previous = Some(bound);
                }
                (None, true) => {}
            }
            if tier.chain.is_empty() {
                return Err(DomainError::invalid("tiers", "every tier needs at least one approver role"));
            }
            for (j, role) in tier.chain.iter().enumerate() {
                if !role.is_approver() {
                    return Err(DomainError::invalid("tiers", format!("`{role}` is not an approver role")));
                }
                if tier.chain[..j].contains(role) {
                    return Err(DomainError::invalid(
                        "tiers",
                        format!("`{role}` appears twice in one chain"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The chain for `amount`: the first tier whose bound covers it.
    pub fn chain_for(&self, amount: Decimal) -> Vec<Role> {
        self.0
            .iter()
            .find(|t| t.up_to.is_none_or(|b| amount <= b))
            .or(self.0.last())
            .map(|t| t.chain.clone())
            .unwrap_or_default()
    }
}

impl Tiers {
    /// The same policy as thresholds: one per tier, for any currency and origin, from just
    /// above the previous tier's bound (by the finest minor unit of any currency, so that no
    /// amount of any currency falls between two tiers) up to its own.
    pub fn as_thresholds(&self) -> Thresholds {
        let above = Decimal::new(1, crate::money::FINEST_MINOR_UNITS);
        let mut min = Decimal::ZERO;
        let thresholds = self
            .0
            .iter()
            .enumerate()
            .map(|(i, tier)| {
                let threshold = Threshold {
                    name: format!("Tier {}", i + 1),
                    currency: None,
                    origin: None,
                    min,
                    max: tier.up_to,
                    priority: 10,
                    chain: tier.chain.clone(),
                    fast_track: false,
                    requires_cfo: false,
                    requires_ceo: false,
                };
                min = tier.up_to.map_or(min, |bound| bound + above);
                threshold
            })
            .collect();
        Thresholds(thresholds)
    }
}

/// The approval policy aggregate. `version` 0 is the built-in default. It holds either amount
/// tiers (the first form of the policy: any currency, any origin) or thresholds, whichever was
/// set last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    pub version: u32,
    pub tiers: Option<Tiers>,
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
}

impl ApprovalPolicy {
    /// The tiers, when the policy is (still) given as tiers: the built-in default until an
    /// admin sets tiers or thresholds; `None` once thresholds replaced them.
    pub fn tiers(&self) -> Option<Tiers> {
        match (&self.tiers, &self.thresholds) {
            (_, Some(_)) => None,
            (Some(tiers), None) => Some(tiers.clone()),
            (None, None) => Some(Tiers::default_policy()),
        }
    }

    /// The thresholds in force (tiers read as thresholds).
    pub fn thresholds(&self) -> Thresholds {
        match (&self.thresholds, self.tiers()) {
            (Some(thresholds), _) => thresholds.clone(),
            (None, Some(tiers)) => tiers.as_thresholds(),
            (None, None) => Tiers::default_policy().as_thresholds(),
        }
    }

    /// The chain of roles for a requisition: the threshold its currency, origin and amount
    /// select, built for its requester ([`chain_for`]).
    pub fn chain(
        &self,
        currency: &Currency,
        origin: Origin,
        amount: Decimal,
        requester_roles: &[Role],
    ) -> Result<Vec<Role>, DomainError> {
        let thresholds = self.thresholds();
        let threshold = thresholds.select(currency, origin, amount)?;
        Ok(chain_for(threshold, requester_roles))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PolicyCommand {
    ChangePolicy { tiers: Tiers, actor: Actor },
    ChangeThresholds { thresholds: Thresholds, actor: Actor },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PolicyEvent {
    ApprovalPolicyChanged { version: u32, tiers: Tiers, changed_by: Id },
    ThresholdsChanged { version: u32, thresholds: Thresholds, changed_by: Id },
}

impl DomainEvent for PolicyEvent {
    fn event_type(&self) -> String {
        match self {
            PolicyEvent::ApprovalPolicyChanged { .. } => "ApprovalPolicyChanged".into(),
            PolicyEvent::ThresholdsChanged { .. } => "ThresholdsChanged".into(),
        }
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

impl Aggregate for ApprovalPolicy {
    const TYPE: &'static str = "approval_policy";
    type Command = PolicyCommand;
    type Event = PolicyEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            PolicyCommand::ChangePolicy { tiers, actor } => {
                if !actor.has(Role::Admin) {
                    return Err(DomainError::MissingRole { required: Role::Admin });
                }
                tiers.validate()?;
                let event = PolicyEvent::ApprovalPolicyChanged {
                    version: self.version + 1,
                    tiers,
                    changed_by: actor.user_id,
                };
                sink.write(event, self).await;
                Ok(())
            }
            PolicyCommand::ChangeThresholds { thresholds, actor } => {
                if !actor.has(Role::Admin) {
                    return Err(DomainError::MissingRole { required: Role::Admin });
                }
                thresholds.validate()?;
                let event = PolicyEvent::ThresholdsChanged {
                    version: self.version + 1,
                    thresholds,
                    changed_by: actor.user_id,
                };
                sink.write(event, self).await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PolicyEvent::ApprovalPolicyChanged { version, tiers, .. } => {
                self.version = version;
                self.tiers = Some(tiers);
                self.thresholds = None;
            }
            PolicyEvent::ThresholdsChanged { version, thresholds, .. } => {
                self.version = version;
                self.thresholds = Some(thresholds);
                self.tiers = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn admin() -> Actor {
        Actor::new(Id::nil(), [Role::Admin])
    }

    #[test]
    fn default_chain_by_amount() {
        let t = Tiers::default_policy();
        assert_eq!(t.chain_for(Decimal::from(1_000)), vec![Role::DepartmentHead]);
        assert_eq!(
            t.chain_for(Decimal::new(100001, 2)),
            vec![Role::DepartmentHead, Role::GroupFinanceManager]
        );
        assert_eq!(t.chain_for(Decimal::from(10_000)).len(), 2);
        assert_eq!(t.chain_for(Decimal::new(1000001, 2)).len(), 3);
    }

    #[test]
    fn admin_changes_policy_and_version_increments() {
        let tiers = Tiers(vec![Tier { up_to: None, chain: vec![Role::Cfo] }]);
        TestFramework::<ApprovalPolicy>::with(())
            .given_no_previous_events()
            .when(PolicyCommand::ChangePolicy { tiers: tiers.clone(), actor: admin() })
            .then_expect_events(vec![PolicyEvent::ApprovalPolicyChanged {
                version: 1,
                tiers,
                changed_by: Id::nil(),
            }]);
    }

    #[test]
    fn non_admin_cannot_change_policy() {
        let tiers = Tiers(vec![Tier { up_to: None, chain: vec![Role::Cfo] }]);
        TestFramework::<ApprovalPolicy>::with(())
            .given_no_previous_events()
            .when(PolicyCommand::ChangePolicy { tiers, actor: Actor::new(Id::nil(), [Role::Cfo]) })
            .then_expect_error(DomainError::MissingRole { required: Role::Admin });
    }

    #[test]
    fn tiers_read_as_thresholds_give_the_same_chains_for_every_currency() {
        let policy = ApprovalPolicy::default();
        let thresholds = policy.thresholds();
        thresholds.validate().unwrap();
        for code in ["KES", "JPY", "KWD"] {
            let currency = Currency::parse(code).unwrap();
            for amount in ["1", "1000", "1000.01", "10000", "10000.001", "10000.01", "5000000"] {
                let amount: Decimal = amount.parse().unwrap();
                assert_eq!(
                    policy.chain(&currency, Origin::Branch, amount, &[Role::Staff]).unwrap(),
                    Tiers::default_policy().chain_for(amount),
                    "{amount} {code}"
                );
            }
        }
    }

    #[test]
    fn admin_sets_thresholds_which_replace_the_tiers_and_are_validated() {
        let thresholds = Tiers::default_policy().as_thresholds();
        TestFramework::<ApprovalPolicy>::with(())
            .given(vec![PolicyEvent::ApprovalPolicyChanged {
                version: 1,
                tiers: Tiers(vec![Tier { up_to: None, chain: vec![Role::Cfo] }]),
                changed_by: Id::nil(),
            }])
            .when(PolicyCommand::ChangeThresholds { thresholds: thresholds.clone(), actor: admin() })
            .then_expect_events(vec![PolicyEvent::ThresholdsChanged {
                version: 2,
                thresholds,
                changed_by: Id::nil(),
            }]);
        let mut gap = Tiers::default_policy().as_thresholds();
        gap.0.remove(1);
        TestFramework::<ApprovalPolicy>::with(())
            .given_no_previous_events()
            .when(PolicyCommand::ChangeThresholds { thresholds: gap, actor: admin() })
            .then_expect_error(DomainError::ThresholdsGap {
                currency: None,
                origin: Origin::Branch,
                from: "1000.001".parse().unwrap(),
            });
        let mut policy = ApprovalPolicy::default();
        policy.apply(PolicyEvent::ThresholdsChanged {
            version: 1,
            thresholds: Tiers(vec![Tier { up_to: None, chain: vec![Role::Fpa] }]).as_thresholds(),
            changed_by: Id::nil(),
        });
        assert_eq!(policy.tiers(), None, "thresholds replaced the tiers");
        let kes = Currency::parse("KES").unwrap();
        assert_eq!(policy.chain(&kes, Origin::Hq, Decimal::ONE, &[Role::Staff]).unwrap(), vec![Role::Fpa]);
    }

    #[test]
    fn invalid_tiers_are_refused() {
        let bad = [
            Tiers(vec![]),
            Tiers(vec![Tier { up_to: Some(Decimal::TEN), chain: vec![Role::Cfo] }]),
            Tiers(vec![Tier { up_to: None, chain: vec![] }]),
            Tiers(vec![Tier { up_to: None, chain: vec![Role::Treasury] }]),
            Tiers(vec![Tier { up_to: None, chain: vec![Role::Cfo, Role::Cfo] }]),
            Tiers(vec![
                Tier { up_to: Some(Decimal::TEN), chain: vec![Role::Cfo] },
                Tier { up_to: Some(Decimal::ONE), chain: vec![Role::Cfo] },
                Tier { up_to: None, chain: vec![Role::Cfo] },
            ]),
        ];
        for tiers in bad {
            assert!(tiers.validate().is_err(), "{tiers:?} should be invalid");
        }
    }
}
