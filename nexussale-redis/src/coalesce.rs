//! Request coalescing: concurrent reservations go to Redis together.
//!
//! A lane is a task that takes the requests queued on it, up to `max_batch`, and sends them as
//! one `reserve.lua` call, which handles each shard's in arrival order. On one Redis (or behind
//! Sentinel) every sale shares one lane, so purchases spread over many sales still go out in
//! batches (one lane per shard made 10,000 sales one call per purchase); on a Cluster a script
//! reaches one hash slot only, so each stock shard has its own. Up to `batches_in_flight` calls
//! per lane run at once; while they do, new requests queue, so batches grow with the load and a
//! lone request goes out at once. A lane idle for
//! [`RedisConfig::coalesce_lane_idle`](crate::RedisConfig::coalesce_lane_idle) ends: lanes that
//! lived for ever kept a task and a queue for every shard ever bought from.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::connection::Connection;
use crate::error::StoreError;
use crate::keys::ShardKeys;
use crate::replicas::{self, ReplicaAcks};
use crate::sale_info::SaleInfo;
use crate::scripts::{Reply, ReserveArgs, ShardBatch};

type Answer = Result<Reply, StoreError>;

struct Job {
    /// The sale, and which of its shards to reserve on.
    info: Arc<SaleInfo>,
    shard: usize,
    args: ReserveArgs,
    answer: oneshot::Sender<Answer>,
}

impl Job {
    fn keys(&self) -> &ShardKeys {
        &self.info.shards[self.shard]
    }
}

/// The lane every shard shares where one script reaches every key.
const SHARED_LANE: &str = "";

/// The lanes of one store: one, or one per stock shard on a Cluster.
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

    /// Lanes open now: bought from within the idle time, one (one per stock shard on a Cluster).
    pub(crate) fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Reserves on `info`'s shard `shard` through its lane.
    pub(crate) async fn reserve(
        &self,
        info: &Arc<SaleInfo>,
        shard: usize,
        args: ReserveArgs,
    ) -> Answer {
        let (answer, answered) = oneshot::channel();
        let lane_key = if self.conns[0].reaches_every_key() {
            SHARED_LANE
        } else {
            info.shards[shard].stock.as_str()
        };
        let mut job = Job {
            info: Arc::clone(info),
            shard,
            args,
            answer,
        };
        // Queueing and the call share one deadline: a command timeout for each.
        let wait = self.timeout * 2;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let lane = match self.lanes.get(lane_key) {
                Some(lane) => lane.clone(),
                None => self
                    .lanes
                    .entry(lane_key.to_owned())
                    .or_insert_with(|| self.open_lane(lane_key.to_owned()))
                    .clone(),
            };
            match tokio::time::timeout_at(deadline, lane.send(job)).await {
                Err(_) => return Err(StoreError::Timeout(wait)),
                Ok(Ok(())) => break,
                // The lane ended idle (it closed its queue first, so the job never entered
                // it): into a new one. The store holds every lane, so this is not a shutdown.
                Ok(Err(mpsc::error::SendError(back))) => {
                    self.lanes
                        .remove_if(lane_key, |_, open| open.same_channel(&lane));
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

    fn open_lane(&self, key: String) -> mpsc::Sender<Job> {
        let (sender, receiver) = mpsc::channel(LANE_CAPACITY);
        tokio::spawn(run_lane(
            receiver,
            Lane {
                conns: Arc::clone(&self.conns),
                lanes: Arc::downgrade(&self.lanes),
                key,
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
    /// Its key in `lanes`.
    key: String,
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
        key,
        max_batch,
        slots,
        idle,
        acks,
    } = lane;
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
                    lanes.remove_if(&key, |_, open| open.is_closed());
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
        let conn = conns[sent % conns.len()].clone();
        tokio::spawn(async move {
            send(&conn, batch, acks).await;
            drop(slot);
        });
    }
}

/// Sends `batch` as one call, each shard's jobs together in arrival order, and answers each job.
async fn send(conn: &Connection, batch: Vec<Job>, acks: ReplicaAcks) {
    // The shards in the order of their first job, each with its jobs' positions.
    let mut shards: Vec<Vec<usize>> = Vec::new();
    let mut shard_of: HashMap<&str, usize> = HashMap::new();
    for (position, job) in batch.iter().enumerate() {
        let shard = *shard_of
            .entry(job.keys().stock.as_str())
            .or_insert_with(|| {
                shards.push(Vec::new());
                shards.len() - 1
            });
        shards[shard].push(position);
    }
    let requests: Vec<Vec<&ReserveArgs>> = shards
        .iter()
        .map(|positions| positions.iter().map(|&at| &batch[at].args).collect())
        .collect();
    let batches: Vec<ShardBatch<'_>> = shards
        .iter()
        .zip(&requests)
        .map(|(positions, requests)| ShardBatch {
            keys: batch[positions[0]].keys(),
            deposit: 0,
            requests,
        })
        .collect();
    let answers = replicas::reserve_batches(conn, &batches, acks).await;
    drop(batches);
    drop(requests);
    drop(shard_of);
    let jobs = batch.len();
    let mut answer_to: Vec<Option<oneshot::Sender<Answer>>> =
        batch.into_iter().map(|job| Some(job.answer)).collect();
    let mut answer = |at: usize, reply: Answer| {
        if let Some(to) = answer_to[at].take() {
            let _ = to.send(reply);
        }
    };
    match answers {
        Ok(answers) => {
            for (positions, replies) in shards.iter().zip(answers) {
                match replies {
                    Ok(replies) if replies.len() == positions.len() => {
                        for (&at, reply) in positions.iter().zip(replies) {
                            answer(at, Ok(reply));
                        }
                    }
                    Ok(_) => {
                        for &at in positions {
                            answer(
                                at,
                                Err(StoreError::corrupt(
                                    "a shard answered another count of reservations",
                                )),
                            );
                        }
                    }
                    // This shard's failure (regressed) only: the others' answers stand.
                    Err(err) => {
                        for &at in positions {
                            answer(at, Err(err.clone()));
                        }
                    }
                }
            }
        }
        // Each caller gets the failure; redis errors clone, ours are rebuilt.
        Err(err) => {
            for at in 0..jobs {
                answer(at, Err(err.clone()));
            }
        }
    }
}
