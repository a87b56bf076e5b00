//! Projection engine tests against real PostgreSQL.

mod batching;
mod engine;
