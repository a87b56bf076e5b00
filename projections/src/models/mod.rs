//! Read models. Each folds a batch in memory on top of the rows it touches, then writes them
//! back with one set-based statement per table (catch-up speed depends on it).

pub mod cash;
pub mod requisitions;
