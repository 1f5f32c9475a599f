//! Request coalescing: concurrent reservations of one stock shard go to Redis together.
//!
//! Each shard that sees reservations gets a lane: a task that takes the requests queued on it,
//! up to `max_batch`, and sends them as one `reserve.lua` call, which handles them in arrival
//! order. Up to `batches_in_flight` calls per lane run at once; while they do, new requests
//! queue, so batches grow with the load and a lone request goes out at once.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::connection::Connection;
use crate::error::StoreError;
use crate::keys::ShardKeys;
use crate::replicas::{self, ReplicaAcks};
use crate::scripts::{Reply, ReserveArgs};

type Answer = Result<Reply, StoreError>;

struct Job {
    args: ReserveArgs,
    answer: oneshot::Sender<Answer>,
}

/// The lanes of one store, by stock shard.
#[derive(Debug)]
pub(crate) struct Coalescer {
    lanes: DashMap<String, mpsc::Sender<Job>>,
    /// Calls in flight at once go out on different connections, when there are several.
    conns: Arc<[Connection]>,
    max_batch: usize,
    in_flight: usize,
    timeout: Duration,
    acks: ReplicaAcks,
}

/// Requests one lane queues before callers wait for room.
const LANE_CAPACITY: usize = 8192;

impl Coalescer {
    pub(crate) fn new(
        conns: Vec<Connection>,
        max_batch: usize,
        in_flight: usize,
        timeout: Duration,
        acks: ReplicaAcks,
    ) -> Self {
        Self {
            lanes: DashMap::new(),
            conns: conns.into(),
            max_batch,
            in_flight,
            timeout,
            acks,
        }
    }

    /// Reserves through the lane of `keys`' shard.
    pub(crate) async fn reserve(&self, keys: &ShardKeys, args: ReserveArgs) -> Answer {
        let lane = match self.lanes.get(&keys.stock) {
            Some(lane) => lane.clone(),
            None => self
                .lanes
                .entry(keys.stock.clone())
                .or_insert_with(|| self.open_lane(keys.clone()))
                .clone(),
        };
        let (answer, answered) = oneshot::channel();
        let job = Job { args, answer };
        // Queueing and the call share one deadline: a command timeout for each.
        let wait = self.timeout * 2;
        let deadline = tokio::time::Instant::now() + wait;
        let sent = tokio::time::timeout_at(deadline, lane.send(job)).await;
        match sent {
            Err(_) => return Err(StoreError::Timeout(wait)),
            Ok(Err(_)) => return Err(StoreError::CoalescerStopped),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, answered).await {
            Err(_) => Err(StoreError::Timeout(wait)),
            Ok(Err(_)) => Err(StoreError::CoalescerStopped),
            Ok(Ok(answer)) => answer,
        }
    }

    fn open_lane(&self, keys: ShardKeys) -> mpsc::Sender<Job> {
        let (sender, receiver) = mpsc::channel(LANE_CAPACITY);
        tokio::spawn(run_lane(
            receiver,
            Arc::clone(&self.conns),
            keys,
            self.max_batch,
            Arc::new(Semaphore::new(self.in_flight)),
            self.acks,
        ));
        sender
    }
}

/// Runs until the store (which holds every sender) is dropped.
async fn run_lane(
    mut jobs: mpsc::Receiver<Job>,
    conns: Arc<[Connection]>,
    keys: ShardKeys,
    max_batch: usize,
    slots: Arc<Semaphore>,
    acks: ReplicaAcks,
) {
    let keys = Arc::new(keys);
    let mut sent = 0usize;
    loop {
        // A slot first, then the jobs: while every slot is busy, jobs pile up into one batch.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = jobs.recv().await else {
            return;
        };
        let mut batch = Vec::with_capacity(max_batch.min(64));
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        sent = sent.wrapping_add(1);
        let (conn, keys) = (conns[sent % conns.len()].clone(), Arc::clone(&keys));
        tokio::spawn(async move {
            let requests: Vec<&ReserveArgs> = batch.iter().map(|job| &job.args).collect();
            let replies = replicas::reserve(&conn, &keys, 0, &requests, acks).await;
            drop(requests);
            match replies {
                Ok(replies) => {
                    for (job, reply) in batch.into_iter().zip(replies) {
                        let _ = job.answer.send(Ok(reply));
                    }
                }
                Err(err) => {
                    // Each caller gets the failure; redis errors clone, ours are rebuilt.
                    for job in batch {
                        let _ = job.answer.send(Err(err.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}
