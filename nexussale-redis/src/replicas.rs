//! Replica acknowledgement ([`RedisConfig::replica_acks`](crate::RedisConfig::replica_acks)): a
//! write is answered only once `WAIT` confirms that enough replicas have it, so that a failover
//! right after the answer does not take it away.

use std::time::Duration;

use nexussale_core::{OrderId, ReleaseReason};

use crate::connection::Connection;
use crate::error::StoreError;
use crate::keys::ShardKeys;
use crate::scripts::{self, Reply, ReserveArgs, ShardBatch};

/// How many replicas must have a write before it is answered, and how long `WAIT` may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplicaAcks {
    pub(crate) replicas: usize,
    pub(crate) timeout: Duration,
}

impl ReplicaAcks {
    /// `WAIT replicas timeout` on `conn`, after the writes it sent, on the node that holds `key`
    /// (the shard's stock hash; on a Cluster, the primary serving its slot): they are on
    /// `replicas` replicas, or the answer is [`StoreError::ReplicasBehind`] (retryable). Nothing
    /// when no acknowledgement is asked for.
    ///
    /// `WAIT` counts the replicas that acknowledged everything this connection wrote so far: one
    /// call covers a whole coalesced batch, and every write queued on the connection before it.
    pub(crate) async fn wait(self, conn: &mut Connection, key: &str) -> Result<(), StoreError> {
        if self.replicas == 0 {
            return Ok(());
        }
        // 0 would mean "forever".
        let millis = self.timeout.as_millis().clamp(1, u128::from(u32::MAX));
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.replicas).arg(millis.to_string());
        let acknowledged: i64 = conn.query_on_node_of(&wait, key).await?;
        let acknowledged = usize::try_from(acknowledged).unwrap_or(0);
        if acknowledged < self.replicas {
            return Err(StoreError::ReplicasBehind {
                wanted: self.replicas,
                acknowledged,
                within: self.timeout,
            });
        }
        Ok(())
    }
}

/// `reserve.lua` for `requests` on one shard (after adding `deposit` units moved from other
/// shards), answered once `acks` replicas have what it wrote; see [`reserve_batches`].
pub(crate) async fn reserve(
    conn: &Connection,
    keys: &ShardKeys,
    deposit: u64,
    requests: &[&ReserveArgs],
    acks: ReplicaAcks,
) -> Result<Vec<Reply>, StoreError> {
    let batch = ShardBatch {
        keys,
        deposit,
        requests,
    };
    reserve_batches(conn, &[batch], acks)
        .await?
        .pop()
        .ok_or_else(|| StoreError::corrupt("reserve answered no shard"))?
}

/// One `reserve.lua` call for every shard of `batches`, answered once `acks` replicas have what
/// it wrote (one `WAIT` for the whole call). Short of that the call fails with
/// [`StoreError::ReplicasBehind`] and the reservations it made are released (see
/// [`abort_unconfirmed`]). The one path of every reservation, batched or not.
pub(crate) async fn reserve_batches(
    conn: &Connection,
    batches: &[ShardBatch<'_>],
    acks: ReplicaAcks,
) -> Result<Vec<Result<Vec<Reply>, StoreError>>, StoreError> {
    let answers = scripts::reserve_batches(conn.clone(), batches).await?;
    let wrote = answers
        .iter()
        .any(|answer| answer.as_ref().is_ok_and(|replies| scripts::wrote(replies)));
    if let (true, Some(first)) = (wrote, batches.first())
        && let Err(err) = acks.wait(&mut conn.clone(), &first.keys.stock).await
    {
        for (batch, answer) in batches.iter().zip(&answers) {
            if let Ok(replies) = answer {
                abort_unconfirmed(conn, batch.keys, batch.requests, replies).await;
            }
        }
        return Err(err);
    }
    Ok(answers)
}

/// Releases, as `Aborted`, the reservations among `requests` that `replies` says were made: the
/// replicas did not confirm them, so they are answered as failed, and their units go back now
/// instead of at their expiry. Best effort: one this cannot release (Redis failing too) is
/// returned by the sweeper at its expiry, as a reservation whose answer was lost.
async fn abort_unconfirmed(
    conn: &Connection,
    keys: &ShardKeys,
    requests: &[&ReserveArgs],
    replies: &[Reply],
) {
    let made: Vec<OrderId> = requests
        .iter()
        .zip(replies)
        .filter(|(_, reply)| matches!(reply, Reply::Reserved { .. }))
        .map(|(request, _)| request.order_id)
        .collect();
    if made.is_empty() {
        return;
    }
    // Answered as failed to everyone and freeing its key: nothing needs it after its expiry.
    let released = scripts::release(conn.clone(), keys, &made, ReleaseReason::Aborted).await;
    if let Err(err) = released {
        tracing::warn!(orders = made.len(), error = %err, "could not release reservations the replicas did not confirm; they are returned at their expiry");
    }
}
