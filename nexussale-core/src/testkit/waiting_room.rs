//! Conformance cases for [`WaitingRoomStore`] implementations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tokio::sync::RwLock;

use super::unique_sku;
use crate::ident::UserId;
use crate::sale::Sale;
use crate::waiting_room::{
    AdmitRequest, DynWaitingRoomStore, Overbook, PassGrant, PassUse, Standing, Ticket, WaitingRoom,
    WaitingRoomStore,
};

fn user(name: impl std::fmt::Display) -> UserId {
    UserId::new(format!("user-{name}")).expect("test user names are valid")
}

/// Now, to the microsecond (what stores keep).
fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

fn users(n: u64) -> Vec<UserId> {
    (0..n).map(user).collect()
}

/// A sale with a waiting room opening at `opens_at`.
fn sale(stock: u64, opens_at: Option<DateTime<Utc>>) -> Sale {
    Sale::new(unique_sku(), stock)
        .with_window(opens_at, None)
        .with_waiting_room(WaitingRoom::default())
}

fn request(available: u64, settled_before: u64, now: DateTime<Utc>) -> AdmitRequest {
    AdmitRequest {
        available,
        settled_before,
        now,
        max: u64::MAX,
    }
}

async fn standing(store: &dyn WaitingRoomStore, ticket: &Ticket, now: DateTime<Utc>) -> Standing {
    store
        .ticket(&ticket.sku, &ticket.id, now)
        .await
        .expect("ticket")
        .expect("the ticket exists")
        .standing
}

async fn grant(store: &dyn WaitingRoomStore, ticket: &Ticket, now: DateTime<Utc>) -> PassGrant {
    match standing(store, ticket, now).await {
        Standing::Admitted(grant) => grant,
        other => panic!("expected {} admitted, got {other:?}", ticket.user),
    }
}

/// Joining twice answers the same ticket; a ticket reads back; an unknown one is `None`.
pub async fn one_ticket_per_buyer(store: DynWaitingRoomStore) {
    let now = now();
    let sale = sale(10, None);
    let first = store.join(&sale, &user("ann"), now).await.unwrap();
    let again = store.join(&sale, &user("ann"), now).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(first.user, user("ann"));
    assert_eq!(first.sku, sale.sku);
    let bob = store.join(&sale, &user("bob"), now).await.unwrap();
    assert_ne!(bob.id, first.id);
    assert_eq!(
        store.ticket(&sale.sku, &first.id, now).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        standing(&*store, &bob, now).await,
        Standing::Waiting { ahead: Some(1) }
    );
    let unknown = crate::waiting_room::TicketId::random();
    assert_eq!(store.ticket(&sale.sku, &unknown, now).await.unwrap(), None);
    // Concurrent joins by one buyer still make one ticket.
    let carl = user("carl");
    let carl = join_all((0..16).map(|_| store.join(&sale, &carl, now))).await;
    let ids: std::collections::HashSet<_> = carl.into_iter().map(|t| t.unwrap().id).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(store.status(&sale.sku).await.unwrap().joined, 3);
}

/// 300 buyers joining one after another before the opening are admitted in an order unrelated
/// to the order they joined in (rank correlation near 0, and no two draws alike); a buyer joining
/// after the opening queues behind all of them.
pub async fn the_draw_at_the_opening_is_random(store: DynWaitingRoomStore) {
    const BUYERS: u64 = 300;
    let opens_at = now() + chrono::Duration::hours(1);
    let before = opens_at - chrono::Duration::minutes(10);
    let mut orders = Vec::new();
    for _ in 0..2 {
        let sale = sale(BUYERS + 1, Some(opens_at));
        let mut tickets = Vec::new();
        for n in 0..BUYERS {
            // Joined a second apart, in order.
            let at = before + chrono::Duration::seconds(n as i64);
            let ticket = store.join(&sale, &user(n), at).await.unwrap();
            assert_eq!(
                ticket.standing,
                Standing::Waiting { ahead: None },
                "no place before the draw"
            );
            tickets.push(ticket);
        }
        let late = store.join(&sale, &user("late"), opens_at).await.unwrap();
        assert_eq!(
            late.standing,
            Standing::Waiting {
                ahead: Some(BUYERS)
            }
        );
        let mut places = Vec::new();
        for ticket in &tickets {
            match standing(&*store, ticket, opens_at).await {
                Standing::Waiting { ahead: Some(ahead) } => places.push(ahead),
                other => panic!("{other:?}"),
            }
        }
        let mut sorted = places.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..BUYERS).collect::<Vec<_>>(), "places are 0..n");
        let rho = rank_correlation(&places);
        // Under a random draw ρ has a standard deviation of 1/√299 ≈ 0.058: 0.3 is 5 of them.
        assert!(
            rho.abs() < 0.3,
            "join order shows through the draw: ρ = {rho}"
        );
        // Admission follows the places.
        let admission = store.admit(&sale, &request(1, 0, opens_at)).await.unwrap();
        assert_eq!(admission.admitted, 1);
        let first = places.iter().position(|&p| p == 0).unwrap();
        assert_eq!(grant(&*store, &tickets[first], opens_at).await.nonce, 1);
        orders.push(places);
    }
    assert_ne!(orders[0], orders[1], "two draws came out alike");
}

/// Spearman's rank correlation between join order (the index) and `places` (a permutation).
pub fn rank_correlation(places: &[u64]) -> f64 {
    let n = places.len() as f64;
    let d2: f64 = places
        .iter()
        .enumerate()
        .map(|(i, &p)| (i as f64 - p as f64).powi(2))
        .sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

/// 400 buyers and 60 units, everything concurrent: buyers join, poll, use their pass and buy
/// (from a shared count standing in for the stock store), four admitters admit as they read the
/// count. Whenever no purchase is halfway, the passes outstanding never exceed the ceiling of
/// what is left; every pass used finds a unit; the 60 units sell, and no more.
pub async fn passes_never_exceed_the_ceiling_under_concurrency(store: DynWaitingRoomStore) {
    const UNITS: u64 = 60;
    const BUYERS: u64 = 400;
    let now = now();
    let mut sale = sale(UNITS, None);
    if let Some(room) = &mut sale.waiting_room {
        room.overbook = Overbook::NONE;
    }
    let sale = Arc::new(sale);
    let available = Arc::new(AtomicU64::new(UNITS));
    // Buyers hold it shared from using a pass to taking the unit; the checker exclusively.
    let halfway = Arc::new(RwLock::new(()));
    let sold = Arc::new(AtomicU64::new(0));
    let disappointed = Arc::new(AtomicU64::new(0));
    let done = crate::CancellationToken::new();

    let buyers = (0..BUYERS).map(|n| {
        let (store, sale, available, halfway, sold, disappointed) = (
            Arc::clone(&store),
            Arc::clone(&sale),
            Arc::clone(&available),
            Arc::clone(&halfway),
            Arc::clone(&sold),
            Arc::clone(&disappointed),
        );
        tokio::spawn(async move {
            let ticket = store.join(&sale, &user(n), now).await.unwrap();
            loop {
                match standing(&*store, &ticket, now).await {
                    Standing::Admitted(grant) => {
                        let _halfway = halfway.read().await;
                        let used = store
                            .use_pass(&sale.sku, &ticket.id, grant.nonce, now)
                            .await
                            .unwrap();
                        assert_eq!(used, PassUse::Used);
                        let took = available
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                                left.checked_sub(1)
                            })
                            .is_ok();
                        drop(_halfway);
                        if took {
                            sold.fetch_add(1, Ordering::AcqRel);
                        } else {
                            disappointed.fetch_add(1, Ordering::AcqRel);
                        }
                        store.settle(&sale.sku).await.unwrap();
                        return;
                    }
                    Standing::SoldOut => return,
                    Standing::Used => panic!("used before this buyer used it"),
                    Standing::Waiting { .. } => tokio::task::yield_now().await,
                }
            }
        })
    });
    let buyers: Vec<_> = buyers.collect();

    let admitters: Vec<_> = (0..4)
        .map(|_| {
            let (store, sale, available, done) = (
                Arc::clone(&store),
                Arc::clone(&sale),
                Arc::clone(&available),
                done.clone(),
            );
            tokio::spawn(async move {
                while !done.is_cancelled() {
                    let settled = store.status(&sale.sku).await.unwrap().settled;
                    let left = available.load(Ordering::Acquire);
                    store
                        .admit(&sale, &request(left, settled, now))
                        .await
                        .unwrap();
                    if left == 0 {
                        store.close(&sale.sku).await.unwrap();
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    let checker = {
        let (store, sale, available, halfway, done) = (
            Arc::clone(&store),
            Arc::clone(&sale),
            Arc::clone(&available),
            Arc::clone(&halfway),
            done.clone(),
        );
        tokio::spawn(async move {
            let mut checks = 0u64;
            while !done.is_cancelled() {
                let _quiet = halfway.write().await;
                let outstanding = store.status(&sale.sku).await.unwrap().outstanding;
                let left = available.load(Ordering::Acquire);
                assert!(
                    outstanding <= left,
                    "{outstanding} passes outstanding for {left} units"
                );
                checks += 1;
                drop(_quiet);
                tokio::task::yield_now().await;
            }
            checks
        })
    };

    for buyer in buyers {
        buyer.await.unwrap();
    }
    done.cancel();
    for admitter in admitters {
        admitter.await.unwrap();
    }
    let checks = checker.await.unwrap();
    assert!(checks > 0);
    assert_eq!(sold.load(Ordering::Acquire), UNITS);
    assert_eq!(
        disappointed.load(Ordering::Acquire),
        0,
        "a pass was handed out for a unit that was not there"
    );
    let status = store.status(&sale.sku).await.unwrap();
    assert_eq!(status.used, UNITS);
    assert_eq!(status.settled, UNITS);
    assert_eq!(status.outstanding, 0);
    assert!(status.closed);
}

/// A pass is used once of 16 concurrent tries; another nonce, a waiting ticket and an expired
/// pass are refused; a pass given back can be used once more.
pub async fn a_pass_is_used_exactly_once(store: DynWaitingRoomStore) {
    let now = now();
    let sale = sale(10, None);
    let ann = store.join(&sale, &user("ann"), now).await.unwrap();
    let bob = store.join(&sale, &user("bob"), now).await.unwrap();
    assert_eq!(
        store
            .admit(
                &sale,
                &AdmitRequest {
                    max: 1,
                    ..request(10, 0, now)
                }
            )
            .await
            .unwrap()
            .admitted,
        1
    );
    let pass = grant(&*store, &ann, now).await;
    assert!(pass.expires_at > now);
    let bob_waiting = store.use_pass(&sale.sku, &bob.id, pass.nonce, now).await;
    assert_eq!(bob_waiting.unwrap(), PassUse::NotAdmitted);
    let other_nonce = store
        .use_pass(&sale.sku, &ann.id, pass.nonce.wrapping_add(1), now)
        .await;
    assert_eq!(other_nonce.unwrap(), PassUse::NotAdmitted);
    let late = store
        .use_pass(&sale.sku, &ann.id, pass.nonce, pass.expires_at)
        .await;
    assert_eq!(late.unwrap(), PassUse::Expired);

    let tries =
        join_all((0..16).map(|_| store.use_pass(&sale.sku, &ann.id, pass.nonce, now))).await;
    let used = tries
        .iter()
        .filter(|t| matches!(t, Ok(PassUse::Used)))
        .count();
    assert_eq!(used, 1, "{tries:?}");
    assert!(
        tries
            .iter()
            .all(|t| matches!(t, Ok(PassUse::Used | PassUse::AlreadyUsed)))
    );
    assert_eq!(standing(&*store, &ann, now).await, Standing::Used);
    assert_eq!(store.status(&sale.sku).await.unwrap().outstanding, 0);

    // The purchase failed in a backend: the pass comes back once.
    assert!(
        !store
            .give_back(&sale.sku, &ann.id, pass.nonce ^ 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .give_back(&sale.sku, &ann.id, pass.nonce)
            .await
            .unwrap()
    );
    assert!(
        !store
            .give_back(&sale.sku, &ann.id, pass.nonce)
            .await
            .unwrap()
    );
    assert_eq!(grant(&*store, &ann, now).await, pass);
    assert_eq!(store.status(&sale.sku).await.unwrap().outstanding, 1);
    let again = store.use_pass(&sale.sku, &ann.id, pass.nonce, now).await;
    assert_eq!(again.unwrap(), PassUse::Used);
    let status = store.status(&sale.sku).await.unwrap();
    assert_eq!((status.used, status.admitted), (2, 1));
}

/// A pass unused past its TTL lapses at the next admission: its ticket queues again at the back,
/// the next buyer is admitted, and the old pass is refused.
pub async fn a_lapsed_pass_admits_the_next_buyer(store: DynWaitingRoomStore) {
    let now = now();
    let mut sale = sale(1, None);
    if let Some(room) = &mut sale.waiting_room {
        room.pass_ttl = Duration::from_secs(2);
    }
    let ann = store.join(&sale, &user("ann"), now).await.unwrap();
    let bob = store.join(&sale, &user("bob"), now).await.unwrap();
    let carl = store.join(&sale, &user("carl"), now).await.unwrap();
    store.admit(&sale, &request(1, 0, now)).await.unwrap();
    let pass = grant(&*store, &ann, now).await;
    assert_eq!(pass.expires_at, now + chrono::Duration::seconds(2));
    // Still one unit: nobody else until the pass lapses.
    let admission = store.admit(&sale, &request(1, 0, now)).await.unwrap();
    assert_eq!((admission.admitted, admission.lapsed), (0, 0));

    let later = pass.expires_at;
    let admission = store.admit(&sale, &request(1, 0, later)).await.unwrap();
    assert_eq!((admission.admitted, admission.lapsed), (1, 1));
    assert_eq!(
        grant(&*store, &bob, later).await.nonce,
        2,
        "admissions are numbered in order"
    );
    assert_eq!(
        standing(&*store, &carl, later).await,
        Standing::Waiting { ahead: Some(0) }
    );
    assert_eq!(
        standing(&*store, &ann, later).await,
        Standing::Waiting { ahead: Some(1) },
        "the lapsed ticket queues again at the back"
    );
    let stale = store.use_pass(&sale.sku, &ann.id, pass.nonce, later).await;
    assert_eq!(stale.unwrap(), PassUse::NotAdmitted);
    let status = store.status(&sale.sku).await.unwrap();
    assert_eq!(
        (status.lapsed, status.admitted, status.outstanding),
        (1, 2, 1)
    );
}

/// Units counted in flight are kept off the ceiling: with 3 units reported but 2 passes used and
/// not settled before the report was read, one pass goes out.
pub async fn passes_in_flight_are_kept_off_the_ceiling(store: DynWaitingRoomStore) {
    let now = now();
    let sale = sale(10, None);
    let tickets: Vec<Ticket> = join_all(users(6).iter().map(|u| store.join(&sale, u, now)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    store.admit(&sale, &request(2, 0, now)).await.unwrap();
    for ticket in &tickets {
        if let Standing::Admitted(pass) = standing(&*store, ticket, now).await {
            let used = store.use_pass(&sale.sku, &ticket.id, pass.nonce, now).await;
            assert_eq!(used.unwrap(), PassUse::Used);
        }
    }
    let admission = store.admit(&sale, &request(3, 0, now)).await.unwrap();
    assert_eq!(admission.admitted, 1);
    store.settle(&sale.sku).await.unwrap();
    store.settle(&sale.sku).await.unwrap();
    // Both settled before this report was read: it is exact.
    let admission = store.admit(&sale, &request(3, 2, now)).await.unwrap();
    assert_eq!((admission.admitted, admission.outstanding), (2, 3));
}

/// Closing turns every waiting ticket and every later join sold out at once and admits no one
/// after; a pass already out stays valid.
pub async fn closing_turns_the_line_sold_out(store: DynWaitingRoomStore) {
    let now = now();
    let sale = sale(1, None);
    let tickets: Vec<Ticket> = join_all(users(5).iter().map(|u| store.join(&sale, u, now)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    store.admit(&sale, &request(1, 0, now)).await.unwrap();
    assert!(store.close(&sale.sku).await.unwrap());
    assert!(!store.close(&sale.sku).await.unwrap());
    let mut admitted = 0;
    for ticket in &tickets {
        match standing(&*store, ticket, now).await {
            Standing::Admitted(_) => admitted += 1,
            Standing::SoldOut => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(admitted, 1);
    let late = store.join(&sale, &user("late"), now).await.unwrap();
    assert_eq!(late.standing, Standing::SoldOut);
    let admission = store.admit(&sale, &request(100, 0, now)).await.unwrap();
    assert_eq!(admission.admitted, 0);
    let status = store.status(&sale.sku).await.unwrap();
    assert!(status.closed);
    assert_eq!((status.admitted, status.joined), (1, 6));
}

/// Every handle on the store signs with one key: the first one stored.
pub async fn the_pass_key_is_shared(store: DynWaitingRoomStore) {
    let first = store.pass_key(&[1; 32]).await.unwrap();
    let second = store.pass_key(&[2; 32]).await.unwrap();
    assert_eq!(first, second);
    assert!(first.len() >= crate::MIN_PASS_KEY_LEN);
}
