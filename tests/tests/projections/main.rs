//! Projection engine tests against real PostgreSQL.

mod engine;
