//! End-to-end HTTP tests: one binary, one module per area.

mod auth;
mod caches;
mod concurrency;
mod deadlines;
mod delegation;
mod edge;
mod flow;
mod group_commit;
mod idempotency;
mod import;
mod input;
mod integrity;
mod invitations;
mod login_throttle;
mod mail;
mod organisation;
mod outage;
mod reads;
mod review;
mod routing;
mod rules;
mod settings;
mod snapshots;
mod urgency;
mod users;
mod visibility;
