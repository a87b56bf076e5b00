//! Upcasters for superseded event versions. Applied on every read of stored events: by the
//! command side when folding a stream and by the projection tailer. Stored rows are never
//! edited; a shape change is a new `event_version` plus an entry here.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};

/// All upcasters, in the order they apply. None yet: every event type is at version 1.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
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
