//! `--waiting-room`: a drop through a waiting room. Every buyer joins before the opening. At the
//! opening everyone looks at their ticket once; the admitted buy in one burst (measured as the
//! plain sale's burst is) and the bench pays each order (as a payment service would), so the
//! stock sells out and the line must close; the rest poll on (politely: less often the further
//! back they stand), buying if admitted later. A sample of waiting buyers also listen to their
//! tickets' events, to time the sold-out notice.
//!
//! The audit adds to the burst's (nothing oversold, duplicated or lost): no purchase accepted
//! without a pass (the bench also tries some), the passes outstanding never above the rule (the
//! sale view, sampled every 100 ms), the admission order a random permutation of the join order
//! (Spearman's rank correlation, near 0), and every listener told `sold_out` within a second of
//! the last unit going.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use nexussale_core::CancellationToken;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::args::{Args, Secret};
use crate::http::{Connection, Target};
use crate::load::{self, Kind, Pacing};
use crate::{BenchError, audit, round, sale_path, server_pid};

/// A ticket as the server shows it (the fields the bench reads).
#[derive(Debug, Clone, Deserialize)]
struct Ticket {
    ticket: String,
    user: String,
    state: String,
    position: Option<u64>,
    ahead: Option<u64>,
    estimated_wait_secs: Option<u64>,
    pass: Option<String>,
}

/// The sale view's waiting room (the fields the sampler reads).
#[derive(Debug, Deserialize)]
struct SaleView {
    available: u64,
    per_user_limit: u64,
    waiting_room: Option<RoomView>,
}

#[derive(Debug, Deserialize)]
struct RoomView {
    overbook: f64,
    passes_outstanding: u64,
}

/// The summary line (shared/CONTRACT.md, "Waiting room": `admitted`, `without_pass`,
/// `admission_rank_correlation`, `sold_out_notice_s`; the rest are additions).
#[derive(Debug, Serialize)]
struct Summary {
    mode: &'static str,
    users: u64,
    stock: u64,
    joins_per_s: f64,
    joined_before_opening: u64,
    admitted: u64,
    accepted: u64,
    paid: u64,
    /// Buyers who read `sold_out` when they polled (every buyer not sold a unit).
    told_sold_out: u64,
    /// Listeners whose stream said `sold_out`.
    listeners_told: u64,
    /// Purchases accepted from buyers the bench never saw admitted, plus purchases sent without
    /// a pass that were accepted: must be 0.
    without_pass: u64,
    /// Spearman's ρ between join order and admission order, over buyers who joined before the
    /// opening and were admitted: near 0 for a fair draw.
    admission_rank_correlation: Option<f64>,
    /// From the last unit paid to the last listening waiter told `sold_out`, in seconds.
    sold_out_notice_s: Option<f64>,
    /// The same for buyers who poll, 99th percentile (their poll interval is in it).
    sold_out_notice_polling_p99_s: Option<f64>,
    listeners: u64,
    passes_samples: u64,
    passes_over_ceiling: u64,
    /// Buyers neither sold a unit nor told `sold_out` when the bench gave up waiting (the line
    /// never closed): must be 0.
    unresolved: u64,
    /// The opening's purchases by the admitted, fired as one burst (as the plain sale's):
    /// answers per second, and their 99th percentile latency.
    purchase_rps: f64,
    purchase_p99_ms: f64,
    polls: u64,
    errors: u64,
    persisted: Option<u64>,
    oversold: Option<u64>,
    duplicates: Option<u64>,
    lost: Option<u64>,
    elapsed_s: f64,
    server_rss_max_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What the buyers saw, shared by the workers.
#[derive(Default)]
struct Seen {
    /// Admission number (the pass's nonce) by user.
    admitted: HashMap<String, u64>,
    accepted: HashSet<String>,
    accepted_users: HashSet<String>,
    paid_at: Vec<Instant>,
    /// When each polling buyer read `sold_out`.
    told_at: Vec<Instant>,
    errors: u64,
    error_samples: Vec<String>,
    /// Buyers neither sold a unit nor told `sold_out` by the deadline.
    unresolved: u64,
}

impl Seen {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(what);
        }
    }
}

/// One buyer's next poll, soonest first.
#[derive(PartialEq, Eq)]
struct Due {
    at: Instant,
    user: u64,
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.at.cmp(&self.at).then(other.user.cmp(&self.user))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

pub(crate) async fn run(args: &Args) -> Result<bool, BenchError> {
    let started = Instant::now();
    let target = Target::parse(&args.url, Secret::text(&args.admin_token))?;
    let mut control = Connection::new(target.clone());
    let minter = crate::tokens::Minter::new(Secret::text(&args.jwt_secret))?;
    let tokens: Arc<Vec<Option<String>>> = Arc::new(
        (0..args.users)
            .map(|user| minter.token(&format!("user-{user}")))
            .collect::<Result<_, _>>()?,
    );

    // The opening: far enough ahead for every join (the server takes thousands a second).
    let lead = args
        .opens_in
        .unwrap_or_else(|| 3 + args.users / 4_000)
        .max(1);
    let opens_at = (Utc::now() + chrono::Duration::seconds(lead as i64)).trunc_subsecs(6);
    create(&mut control, args, opens_at).await?;
    let opens = Instant::now() + (opens_at - Utc::now()).to_std().unwrap_or_default();

    // Everyone joins, in shuffled order.
    let mut users: Vec<u64> = (0..args.users).collect();
    fastrand::shuffle(&mut users);
    let users = Arc::new(users);
    let join_path = format!("{}/queue", sale_path(&args.sku));
    let joins = {
        let (target, users, tokens) = (target.clone(), users.clone(), tokens.clone());
        load::fire(
            &target.clone(),
            args.users,
            args.concurrency,
            "join",
            move |job| {
                let user = users[job as usize];
                let body = format!(r#"{{"user":"user-{user}"}}"#);
                target.request(
                    Method::POST,
                    &join_path,
                    Some(body),
                    tokens[user as usize].as_deref(),
                )
            },
            |status, _| {
                if status == StatusCode::OK {
                    Kind::Success
                } else {
                    Kind::Error
                }
            },
            Pacing::default(),
        )
        .await?
    };
    if joins.count(Kind::Error) > 0 {
        return Err(BenchError::Usage(format!(
            "{} joins failed: {:?}",
            joins.count(Kind::Error),
            joins.sample_errors
        )));
    }
    // Join order: as the answers came back.
    let mut tickets: HashMap<u64, String> = HashMap::with_capacity(args.users as usize);
    let mut join_rank: HashMap<String, u64> = HashMap::new();
    for answer in &joins.answers {
        let Some(ticket) = answer
            .body
            .as_ref()
            .and_then(|body| serde_json::from_slice::<Ticket>(body).ok())
        else {
            continue;
        };
        let user = user_number(&ticket.user);
        // Joined before the opening: no place yet.
        if ticket.position.is_none() {
            join_rank.insert(ticket.user.clone(), join_rank.len() as u64);
        }
        tickets.insert(user, ticket.ticket);
    }
    let tickets = Arc::new(tickets);

    // A sample of waiters listens to its tickets' events from before the opening.
    let listen_count = args.waiting_room_listeners.min(args.users as usize);
    let listened: Vec<u64> = users.iter().rev().take(listen_count).copied().collect();
    let mut listeners = Vec::with_capacity(listened.len());
    for user in &listened {
        let path = format!("{}/queue/{}/events", sale_path(&args.sku), tickets[user]);
        listeners.push(listen(&target, path, tokens[*user as usize].clone()).await?);
    }

    let stop = CancellationToken::new();
    let rss = server_pid(args, &target)
        .map(|pid| crate::rss::sample_max(pid, Duration::from_millis(100), stop.clone()));
    let sampler = tokio::spawn(sample_passes(
        target.clone(),
        args.sku.clone(),
        stop.clone(),
    ));

    tokio::time::sleep_until(opens.into()).await;
    // Purchases without a pass, from buyers still in line: every one must be refused.
    let mut sneaks = 0;
    for user in users.iter().take(100.min(users.len())) {
        let request = target.request(
            Method::POST,
            &crate::purchase_path(&args.sku),
            Some(format!(r#"{{"user":"user-{user}"}}"#)),
            tokens[*user as usize].as_deref(),
        );
        let (status, _) = control.send(request).await?;
        if status.is_success() {
            sneaks += 1;
        }
    }

    // The opening: admission hands out the first passes within a few steps.
    settle_admissions(&mut control, &args.sku, args.stock.min(args.users)).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));

    // Everyone looks at once (the opening's poll storm): the admitted buy in one burst, as a
    // plain sale's buyers do, and pay; the rest poll on.
    let ticket_path = {
        let sku = args.sku.clone();
        let tickets = tickets.clone();
        move |user: u64| format!("{}/queue/{}", sale_path(&sku), tickets[&user])
    };
    let looks = {
        let (target, users, tokens, path) = (
            target.clone(),
            users.clone(),
            tokens.clone(),
            ticket_path.clone(),
        );
        load::fire(
            &target.clone(),
            args.users,
            args.concurrency,
            "look",
            move |job| {
                let user = users[job as usize];
                target.request(
                    Method::GET,
                    &path(user),
                    None,
                    tokens[user as usize].as_deref(),
                )
            },
            |status, _| {
                if status == StatusCode::OK {
                    Kind::Success
                } else {
                    Kind::Error
                }
            },
            Pacing::default(),
        )
        .await?
    };
    let polls_done = args.users;
    let mut admitted: Vec<(u64, String)> = Vec::new();
    let mut waiting: Vec<u64> = Vec::new();
    for answer in &looks.answers {
        let Some(ticket) = answer
            .body
            .as_ref()
            .and_then(|body| serde_json::from_slice::<Ticket>(body).ok())
        else {
            seen.lock()
                .error("a ticket could not be read at the opening".to_owned());
            continue;
        };
        let user = user_number(&ticket.user);
        match (ticket.state.as_str(), ticket.pass) {
            ("admitted", Some(pass)) => {
                seen.lock()
                    .admitted
                    .insert(ticket.user.clone(), nonce_of(&pass));
                admitted.push((user, pass));
            }
            ("waiting", _) => waiting.push(user),
            _ => seen.lock().told_at.push(Instant::now()),
        }
    }
    let admitted = Arc::new(admitted);
    let purchases = {
        let (target, admitted, tokens) = (target.clone(), admitted.clone(), tokens.clone());
        let path = crate::purchase_path(&args.sku);
        load::fire(
            &target.clone(),
            admitted.len() as u64,
            args.concurrency,
            "purchase",
            move |job| {
                let (user, pass) = &admitted[job as usize];
                let mut request = target.request(
                    Method::POST,
                    &path,
                    Some(format!(r#"{{"user":"user-{user}"}}"#)),
                    tokens[*user as usize].as_deref(),
                );
                if let Ok(value) = http::HeaderValue::from_str(pass) {
                    request.headers_mut().insert("admission-pass", value);
                }
                request
            },
            load::purchase_kind,
            Pacing::default(),
        )
        .await?
    };
    let orders: Vec<String> = purchases.accepted_ids().into_iter().collect();
    {
        let mut seen = seen.lock();
        for answer in &purchases.answers {
            if answer.kind == Kind::Error || answer.kind == Kind::Rejected {
                seen.error("a purchase with a pass was refused".to_owned());
            }
            if let Some(user) = answer
                .body
                .as_ref()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
                .and_then(|order| order["user"].as_str().map(str::to_owned))
            {
                seen.accepted_users.insert(user);
            }
        }
        seen.accepted.extend(orders.iter().cloned());
    }
    let orders = Arc::new(orders);
    let pays = {
        let (target, orders) = (target.clone(), orders.clone());
        load::fire(
            &target.clone(),
            orders.len() as u64,
            args.concurrency,
            "pay",
            move |job| {
                target.admin_request(
                    Method::POST,
                    &format!("/v1/orders/{}/pay", orders[job as usize]),
                    None,
                )
            },
            |status, _| {
                if status == StatusCode::OK {
                    Kind::Success
                } else {
                    Kind::Error
                }
            },
            Pacing::default(),
        )
        .await?
    };
    {
        let mut seen = seen.lock();
        for answer in &pays.answers {
            match answer.kind {
                Kind::Success => seen.paid_at.push(pays.started + answer.at),
                _ => seen.error("paying an order failed".to_owned()),
            }
        }
    }

    // The buyers still in line: polled soonest-due first by `concurrency` workers.
    let queue: Arc<Mutex<BinaryHeap<Due>>> = Arc::new(Mutex::new(
        waiting
            .iter()
            .map(|&user| Due {
                at: Instant::now(),
                user,
            })
            .collect(),
    ));
    let polls = Arc::new(AtomicU64::new(0));
    // A line that never closes must not hang the bench: past this, the buyers still waiting
    // count as unresolved.
    let deadline =
        opens + Duration::from_secs(args.wait_persisted.max(60) + 2 * args.pass_ttl.min(3600));
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let buyer = Buyer {
                connection: Connection::new(target.clone()),
                sku: args.sku.clone(),
                tickets: tickets.clone(),
                tokens: tokens.clone(),
                seen: seen.clone(),
                polls: polls.clone(),
            };
            tokio::spawn(buyer.work(queue.clone(), deadline))
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    stop.cancel();
    let (samples, over) = sampler.await?;
    // Listeners still open a few seconds after every buyer is done were never told.
    let mut told = Vec::new();
    let listening_until = tokio::time::Instant::now() + Duration::from_secs(5);
    for mut listener in listeners {
        match tokio::time::timeout_at(listening_until, &mut listener).await {
            Ok(Ok(Some(at))) => told.push(at),
            Ok(Ok(None)) => {}
            Ok(Err(err)) => return Err(err.into()),
            Err(_) => listener.abort(),
        }
    }

    let seen = std::mem::take(&mut *seen.lock());
    let last_paid = seen.paid_at.iter().max().copied();
    let notice =
        |at: &Instant| last_paid.map(|paid| at.saturating_duration_since(paid).as_secs_f64());
    let sold_out_notice_s = told.iter().filter_map(notice).reduce(f64::max);
    let mut polled: Vec<f64> = seen.told_at.iter().filter_map(notice).collect();
    polled.sort_by(f64::total_cmp);
    let polling_p99 = (!polled.is_empty())
        .then(|| polled[((polled.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)]);
    // The opening's burst of admitted buyers, as the plain sale's burst is measured.
    let purchase_rps = purchases.rps();
    let purchase_p99_ms = purchases.percentile_ms(0.99);
    let without_pass = sneaks
        + seen
            .accepted_users
            .iter()
            .filter(|user| !seen.admitted.contains_key(*user))
            .count() as u64;
    let correlation = rank_correlation(&join_rank, &seen.admitted);

    let audited = async {
        let orders = audit::wait_persisted(
            &mut control,
            &args.sku,
            &seen.accepted,
            args.wait_persisted(),
        )
        .await?;
        let sale = audit::sale(&mut control, &args.sku).await?;
        Ok::<_, BenchError>(audit::audit(&sale, &seen.accepted, &orders))
    }
    .await;
    let (findings, error) = match audited {
        Ok(findings) => (Some(findings), None),
        Err(err) => (None, Some(format!("the audit could not finish: {err}"))),
    };
    for sample in &seen.error_samples {
        eprintln!("error: {sample}");
    }
    let summary = Summary {
        mode: "waiting_room",
        users: args.users,
        stock: args.stock,
        joins_per_s: round(joins.rps(), 1),
        joined_before_opening: join_rank.len() as u64,
        admitted: seen.admitted.len() as u64,
        accepted: seen.accepted.len() as u64,
        paid: seen.paid_at.len() as u64,
        told_sold_out: seen.told_at.len() as u64,
        listeners_told: told.len() as u64,
        without_pass,
        admission_rank_correlation: correlation.map(|rho| round(rho, 4)),
        sold_out_notice_s: sold_out_notice_s.map(|s| round(s, 3)),
        sold_out_notice_polling_p99_s: polling_p99.map(|s| round(s, 3)),
        listeners: listen_count as u64,
        passes_samples: samples,
        passes_over_ceiling: over,
        purchase_rps: round(purchase_rps, 1),
        purchase_p99_ms: round(purchase_p99_ms, 3),
        unresolved: seen.unresolved,
        polls: polls_done + polls.load(Ordering::Relaxed),
        errors: seen.errors,
        persisted: findings.as_ref().map(|f| f.persisted),
        oversold: findings.as_ref().map(|f| f.oversold),
        duplicates: findings.as_ref().map(|f| f.duplicates),
        lost: findings.as_ref().map(|f| f.lost),
        elapsed_s: round(started.elapsed().as_secs_f64(), 3),
        server_rss_max_mb: rss.map(|max| round(max.load(Ordering::Relaxed) as f64 / 1024.0, 1)),
        error,
    };
    let everyone_told = summary.told_sold_out + summary.accepted >= args.users;
    let clean = findings.as_ref().is_some_and(audit::Findings::clean)
        && summary.errors == 0
        && summary.without_pass == 0
        && summary.passes_over_ceiling == 0
        && summary.unresolved == 0
        && summary.paid == args.stock.min(args.users)
        && everyone_told;
    if !clean {
        eprintln!(
            "WAITING-ROOM AUDIT FAILED: without pass {}, passes over the ceiling {}, unresolved {}, paid {} of {}, told sold out {} of {}, errors {}, audit {:?}",
            summary.without_pass,
            summary.unresolved,
            summary.passes_over_ceiling,
            summary.paid,
            args.stock.min(args.users),
            summary.told_sold_out,
            args.users - summary.accepted,
            summary.errors,
            findings
        );
    }
    println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    Ok(clean)
}

async fn create(
    connection: &mut Connection,
    args: &Args,
    opens_at: DateTime<Utc>,
) -> Result<(), BenchError> {
    let body = serde_json::json!({
        "sku": args.sku,
        "stock": args.stock,
        "per_user_limit": args.per_user_limit,
        "starts_at": opens_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "waiting_room": {"pass_ttl_secs": args.pass_ttl},
    });
    let request =
        connection
            .target()
            .admin_request(Method::POST, "/v1/sales", Some(body.to_string()));
    let (status, body) = connection.send(request).await?;
    if status != StatusCode::CREATED {
        return Err(BenchError::Server {
            what: format!("creating sale {} with a waiting room", args.sku),
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    Ok(())
}

/// One polling worker's connection and what it reports to.
struct Buyer {
    connection: Connection,
    sku: String,
    tickets: Arc<HashMap<u64, String>>,
    tokens: Arc<Vec<Option<String>>>,
    seen: Arc<Mutex<Seen>>,
    polls: Arc<AtomicU64>,
}

impl Buyer {
    async fn work(mut self, queue: Arc<Mutex<BinaryHeap<Due>>>, deadline: Instant) {
        loop {
            let Some(due) = queue.lock().pop() else {
                return;
            };
            if due.at > deadline {
                self.seen.lock().unresolved += 1;
                continue;
            }
            tokio::time::sleep_until(due.at.into()).await;
            match self.turn(due.user).await {
                Ok(Some(next)) => queue.lock().push(Due {
                    at: Instant::now() + next,
                    user: due.user,
                }),
                Ok(None) => {}
                Err(err) => {
                    self.seen.lock().error(err.to_string());
                    queue.lock().push(Due {
                        at: Instant::now() + Duration::from_millis(500),
                        user: due.user,
                    });
                }
            }
        }
    }

    /// One poll of `user`'s ticket, and what follows: `Some(pause)` until the next poll, `None`
    /// once the buyer is done.
    async fn turn(&mut self, user: u64) -> Result<Option<Duration>, BenchError> {
        let token = self.tokens[user as usize].clone();
        let path = format!("{}/queue/{}", sale_path(&self.sku), self.tickets[&user]);
        let request = self
            .connection
            .target()
            .request(Method::GET, &path, None, token.as_deref());
        let (status, body) = self.connection.send(request).await?;
        self.polls.fetch_add(1, Ordering::Relaxed);
        let ticket: Ticket = parsed(status, &body, &path)?;
        match ticket.state.as_str() {
            "admitted" => {
                let Some(pass) = ticket.pass else {
                    return Ok(None); // used already
                };
                self.seen
                    .lock()
                    .admitted
                    .insert(ticket.user.clone(), nonce_of(&pass));
                self.buy(user, &ticket.user, &pass, token.as_deref())
                    .await?;
                Ok(None)
            }
            "waiting" => {
                // Further back, less often: about half the estimated wait, 0.25 s to 5 s.
                let wait = match (ticket.estimated_wait_secs, ticket.ahead) {
                    (Some(secs), _) => secs as f64 / 2.0,
                    (None, Some(ahead)) => ahead as f64 / 2_000.0,
                    (None, None) => 0.25,
                };
                Ok(Some(Duration::from_secs_f64(wait.clamp(0.25, 5.0))))
            }
            _ => {
                self.seen.lock().told_at.push(Instant::now());
                Ok(None)
            }
        }
    }

    async fn buy(
        &mut self,
        user: u64,
        name: &str,
        pass: &str,
        token: Option<&str>,
    ) -> Result<(), BenchError> {
        let mut request = self.connection.target().request(
            Method::POST,
            &crate::purchase_path(&self.sku),
            Some(format!(r#"{{"user":"user-{user}"}}"#)),
            token,
        );
        if let Ok(value) = http::HeaderValue::from_str(pass) {
            request.headers_mut().insert("admission-pass", value);
        }
        let (status, body) = self.connection.send(request).await?;
        if load::purchase_kind(status, &body) != Kind::Success {
            // Sold out meanwhile (overbooking) is an answer, not an error.
            if status != StatusCode::CONFLICT {
                self.seen.lock().error(format!(
                    "purchase with a pass: {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            return Ok(());
        }
        let order: serde_json::Value = parsed(status, &body, "purchase")?;
        let id = order["order_id"].as_str().unwrap_or_default().to_owned();
        {
            let mut seen = self.seen.lock();
            seen.accepted.insert(id.clone());
            seen.accepted_users.insert(name.to_owned());
        }
        // Paid at once, as the payment service would: the stock sells out for good.
        let request = self.connection.target().admin_request(
            Method::POST,
            &format!("/v1/orders/{id}/pay"),
            None,
        );
        let (status, body) = self.connection.send(request).await?;
        if status == StatusCode::OK {
            self.seen.lock().paid_at.push(Instant::now());
        } else {
            self.seen.lock().error(format!(
                "paying {id}: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(())
    }
}

/// `N` of `user-N`.
fn user_number(user: &str) -> u64 {
    user.strip_prefix("user-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The admission number a pass carries (its nonce, the room's admission count).
fn nonce_of(pass: &str) -> u64 {
    pass.split('.')
        .nth(1)
        .and_then(|nonce| u64::from_str_radix(nonce, 16).ok())
        .unwrap_or(u64::MAX)
}

/// Waits (up to 10 s) until the sale view shows `expected` tickets admitted, or the count has
/// not moved for half a second.
async fn settle_admissions(
    connection: &mut Connection,
    sku: &str,
    expected: u64,
) -> Result<(), BenchError> {
    #[derive(Deserialize)]
    struct View {
        waiting_room: Option<Room>,
    }
    #[derive(Deserialize)]
    struct Room {
        admitted: u64,
    }
    let give_up = Instant::now() + Duration::from_secs(10);
    let (mut last, mut since) = (u64::MAX, Instant::now());
    while Instant::now() < give_up {
        let request = connection
            .target()
            .admin_request(Method::GET, &sale_path(sku), None);
        let (status, body) = connection.send(request).await?;
        let view: View = parsed(status, &body, "the sale's view")?;
        let admitted = view.waiting_room.map_or(0, |room| room.admitted);
        if admitted >= expected {
            return Ok(());
        }
        if admitted != last {
            (last, since) = (admitted, Instant::now());
        } else if admitted > 0 && since.elapsed() >= Duration::from_millis(500) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn parsed<T: serde::de::DeserializeOwned>(
    status: StatusCode,
    body: &Bytes,
    what: &str,
) -> Result<T, BenchError> {
    if !status.is_success() {
        return Err(BenchError::Server {
            what: what.to_owned(),
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }
    serde_json::from_slice(body).map_err(|err| BenchError::Server {
        what: format!("{what}: {err}"),
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// Reads one ticket's events until it reads `sold_out` (answering when) or the ticket is done
/// otherwise (`None`).
async fn listen(
    target: &Target,
    path: String,
    token: Option<String>,
) -> Result<tokio::task::JoinHandle<Option<Instant>>, BenchError> {
    let stream = TcpStream::connect(target.authority()).await?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(target.request(Method::GET, &path, None, token.as_deref()))
        .await?;
    if response.status() != StatusCode::OK {
        return Err(BenchError::Server {
            what: format!("GET {path}"),
            status: response.status(),
            body: String::new(),
        });
    }
    let mut body = response.into_body();
    Ok(tokio::spawn(async move {
        let _sender = sender;
        let mut buffer = String::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let Some(data) = block.lines().find_map(|line| line.strip_prefix("data: ")) else {
                    continue;
                };
                match serde_json::from_str::<Ticket>(data).map(|t| t.state) {
                    Ok(state) if state == "sold_out" => return Some(Instant::now()),
                    Ok(state) if state == "ended" => return None,
                    _ => {}
                }
            }
        }
        None
    }))
}

/// Samples the sale view every 100 ms: the passes outstanding (read after the stock) against
/// the rule's ceiling for the units shown. Answers (samples, samples over the ceiling).
async fn sample_passes(target: Target, sku: String, stop: CancellationToken) -> (u64, u64) {
    let mut connection = Connection::new(target.clone());
    let (mut samples, mut over) = (0, 0);
    while !stop.is_cancelled() {
        let request = target.admin_request(Method::GET, &sale_path(&sku), None);
        if let Ok((StatusCode::OK, body)) = connection.send(request).await
            && let Ok(view) = serde_json::from_slice::<SaleView>(&body)
            && let Some(room) = view.waiting_room
        {
            samples += 1;
            let ceiling = (view.available as f64 * room.overbook
                / view.per_user_limit.max(1) as f64)
                .floor() as u64;
            if room.passes_outstanding > ceiling {
                over += 1;
                eprintln!(
                    "passes over the ceiling: {} outstanding for {} available",
                    room.passes_outstanding, view.available
                );
            }
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    (samples, over)
}

/// Spearman's ρ between the join ranks and the admission numbers of the buyers in both.
fn rank_correlation(joined: &HashMap<String, u64>, admitted: &HashMap<String, u64>) -> Option<f64> {
    let mut pairs: Vec<(u64, u64)> = joined
        .iter()
        .filter_map(|(user, &join)| admitted.get(user).map(|&admission| (join, admission)))
        .collect();
    if pairs.len() < 3 {
        return None;
    }
    let n = pairs.len();
    let mut ranks = vec![(0usize, 0usize); n];
    pairs.sort_by_key(|&(join, _)| join);
    let mut by_admission: Vec<usize> = (0..n).collect();
    by_admission.sort_by_key(|&i| pairs[i].1);
    for (rank, &i) in by_admission.iter().enumerate() {
        ranks[i] = (i, rank);
    }
    let n = n as f64;
    let d2: f64 = ranks
        .iter()
        .map(|&(x, y)| (x as f64 - y as f64).powi(2))
        .sum();
    Some(1.0 - 6.0 * d2 / (n * (n * n - 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_correlation_of_same_reversed_and_shuffled_orders() {
        let joined: HashMap<String, u64> = (0..1000).map(|n| (format!("u{n}"), n)).collect();
        let same: HashMap<String, u64> = (0..1000).map(|n| (format!("u{n}"), n + 7)).collect();
        let reversed: HashMap<String, u64> =
            (0..1000).map(|n| (format!("u{n}"), 1000 - n)).collect();
        assert!((rank_correlation(&joined, &same).unwrap() - 1.0).abs() < 1e-9);
        assert!((rank_correlation(&joined, &reversed).unwrap() + 1.0).abs() < 1e-9);
        let mut order: Vec<u64> = (0..1000).collect();
        fastrand::seed(7);
        fastrand::shuffle(&mut order);
        let shuffled: HashMap<String, u64> = order
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("u{n}"), i as u64))
            .collect();
        assert!(rank_correlation(&joined, &shuffled).unwrap().abs() < 0.15);
    }
}
