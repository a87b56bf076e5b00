//! The one way events are read in order: the SQL of every reader of the store in its
//! commit-safe global order `(transaction_id, global_position)` — the projection engine, its
//! read-ahead, the sealer, and `pettycash-replay` (verify, export, ledger, balance, history) —
//! and the one decoding of a row ([`crate::event::EventRow`], [`HashedRow`]; upcasting in
//! `EventRow::decode`).
//!
//! Three kinds of read:
//! - [`visible_after`]: the events after a cursor that no running transaction can still
//!   precede (`transaction_id < pg_snapshot_xmin(pg_current_snapshot())`), a batch at a time:
//!   what a live reader may consume without ever skipping an event committed late.
//! - [`in_order`]: everything a [`Filter`] selects, in the global order, streamed (the auditor's
//!   tools read a store at rest, or a replica, and never consume past the horizon).
//! - [`stream_prefixes`]: the events of some streams before given sequences, in stream order:
//!   what a projection that keeps no state of its own folds to know an aggregate as it stood
//!   before a batch (the `notifications` projection).
//!
//! Only the aggregate's own stream loads of the command side (`commands::store`) read events
//! otherwise: by stream and sequence, not in global order.

use crate::event::{HashedRow, EVENT_COLUMNS};
use crate::Projection;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgExecutor, PgPool};

/// The global order.
const ORDER: &str = "ORDER BY transaction_id, global_position";

/// Which columns a read decodes.
#[derive(Debug, Clone)]
pub struct Selection {
    columns: String,
}

impl Selection {
    /// Every column of an [`crate::event::EventRow`].
    pub fn events() -> Self {
        Self { columns: EVENT_COLUMNS.to_string() }
    }

    /// A [`HashedRow`]: an event and its stored hash.
    pub fn hashed() -> Self {
        Self { columns: format!("{EVENT_COLUMNS}, event_hash") }
    }

    /// What `p` reads: every event (the cursor and `events_applied` count them all), but the
    /// payload and metadata of aggregate types it does not use come back as JSON `null`, and
    /// so does all metadata for a projection that does not use it: PostgreSQL's jsonb-to-text
    /// output is the most expensive part of reading an event, and most projections use one
    /// aggregate type.
    pub fn for_projection(p: &dyn Projection) -> Self {
        let quote = |t: &str| format!("'{}'", t.replace('\'', "''"));
        let wanted = p.aggregate_types().map(|types| {
            let list = types.iter().map(|t| quote(t)).collect::<Vec<_>>().join(", ");
            let others = p.other_events().iter().map(|(aggregate_type, event_type)| {
                format!(
                    " OR (aggregate_type = {} AND event_type = {})",
                    quote(aggregate_type),
                    quote(event_type)
                )
            });
            format!("(aggregate_type IN ({list}){})", others.collect::<String>())
        });
        let only_wanted = |column: &str| match &wanted {
            None => column.to_string(),
            Some(wanted) => format!("CASE WHEN {wanted} THEN {column} ELSE 'null'::jsonb END AS {column}"),
        };
        let metadata =
            if p.uses_metadata() { only_wanted("metadata") } else { "'null'::jsonb AS metadata".into() };
        Self {
            columns: EVENT_COLUMNS.replace("payload", &only_wanted("payload")).replace("metadata", &metadata),
        }
    }
}

/// Where a read starts (exclusive).
#[derive(Debug, Clone, Copy)]
pub enum After<'a> {
    /// A checkpoint: the transaction id (as text: sqlx has no `xid8`) and position of the last
    /// event read.
    Cursor { transaction_id: &'a str, position: i64 },
    /// The event at this position (its transaction id is looked up).
    Event(i64),
}

/// Up to `limit` events after `after` that no running transaction can still precede, in the
/// global order, decoded as `R` (`EventRow` or [`HashedRow`], matching `selection`).
pub async fn visible_after<'c, R, E>(
    executor: E,
    selection: &Selection,
    after: After<'_>,
    limit: i64,
) -> sqlx::Result<Vec<R>>
where
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    E: PgExecutor<'c>,
{
    let (cursor, txid, position) = match after {
        After::Cursor { transaction_id, position } => {
            ("($1::text::xid8, $2)", Some(transaction_id), position)
        }
        After::Event(position) => {
            ("((SELECT transaction_id FROM events WHERE global_position = $2), $2)", None, position)
        }
    };
    sqlx::query_as(&format!(
        "SELECT {} FROM events
         WHERE (transaction_id, global_position) > {cursor}
           AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
         {ORDER}
         LIMIT $3",
        selection.columns
    ))
    .bind(txid)
    .bind(position)
    .bind(limit)
    // Unnamed statement: a custom plan for these cursor values every time. A cached generic
    // plan does not know the cursor and may not use the (transaction_id, global_position)
    // index range.
    .persistent(false)
    .fetch_all(executor)
    .await
}

/// What [`in_order`] reads.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Every event.
    Everything,
    /// The events at positions `from..=to`.
    Positions { from: i64, to: i64 },
    /// One fund's events recorded up to an instant.
    Fund { id: String, as_of: DateTime<Utc> },
    /// Every fund's events recorded up to an instant.
    Funds { as_of: DateTime<Utc> },
    /// The `PaymentReconciled` events (on requisitions) of payments from one fund, recorded up
    /// to an instant.
    Reconciliations { fund: String, as_of: DateTime<Utc> },
    /// Every event with this aggregate id (of any aggregate type), in *stream* order (by type,
    /// then sequence): one aggregate's history. Reads the whole table (no index leads with the
    /// id: ~200 ms on a million events); [`Filter::Stream`] when the type is known.
    Aggregate { id: String },
    /// One stream's events (type and id: the primary key), in sequence order.
    Stream { aggregate_type: String, id: String },
}

/// A read in order, prepared: [`InOrder::fetch`] streams it (the query text lives here, so the
/// stream may borrow it for as long as the caller reads).
#[derive(Debug, Clone)]
pub struct InOrder {
    sql: String,
    filter: Filter,
}

/// Every event `filter` selects, in the global order (an aggregate's history: in stream
/// order).
pub fn in_order(selection: &Selection, filter: Filter) -> InOrder {
    let columns = &selection.columns;
    let condition = match &filter {
        Filter::Everything => "true",
        Filter::Positions { .. } => "global_position BETWEEN $1 AND $2",
        Filter::Fund { .. } => "aggregate_type = 'fund' AND aggregate_id = $1 AND recorded_at <= $2",
        Filter::Funds { .. } => "aggregate_type = 'fund' AND recorded_at <= $1",
        Filter::Reconciliations { .. } => {
            "aggregate_type = 'requisition' AND event_type = 'PaymentReconciled' \
             AND payload -> 'PaymentReconciled' ->> 'fund_id' = $1 AND recorded_at <= $2"
        }
        Filter::Aggregate { .. } => "aggregate_id = $1",
        Filter::Stream { .. } => "aggregate_type = $1 AND aggregate_id = $2",
    };
    let order = match filter {
        Filter::Aggregate { .. } => "ORDER BY aggregate_type, sequence",
        Filter::Stream { .. } => "ORDER BY sequence",
        _ => ORDER,
    };
    InOrder { sql: format!("SELECT {columns} FROM events WHERE {condition} {order}"), filter }
}

impl InOrder {
    /// The rows, decoded as `R` (`EventRow` or [`HashedRow`], matching the selection).
    pub fn fetch<'a, R>(&'a self, pool: &'a PgPool) -> BoxStream<'a, sqlx::Result<R>>
    where
        R: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'a,
    {
        let q = sqlx::query_as::<_, R>(&self.sql);
        match &self.filter {
            Filter::Everything => q.fetch(pool),
            Filter::Positions { from, to } => q.bind(*from).bind(*to).fetch(pool),
            Filter::Fund { id, as_of } | Filter::Reconciliations { fund: id, as_of } => {
                q.bind(id).bind(*as_of).fetch(pool)
            }
            Filter::Funds { as_of } => q.bind(*as_of).fetch(pool),
            Filter::Aggregate { id } => q.bind(id).fetch(pool),
            Filter::Stream { aggregate_type, id } => q.bind(aggregate_type).bind(id).fetch(pool),
        }
    }

    /// How many events it reads (for progress).
    pub async fn count(&self, pool: &PgPool) -> sqlx::Result<i64> {
        let sql = format!("SELECT count(*) FROM ({}) AS selected", self.sql);
        let q = sqlx::query_scalar(&sql);
        match &self.filter {
            Filter::Everything => q.fetch_one(pool).await,
            Filter::Positions { from, to } => q.bind(*from).bind(*to).fetch_one(pool).await,
            Filter::Fund { id, as_of } | Filter::Reconciliations { fund: id, as_of } => {
                q.bind(id).bind(*as_of).fetch_one(pool).await
            }
            Filter::Funds { as_of } => q.bind(*as_of).fetch_one(pool).await,
            Filter::Aggregate { id } => q.bind(id).fetch_one(pool).await,
            Filter::Stream { aggregate_type, id } => q.bind(aggregate_type).bind(id).fetch_one(pool).await,
        }
    }
}

/// The events of the `aggregate_type` streams named in `before` (stream id, sequence) whose
/// sequence is below the one given, by stream and then sequence. Every such event committed
/// before the event at that sequence was written, so it is visible wherever that one is.
pub async fn stream_prefixes<'c, E: PgExecutor<'c>>(
    executor: E,
    aggregate_type: &str,
    before: &[(String, i64)],
) -> sqlx::Result<Vec<crate::EventRow>> {
    let (ids, sequences): (Vec<&str>, Vec<i64>) = before.iter().map(|(id, s)| (id.as_str(), *s)).unzip();
    sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events
         JOIN unnest($2::text[], $3::bigint[]) AS b(stream, before) ON aggregate_id = b.stream
         WHERE aggregate_type = $1 AND sequence < b.before
         ORDER BY aggregate_id, sequence"
    ))
    .bind(aggregate_type)
    .bind(ids)
    .bind(sequences)
    .fetch_all(executor)
    .await
}

/// For the sealer: the hashed events after the last seal's cursor.
pub async fn hashed_after(
    pool: &PgPool,
    transaction_id: &str,
    position: i64,
    limit: i64,
) -> sqlx::Result<Vec<HashedRow>> {
    visible_after(pool, &Selection::hashed(), After::Cursor { transaction_id, position }, limit).await
}
