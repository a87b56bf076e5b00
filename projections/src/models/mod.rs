//! Read models, and the side-effecting `notifications` (mail) and `alerts`. Each folds a batch in memory on top of the rows it touches, then writes them
//! back with one set-based statement per table (catch-up speed depends on it).

pub mod alerts;
pub mod budgets;
pub mod cash;
pub mod notifications;
pub mod report_facts;
pub mod requisitions;

/// Storage settings of a small table whose rows are updated all the time (running totals, a
/// fund's row): vacuumed after a fixed number of dead rows, not after 20 % of the table, and
/// with room on each page so that updates stay on it (HOT: no index entry per update).
const HOT_TABLE: &str = "fillfactor = 50, autovacuum_vacuum_scale_factor = 0, \
     autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_cost_delay = 0";
/// Storage settings of a large table whose recent rows are updated: vacuum after 2 % dead.
const BUSY_TABLE: &str = "autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 2000";
