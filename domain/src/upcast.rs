//! Upcasters for superseded event versions. Applied on every read of stored events: by the
//! command side when folding a stream and by the projection tailer. Stored rows are never
//! edited; a shape change is a new `event_version` plus an entry here.
//!
//! | event | version | change | upcaster |
//! |---|---|---|---|
//! | `RequisitionCreated` | 2 | `origin` and `unit` (the requester's organisation) | [`AddFields`]: both `null` (unscoped) |
//! | `FundOpened` | 2 | `unit` (the owning unit) | [`AddFields`]: `null` (unscoped) |
//! | `RequisitionSubmitted` | 2 | `threshold`, `eligible` (who may act at each step), `comment`, `due` | [`AddFields`]: `null` (any holder of a step's role; no deadlines) |
//! | `RequisitionApproved` | 2 | `comment`, `due` | [`AddFields`]: `null` |
//! | `ChangesRequested` | 2 | `deadline` | [`AddFields`]: `null` (no expiry) |
//! | `RequisitionApproved` | 3 | `on_behalf_of`, `delegation_id` (a delegate's decision) | [`AddFields`]: `null` (in the approver's own name) |
//! | `RequisitionRejected` | 2 | `on_behalf_of`, `delegation_id` | [`AddFields`]: `null` |
//! | `ChangesRequested` | 3 | `on_behalf_of`, `delegation_id` | [`AddFields`]: `null` |
//! | `FundOpened` | 3 | `reorder_level`, `minimum_balance`, `auto_replenish` | [`AddFields`]: `null` (no reorder level, minimum zero, auto-replenish off) |
//! | `RequisitionCreated` | 3 | `category_id`, `cost_centre_id` (the expense category and cost centre chosen) | [`AddFields`]: `null` (none chosen; the free text `category` stays the label it was, never mapped: `crate::category`) |
//! | `CashDisbursed` | 2 | `reserved` (the reservation a provider payment consumes) | [`AddFields`]: `null` (cash paid at once) |

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;

/// All upcasters, in the order they apply.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![
        Box::new(AddFields {
            event_type: "RequisitionCreated",
            from: "1",
            to: "2",
            fields: &["origin", "unit"],
        }),
        Box::new(AddFields { event_type: "FundOpened", from: "1", to: "2", fields: &["unit"] }),
        // Payments through providers (issue #14 [treasury]): earlier disbursements were cash.
        Box::new(AddFields { event_type: "CashDisbursed", from: "1", to: "2", fields: &["reserved"] }),
        Box::new(AddFields {
            event_type: "RequisitionSubmitted",
            from: "1",
            to: "2",
            fields: &["threshold", "eligible", "comment", "due"],
        }),
        Box::new(AddFields {
            event_type: "RequisitionApproved",
            from: "1",
            to: "2",
            fields: &["comment", "due"],
        }),
        Box::new(AddFields { event_type: "ChangesRequested", from: "1", to: "2", fields: &["deadline"] }),
        // Delegation (issue #13 [workflow]): decisions in one's own name.
        Box::new(AddFields {
            event_type: "RequisitionApproved",
            from: "2",
            to: "3",
            fields: &["on_behalf_of", "delegation_id"],
        }),
        Box::new(AddFields {
            event_type: "RequisitionRejected",
            from: "1",
            to: "2",
            fields: &["on_behalf_of", "delegation_id"],
        }),
        Box::new(AddFields {
            event_type: "ChangesRequested",
            from: "2",
            to: "3",
            fields: &["on_behalf_of", "delegation_id"],
        }),
        // Fund operations (issue #14 [treasury]): reorder level, minimum, auto-replenish.
        Box::new(AddFields {
            event_type: "FundOpened",
            from: "2",
            to: "3",
            fields: &["reorder_level", "minimum_balance", "auto_replenish"],
        }),
        // Categories (issue #14 [treasury]): none chosen; the free text stays a label.
        Box::new(AddFields {
            event_type: "RequisitionCreated",
            from: "2",
            to: "3",
            fields: &["category_id", "cost_centre_id"],
        }),
    ]
}

/// Brings one stored event to its current version.
pub fn upcast(upcasters: &[Box<dyn EventUpcaster>], mut event: SerializedEvent) -> SerializedEvent {
    for upcaster in upcasters {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            event = upcaster.upcast(event);
        }
    }
    event
}

/// Upcasts `event_type` from version `from` to `to` by adding `fields` as `null` (what the new
/// version records when the fact did not exist). Payloads are externally tagged
/// (`{"RequisitionCreated": {...}}`); a field already present is left as it is.
pub struct AddFields {
    pub event_type: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub fields: &'static [&'static str],
}

impl EventUpcaster for AddFields {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == self.event_type && event_version == self.from
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        if let Some(Value::Object(fields)) = event.payload.get_mut(self.event_type) {
            for field in self.fields {
                fields.entry(*field).or_insert(Value::Null);
            }
        }
        event.event_version = self.to.to_string();
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fund::FundEvent;
    use crate::requisition::RequisitionEvent;
    use serde_json::json;

    fn stored(event_type: &str, version: &str, payload: Value) -> SerializedEvent {
        SerializedEvent::new("x".into(), 1, "t".into(), event_type.into(), version.into(), payload, json!({}))
    }

    #[test]
    fn a_version_1_requisition_created_reads_as_an_unscoped_uncategorised_version_3() {
        let v1 = json!({"RequisitionCreated": {"requisition_id": "0193fb1c-4b80-7a3e-9c51-6f0a8d2e4b17",
            "fund_id": "0193fb1c-4b80-7a3e-9c51-6f0a8d2e4b18", "currency": "KES", "amount": "10.00",
            "purpose": "p", "payee": null, "category": "office",
            "requester_id": "0193fb1c-4b80-7a3e-9c51-6f0a8d2e4b19"}});
        let event = upcast(&upcasters(), stored("RequisitionCreated", "1", v1));
        assert_eq!(event.event_version, "3", "1 → 2 → 3 in turn");
        match serde_json::from_value::<RequisitionEvent>(event.payload).unwrap() {
            RequisitionEvent::RequisitionCreated {
                origin,
                unit,
                category,
                category_id,
                cost_centre_id,
                ..
            } => {
                assert_eq!((origin, unit, category_id, cost_centre_id), (None, None, None, None));
                assert_eq!(category.as_deref(), Some("office"), "the free text stays, as a label");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_version_1_fund_opened_reads_as_an_unscoped_version_2_and_current_versions_pass() {
        let v1 = json!({"FundOpened": {"fund_id": "0193fb1c-4b80-7a3e-9c51-6f0a8d2e4b18", "name": "F",
            "currency": "KES", "float": "100.00", "custodian_id": null,
            "opened_by": "0193fb1c-4b80-7a3e-9c51-6f0a8d2e4b19"}});
        let event = upcast(&upcasters(), stored("FundOpened", "1", v1));
        assert_eq!(event.event_version, "3", "1 → 2 → 3 in turn");
        assert!(matches!(
            serde_json::from_value(event.payload).unwrap(),
            FundEvent::FundOpened {
                unit: None,
                reorder_level: None,
                minimum_balance: None,
                auto_replenish: None,
                ..
            }
        ));
        let v3 = stored("FundOpened", "3", json!({"FundOpened": {}}));
        assert_eq!(upcast(&upcasters(), v3).payload, json!({"FundOpened": {}}));
    }

    #[test]
    fn a_version_1_disbursement_reads_as_cash_paid_at_once() {
        let id = "0193fb1c-4b80-7a3e-9c51-6f0a8d2e4b19";
        let v1 = json!({"CashDisbursed": {"payment_id": id, "requisition_id": id, "amount": "10.00",
            "balance_after": "90.00", "method": "cash", "reference": null, "paid_by": id}});
        let event = upcast(&upcasters(), stored("CashDisbursed", "1", v1));
        assert_eq!(event.event_version, "2");
        assert!(matches!(
            serde_json::from_value(event.payload).unwrap(),
            FundEvent::CashDisbursed { reserved: None, .. }
        ));
    }

    #[test]
    fn decisions_recorded_before_delegation_read_as_in_the_deciders_own_name() {
        let id = "0193fb1c-4b80-7a3e-9c51-6f0a8d2e4b19";
        let v1 = json!({"RequisitionApproved": {"step": 0, "role": "department_head", "approver_id": id,
            "completes_chain": false}});
        let event = upcast(&upcasters(), stored("RequisitionApproved", "1", v1));
        assert_eq!(event.event_version, "3", "1 → 2 → 3 in turn");
        match serde_json::from_value::<RequisitionEvent>(event.payload).unwrap() {
            RequisitionEvent::RequisitionApproved { on_behalf_of, delegation_id, comment, due, .. } => {
                assert_eq!((on_behalf_of, delegation_id, comment, due), (None, None, None, None))
            }
            other => panic!("{other:?}"),
        }
        let v1 =
            json!({"RequisitionRejected": {"step": 0, "role": "cfo", "rejected_by": id, "reason": "no"}});
        let event = upcast(&upcasters(), stored("RequisitionRejected", "1", v1));
        assert_eq!(event.event_version, "2");
        assert!(matches!(
            serde_json::from_value(event.payload).unwrap(),
            RequisitionEvent::RequisitionRejected { on_behalf_of: None, delegation_id: None, .. }
        ));
        let v1 = json!({"ChangesRequested": {"step": 0, "role": "cfo", "requested_by": id, "reason": "why"}});
        let event = upcast(&upcasters(), stored("ChangesRequested", "1", v1));
        assert_eq!(event.event_version, "3");
        assert!(matches!(
            serde_json::from_value(event.payload).unwrap(),
            RequisitionEvent::ChangesRequested { deadline: None, on_behalf_of: None, .. }
        ));
    }
}
