//! The Petty Cash HTTP API (axum): authentication, routes, errors, OpenAPI, start-up, the
//! embedded default database and the demo organisation; and the server-rendered pages (`web`). The `pettycash` binary in `main.rs`
//! only parses arguments and calls into this library.

pub mod cli;
pub mod config;
pub mod database;
pub mod db_health;
pub mod demo;
pub mod embedded_pg;
pub mod error;
pub mod extract;
pub mod input;
pub mod mail;
pub mod openapi;
pub mod reports;
pub mod routes;
pub mod startup;
pub mod state;
pub mod upload;
pub mod web;
