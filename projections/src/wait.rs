//! Read-your-writes: wait until the live projections have applied the event at a position.

use sqlx::PgPool;
use std::time::{Duration, Instant};

/// True once every live version of `projections` has applied the event at `position` (its
/// `(transaction_id, global_position)` is at or before the checkpoint). Polls until
/// `timeout`; false when it runs out. A position beyond the store's end is never reached, and
/// neither is any position while one of the projections has no live version.
pub async fn wait_for(
    pool: &PgPool,
    projections: &[&str],
    position: i64,
    timeout: Duration,
) -> sqlx::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        let reached: bool = sqlx::query_scalar(
            "SELECT coalesce(bool_and((e.transaction_id, e.global_position) <= (c.last_transaction_id, c.last_position)), false)
                    AND count(*) = cardinality($1)
             FROM projection_checkpoints c
             JOIN events e ON e.global_position = $2
             WHERE c.name = ANY($1) AND c.state = $3",
        )
        .bind(projections)
        .bind(position)
        .bind(crate::CheckpointState::Live)
        .fetch_one(pool)
        .await?;
        if reached || position <= 0 {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}
