//! Request coalescing: concurrent reservations of one stock shard go to Redis together.
//!
//! Each shard that sees reservations gets a lane: a task that takes the requests queued on it,
//! up to `max_batch`, and sends them as one `reserve.lua` call, which handles them in arrival
//! order. Up to `batches_in_flight` calls per lane run at once; while they do, new requests
//! queue, so batches grow with the load and a lone request goes out at once. A lane idle for
//! [`RedisConfig::coalesce_lane_idle`](crate::RedisConfig::coalesce_lane_idle) ends: lanes that
//! lived for ever kept a task and a queue for every sale ever bought from.

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
    lanes: Arc<DashMap<String, mpsc::Sender<Job>>>,
    /// Calls in flight at once go out on different connections, when there are several.
    conns: Arc<[Connection]>,
    max_batch: usize,
    in_flight: usize,
    timeout: Duration,
    idle: Duration,
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
        idle: Duration,
        acks: ReplicaAcks,
    ) -> Self {
        Self {
            lanes: Arc::default(),
            conns: conns.into(),
            max_batch,
            in_flight,
            timeout,
            idle,
            acks,
        }
    }

    /// Lanes open now (one per stock shard bought from within the idle time).
    pub(crate) fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Reserves through the lane of `keys`' shard.
    pub(crate) async fn reserve(&self, keys: &ShardKeys, args: ReserveArgs) -> Answer {
        let (answer, answered) = oneshot::channel();
        let mut job = Job { args, answer };
        // Queueing and the call share one deadline: a command timeout for each.
        let wait = self.timeout * 2;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let lane = match self.lanes.get(&keys.stock) {
                Some(lane) => lane.clone(),
                None => self
                    .lanes
                    .entry(keys.stock.clone())
                    .or_insert_with(|| self.open_lane(keys.clone()))
                    .clone(),
            };
            match tokio::time::timeout_at(deadline, lane.send(job)).await {
                Err(_) => return Err(StoreError::Timeout(wait)),
                Ok(Ok(())) => break,
                // The lane ended idle (it closed its queue first, so the job never entered
                // it): into a new one. The store holds every lane, so this is not a shutdown.
                Ok(Err(mpsc::error::SendError(back))) => {
                    self.lanes
                        .remove_if(&keys.stock, |_, open| open.same_channel(&lane));
                    job = back;
                }
            }
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
            Lane {
                conns: Arc::clone(&self.conns),
                lanes: Arc::downgrade(&self.lanes),
                keys,
                max_batch: self.max_batch,
                slots: Arc::new(Semaphore::new(self.in_flight)),
                idle: self.idle,
                acks: self.acks,
            },
        ));
        sender
    }
}

/// What a lane's task works with.
struct Lane {
    conns: Arc<[Connection]>,
    /// The store's lanes, to leave when idle (weak: a lane does not keep the store's alive).
    lanes: std::sync::Weak<DashMap<String, mpsc::Sender<Job>>>,
    keys: ShardKeys,
    max_batch: usize,
    slots: Arc<Semaphore>,
    idle: Duration,
    acks: ReplicaAcks,
}

/// Runs until the store (which holds every sender) is dropped, or until no job came for the
/// idle time: then the queue is closed (a sender finds it closed and opens a new lane), what it
/// still holds is sent, and the lane leaves the store's map.
async fn run_lane(mut jobs: mpsc::Receiver<Job>, lane: Lane) {
    let Lane {
        conns,
        lanes,
        keys,
        max_batch,
        slots,
        idle,
        acks,
    } = lane;
    let stock_key = keys.stock.clone();
    let keys = Arc::new(keys);
    let mut sent = 0usize;
    let mut closing = false;
    loop {
        // A slot first, then the jobs: while every slot is busy, jobs pile up into one batch.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let first = match tokio::time::timeout(idle, jobs.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                if closing && let Some(lanes) = lanes.upgrade() {
                    lanes.remove_if(&stock_key, |_, open| open.is_closed());
                }
                return;
            }
            Err(_) => {
                jobs.close();
                closing = true;
                continue;
            }
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
