//! Test harness lives here.
