//! [`MemoryWaitingRoomStore`]: waiting rooms in process memory.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::ident::{Sku, UserId};
use crate::sale::Sale;
use crate::waiting_room::{
    Admission, AdmitRequest, PassGrant, PassUse, RoomStatus, Standing, Ticket, TicketId,
    WaitingRoomStore,
};

type DashMap<K, V> = dashmap::DashMap<K, V, foldhash::fast::RandomState>;

/// A [`WaitingRoomStore`] in process memory: one short lock per sale's room. Clones share the
/// state.
#[derive(Clone, Default)]
pub struct MemoryWaitingRoomStore {
    rooms: Arc<DashMap<Sku, Arc<Mutex<Room>>>>,
    key: Arc<Mutex<Option<Vec<u8>>>>,
}

impl MemoryWaitingRoomStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn room(&self, sku: &Sku) -> Option<Arc<Mutex<Room>>> {
        self.rooms.get(sku).map(|room| Arc::clone(&room))
    }

    fn room_of(&self, sale: &Sale) -> Arc<Mutex<Room>> {
        if let Some(room) = self.room(&sale.sku) {
            return room;
        }
        let room = self
            .rooms
            .entry(sale.sku.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Room::new(sale.starts_at))));
        Arc::clone(&room)
    }
}

impl fmt::Debug for MemoryWaitingRoomStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryWaitingRoomStore")
            .field("rooms", &self.rooms.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
enum Place {
    /// Joined before the opening: placed by the draw.
    Undrawn,
    /// In line at this place (places count up from 0, one per ticket ever put in line).
    InLine(u64),
    Admitted(PassGrant),
    Used(PassGrant),
}

#[derive(Debug)]
struct Entry {
    user: UserId,
    place: Place,
}

#[derive(Debug)]
struct Room {
    opens_at: Option<DateTime<Utc>>,
    drawn: bool,
    undrawn: Vec<TicketId>,
    /// The line after the draw, front first; the front's place is `head`.
    line: VecDeque<TicketId>,
    head: u64,
    tickets: HashMap<TicketId, Entry>,
    by_user: HashMap<UserId, TicketId>,
    /// Outstanding passes by expiry (µs).
    passes: BTreeSet<(i64, TicketId)>,
    counts: RoomStatus,
}

impl Room {
    fn new(opens_at: Option<DateTime<Utc>>) -> Self {
        Self {
            opens_at,
            drawn: false,
            undrawn: Vec::new(),
            line: VecDeque::new(),
            head: 0,
            tickets: HashMap::new(),
            by_user: HashMap::new(),
            passes: BTreeSet::new(),
            counts: RoomStatus::default(),
        }
    }

    /// At the opening, the tickets joined before it take the front of the line in a random
    /// order.
    fn draw_if_due(&mut self, now: DateTime<Utc>) {
        if self.drawn || self.opens_at.is_some_and(|at| now < at) {
            return;
        }
        self.drawn = true;
        let mut drawn = std::mem::take(&mut self.undrawn);
        fastrand::shuffle(&mut drawn);
        for id in drawn {
            self.push(id);
        }
    }

    fn push(&mut self, id: TicketId) {
        let place = self.head + self.line.len() as u64;
        if let Some(entry) = self.tickets.get_mut(&id) {
            entry.place = Place::InLine(place);
        }
        self.line.push_back(id);
    }

    fn lapse(&mut self, now: DateTime<Utc>) -> u64 {
        let now = now.timestamp_micros();
        let mut lapsed = 0;
        while let Some(&(expires, id)) = self.passes.first() {
            if expires > now {
                break;
            }
            self.passes.pop_first();
            self.push(id);
            lapsed += 1;
        }
        self.counts.lapsed += lapsed;
        lapsed
    }

    fn standing(&self, place: Place) -> Standing {
        match place {
            Place::Undrawn | Place::InLine(_) if self.counts.closed => Standing::SoldOut,
            Place::Undrawn => Standing::Waiting { ahead: None },
            Place::InLine(place) => Standing::Waiting {
                ahead: Some(place.saturating_sub(self.head)),
            },
            Place::Admitted(grant) => Standing::Admitted(grant),
            Place::Used(_) => Standing::Used,
        }
    }

    fn ticket(&self, sku: &Sku, id: TicketId) -> Option<Ticket> {
        self.tickets.get(&id).map(|entry| Ticket {
            id,
            sku: sku.clone(),
            user: entry.user.clone(),
            standing: self.standing(entry.place),
            room_admitted: self.counts.admitted,
        })
    }

    fn status(&self) -> RoomStatus {
        RoomStatus {
            waiting: (self.undrawn.len() + self.line.len()) as u64,
            outstanding: self.passes.len() as u64,
            ..self.counts
        }
    }
}

fn expiry(sale: &Sale, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let ttl = sale
        .waiting_room
        .as_ref()
        .ok_or_else(|| Error::invalid("sku", "this sale has no waiting room"))?
        .pass_ttl;
    // To the microsecond, as a pass carries it.
    let at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    Ok(DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at))
}

#[async_trait]
impl WaitingRoomStore for MemoryWaitingRoomStore {
    async fn join(&self, sale: &Sale, user: &UserId, now: DateTime<Utc>) -> Result<Ticket> {
        let room = self.room_of(sale);
        let mut room = room.lock();
        room.draw_if_due(now);
        if let Some(&id) = room.by_user.get(user) {
            return room
                .ticket(&sale.sku, id)
                .ok_or_else(|| Error::permanent("memory", "a buyer's ticket is missing"));
        }
        let id = TicketId::random();
        room.tickets.insert(
            id,
            Entry {
                user: user.clone(),
                place: Place::Undrawn,
            },
        );
        room.by_user.insert(user.clone(), id);
        room.counts.joined += 1;
        if room.drawn {
            room.push(id);
        } else {
            room.undrawn.push(id);
        }
        room.ticket(&sale.sku, id)
            .ok_or_else(|| Error::permanent("memory", "a new ticket is missing"))
    }

    async fn ticket(&self, sku: &Sku, id: &TicketId, now: DateTime<Utc>) -> Result<Option<Ticket>> {
        let Some(room) = self.room(sku) else {
            return Ok(None);
        };
        let mut room = room.lock();
        room.draw_if_due(now);
        Ok(room.ticket(sku, *id))
    }

    async fn admit(&self, sale: &Sale, request: &AdmitRequest) -> Result<Admission> {
        let expires_at = expiry(sale, request.now)?;
        let ceiling = |available: u64| {
            sale.waiting_room
                .as_ref()
                .map_or(0, |room| room.pass_ceiling(available, sale.per_user_limit))
        };
        let room = self.room_of(sale);
        let mut room = room.lock();
        room.draw_if_due(request.now);
        let lapsed = room.lapse(request.now);
        let mut admitted = 0;
        if !room.counts.closed {
            let in_flight = room.counts.used.saturating_sub(request.settled_before);
            let ceiling = ceiling(request.available.saturating_sub(in_flight));
            let budget = ceiling
                .saturating_sub(room.passes.len() as u64)
                .min(request.max);
            while admitted < budget {
                let Some(id) = room.line.pop_front() else {
                    break;
                };
                room.head += 1;
                // The room's admission count: unique per admission, as in every store.
                let grant = PassGrant {
                    nonce: room.counts.admitted + admitted + 1,
                    expires_at,
                };
                if let Some(entry) = room.tickets.get_mut(&id) {
                    entry.place = Place::Admitted(grant);
                }
                room.passes.insert((expires_at.timestamp_micros(), id));
                admitted += 1;
            }
        }
        room.counts.admitted += admitted;
        let status = room.status();
        Ok(Admission {
            admitted,
            lapsed,
            outstanding: status.outstanding,
            waiting: status.waiting,
        })
    }

    async fn use_pass(
        &self,
        sku: &Sku,
        id: &TicketId,
        nonce: u64,
        now: DateTime<Utc>,
    ) -> Result<PassUse> {
        let Some(room) = self.room(sku) else {
            return Ok(PassUse::NotAdmitted);
        };
        let mut room = room.lock();
        let Some(entry) = room.tickets.get_mut(id) else {
            return Ok(PassUse::NotAdmitted);
        };
        let answer = match entry.place {
            Place::Admitted(grant) if grant.nonce == nonce => {
                if grant.expires_at <= now {
                    return Ok(PassUse::Expired);
                }
                entry.place = Place::Used(grant);
                grant
            }
            Place::Used(grant) if grant.nonce == nonce => return Ok(PassUse::AlreadyUsed),
            _ => return Ok(PassUse::NotAdmitted),
        };
        room.passes
            .remove(&(answer.expires_at.timestamp_micros(), *id));
        room.counts.used += 1;
        Ok(PassUse::Used)
    }

    async fn give_back(&self, sku: &Sku, id: &TicketId, nonce: u64) -> Result<bool> {
        let Some(room) = self.room(sku) else {
            return Ok(false);
        };
        let mut room = room.lock();
        let Some(entry) = room.tickets.get_mut(id) else {
            return Ok(false);
        };
        let Place::Used(grant) = entry.place else {
            return Ok(false);
        };
        if grant.nonce != nonce {
            return Ok(false);
        }
        entry.place = Place::Admitted(grant);
        room.passes
            .insert((grant.expires_at.timestamp_micros(), *id));
        Ok(true)
    }

    async fn settle(&self, sku: &Sku) -> Result<()> {
        if let Some(room) = self.room(sku) {
            room.lock().counts.settled += 1;
        }
        Ok(())
    }

    async fn close(&self, sku: &Sku) -> Result<bool> {
        let room = self
            .rooms
            .entry(sku.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Room::new(None))));
        let mut room = room.lock();
        Ok(!std::mem::replace(&mut room.counts.closed, true))
    }

    async fn status(&self, sku: &Sku) -> Result<RoomStatus> {
        Ok(self
            .room(sku)
            .map(|room| room.lock().status())
            .unwrap_or_default())
    }

    async fn pass_key(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        Ok(self
            .key
            .lock()
            .get_or_insert_with(|| candidate.to_vec())
            .clone())
    }
}
