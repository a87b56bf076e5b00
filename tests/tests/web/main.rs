//! The pages (issue #16) in a real browser: headless Chromium through WebDriver against the
//! server on a random port, on a fresh database per test (`TestApp::spawn`). What a person
//! would check after a deploy: signing in and out, the dashboard and its charts, errors shown
//! as pages, CSRF refusals, a phone-sized screen, and the headers that protect the pages.
//!
//! Screenshots of every page visited: `<target dir>/screenshots/` (see `browser`).

mod admin;
mod browser;
mod pages;
mod release;
mod requisitions;
mod treasury;
