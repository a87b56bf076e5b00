//! End-to-end HTTP tests: one binary, one module per area.

mod auth;
mod caches;
mod concurrency;
mod edge;
mod flow;
mod group_commit;
mod idempotency;
mod import;
mod input;
mod integrity;
mod login_throttle;
mod organisation;
mod outage;
mod reads;
mod rules;
mod snapshots;
mod users;
mod visibility;
