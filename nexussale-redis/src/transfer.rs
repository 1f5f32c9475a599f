//! Moving units between the shards of a sharded sale: a buyer whose home shard ran out is served
//! from the others (`withdraw.lua` → deposit with the reservation → `settle.lua`), so a sharded
//! sale sells out only when every shard has.

use std::time::Duration;

use futures::future::try_join_all;
use redis::AsyncCommands;

use crate::connection::Connection;
use crate::error::StoreError;
use crate::replicas::{self, ReplicaAcks};
use crate::sale_info::SaleInfo;
use crate::scripts::{self, Reply, ReserveArgs};

/// Rounds of moving units from other shards before a sharded sale answers sold out.
const MAX_TRANSFER_ROUNDS: usize = 16;

/// The home shard of a sharded sale ran out (`available` left there): move units from the other
/// shards to it and try again there, until it succeeds or every other shard is empty with
/// nothing on its way.
pub(crate) async fn reserve_with_transfers(
    conn: &Connection,
    info: &SaleInfo,
    home: usize,
    args: &ReserveArgs,
    mut available: u64,
    acks: ReplicaAcks,
) -> Result<Reply, StoreError> {
    let n = info.shards.len();
    let wanted = u64::from(args.quantity);
    for round in 0..MAX_TRANSFER_ROUNDS {
        let (mut gathered, mut in_transit) = (0u64, 0u64);
        let mut sources = Vec::new();
        for shard in (1..n).map(|step| (home + step) % n) {
            if gathered + available >= wanted {
                break;
            }
            let still_wanted = wanted - gathered - available;
            let (taken, transit) =
                scripts::withdraw(conn.clone(), &info.shards[shard], still_wanted).await?;
            gathered += taken;
            in_transit += transit.saturating_sub(taken);
            if taken > 0 {
                sources.push((shard, taken));
            }
        }
        if gathered == 0 {
            // Units can also be leaving the home shard for another buyer's home.
            let home_transit: Option<u64> = conn
                .clone()
                .hget(&info.shards[home].stock, "transit")
                .await?;
            if in_transit + home_transit.unwrap_or(0) == 0 {
                return Ok(Reply::SoldOut { available });
            }
            // Units are on their way from a shard to another: look again once they land.
            tokio::time::sleep(Duration::from_millis(1 << round.min(4))).await;
            continue;
        }
        // The deposit and the reservation are one script call: the units cannot go astray.
        let replies = replicas::reserve(conn, &info.shards[home], gathered, &[args], acks).await;
        for (shard, taken) in sources {
            scripts::settle(conn.clone(), &info.shards[shard], taken).await?;
        }
        match replies?.pop() {
            Some(Reply::SoldOut { available: now }) => available = now,
            Some(reply) => return Ok(reply),
            None => return Err(StoreError::corrupt("no reply to a reservation")),
        }
    }
    Ok(Reply::SoldOut { available })
}

/// The units available on every shard but `home`, each read once; units on their way to
/// another shard are still for sale.
pub(crate) async fn available_elsewhere(
    conn: &Connection,
    info: &SaleInfo,
    home: usize,
) -> Result<u64, StoreError> {
    let counts = try_join_all(
        info.shards
            .iter()
            .enumerate()
            .filter(|(shard, _)| *shard != home)
            .map(|(_, keys)| {
                let mut conn = conn.clone();
                async move {
                    let (available, transit): (Option<u64>, Option<u64>) =
                        conn.hmget(&keys.stock, &["available", "transit"]).await?;
                    Ok::<_, StoreError>(available.unwrap_or(0) + transit.unwrap_or(0))
                }
            }),
    )
    .await?;
    Ok(counts.into_iter().sum())
}
