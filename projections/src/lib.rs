//! Projection engine and read models: tails the event store in global order and builds the
//! read models the API queries. Built under the [projections] issue; this crate is empty until then.
