//! [`MemoryOrderRepository`]: orders in process memory, indexed like a database would.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::order_ids::OrderIds;
use crate::error::Result;
use crate::ident::{Sku, UserId};
use crate::order::{Order, OrderId, OrderStatus};
use crate::repository::{
    OrderPage, OrderQuery, OrderRepository, StatusCounts, Timeline, TransitionOutcome,
};
use crate::sale::Sale;

/// An [`OrderRepository`] in process memory: the embedded default.
///
/// Orders sit in a map ordered by id with secondary indexes by user and by sku, and counts per
/// sku and status kept up to date on every write, so listings and counts never scan everything
/// they do not return. It is off the purchase path (the order worker writes in batches), so one
/// reader-writer lock guards it. Clones share the state.
///
/// It keeps every order unless bounded by [`with_max_orders`](Self::with_max_orders).
#[derive(Clone, Default)]
pub struct MemoryOrderRepository {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// The most orders kept; `None`: every one.
    max_orders: Option<usize>,
    /// Orders in a final status (paid, cancelled, expired), oldest id first: the ones a bound
    /// forgets.
    settled: BTreeSet<OrderId>,
    orders: BTreeMap<OrderId, Order>,
    by_user: HashMap<UserId, OrderIds>,
    by_sku: HashMap<Sku, OrderIds>,
    /// A sale's orders in one status: `?sku=&status=` walks only those.
    by_sku_status: HashMap<(Sku, OrderStatus), OrderIds>,
    counts: HashMap<Sku, StatusCounts>,
    sales: BTreeMap<Sku, Sale>,
    refusals: HashMap<Sku, BTreeMap<String, u64>>,
}

impl MemoryOrderRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `max` orders: past it, each write forgets the oldest settled orders (paid,
    /// cancelled, expired; by id, which orders them by creation). A pending order is never
    /// forgotten, so the bound may be exceeded while more than `max` are pending.
    ///
    /// A forgotten order is gone from [`get`](OrderRepository::get), listings and the sale
    /// report's timeline; [`counts`](OrderRepository::counts) still count it, so reconcile sees
    /// no drift. A sale that lost a paid order cannot be rebuilt from the repository (the engine
    /// refuses rather than put a paid unit back on sale): the embedded default's limit, for
    /// demos and tests; production keeps orders in MySQL.
    pub fn with_max_orders(self, max: usize) -> Self {
        self.inner.write().max_orders = Some(max);
        self
    }
}

impl fmt::Debug for MemoryOrderRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.read();
        f.debug_struct("MemoryOrderRepository")
            .field("orders", &inner.orders.len())
            .field("sales", &inner.sales.len())
            .finish()
    }
}

impl Inner {
    fn count(&mut self, order: &Order, status: OrderStatus, add: bool) {
        let tally = self
            .counts
            .entry(order.sku.clone())
            .or_default()
            .get_mut(status);
        let units = u64::from(order.quantity);
        if add {
            tally.orders += 1;
            tally.units += units;
        } else {
            tally.orders -= 1;
            tally.units -= units;
        }
        let key = (order.sku.clone(), status);
        if add {
            self.by_sku_status.entry(key).or_default().insert(order.id);
        } else if let Some(ids) = self.by_sku_status.get_mut(&key) {
            ids.remove(&order.id);
        }
    }

    fn insert(&mut self, order: &Order) -> bool {
        if self.orders.contains_key(&order.id) {
            return false;
        }
        self.by_user
            .entry(order.user.clone())
            .or_default()
            .insert(order.id);
        self.by_sku
            .entry(order.sku.clone())
            .or_default()
            .insert(order.id);
        self.count(order, order.status, true);
        if order.status != OrderStatus::Pending {
            self.settled.insert(order.id);
        }
        self.orders.insert(order.id, order.clone());
        true
    }

    /// Forgets the oldest settled orders while more than the bound are kept.
    fn trim(&mut self) {
        let Some(max) = self.max_orders else { return };
        while self.orders.len() > max {
            let Some(id) = self.settled.pop_first() else {
                return;
            };
            let Some(order) = self.orders.remove(&id) else {
                continue;
            };
            unindex(&mut self.by_user, &order.user, id);
            unindex(&mut self.by_sku, &order.sku, id);
            unindex(
                &mut self.by_sku_status,
                &(order.sku.clone(), order.status),
                id,
            );
        }
    }

    fn list(&self, query: &OrderQuery, page_size: usize) -> OrderPage {
        let upper = query.after.map_or(Bound::Unbounded, Bound::Excluded);
        // Walk the narrowest index the query allows, newest first.
        let index = match (&query.user, &query.sku, query.status) {
            (Some(user), _, _) => Some(self.by_user.get(user)),
            (None, Some(sku), Some(status)) => Some(self.by_sku_status.get(&(sku.clone(), status))),
            (None, Some(sku), None) => Some(self.by_sku.get(sku)),
            (None, None, _) => None,
        };
        let ids: Box<dyn Iterator<Item = &OrderId>> = match index {
            Some(Some(ids)) => ids.newest_first(upper),
            Some(None) => Box::new(std::iter::empty()),
            None => Box::new(
                self.orders
                    .range((Bound::Unbounded, upper))
                    .rev()
                    .map(|(id, _)| id),
            ),
        };
        let mut orders: Vec<Order> = ids
            .filter_map(|id| self.orders.get(id))
            .filter(|order| query.matches(order))
            .take(page_size + 1)
            .cloned()
            .collect();
        let next = if orders.len() > page_size {
            orders.truncate(page_size);
            orders.last().map(|order| order.id)
        } else {
            None
        };
        OrderPage { orders, next }
    }
}

/// Takes `id` out of a secondary index, and the key with it once it lists nothing.
fn unindex<K: Eq + std::hash::Hash>(index: &mut HashMap<K, OrderIds>, key: &K, id: OrderId) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

#[async_trait]
impl OrderRepository for MemoryOrderRepository {
    async fn save_sale(&self, sale: &Sale) -> Result<bool> {
        let mut inner = self.inner.write();
        if inner.sales.contains_key(&sale.sku) {
            return Ok(false);
        }
        inner.sales.insert(sale.sku.clone(), sale.clone());
        Ok(true)
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        Ok(self.inner.read().sales.get(sku).cloned())
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        Ok(self.inner.read().sales.values().cloned().collect())
    }

    async fn sales_after(&self, after: Option<Sku>, limit: usize) -> Result<Vec<Sale>> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(self
            .inner
            .read()
            .sales
            .range((from, Bound::Unbounded))
            .take(limit)
            .map(|(_, sale)| sale.clone())
            .collect())
    }

    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>> {
        let mut inner = self.inner.write();
        Ok(inner.sales.get_mut(sku).map(|sale| {
            *sale = sale.clone().ended(at);
            sale.clone()
        }))
    }

    async fn insert(&self, orders: &[Order]) -> Result<u64> {
        let mut inner = self.inner.write();
        let inserted = orders.iter().filter(|order| inner.insert(order)).count() as u64;
        inner.trim();
        Ok(inserted)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>> {
        Ok(self.inner.read().orders.get(&id).cloned())
    }

    async fn list(&self, query: &OrderQuery) -> Result<OrderPage> {
        let page_size = query.page_size()?;
        Ok(self.inner.read().list(query, page_size))
    }

    async fn order_cuts(&self, sku: &Sku, parts: usize) -> Result<Vec<OrderId>> {
        let inner = self.inner.read();
        let Some(ids) = inner.by_sku.get(sku) else {
            return Ok(Vec::new());
        };
        // The newest run begins `run` orders from the newest end, the next `run` further, ….
        let n = ids.len();
        let run = n.div_ceil(parts.max(1)).max(1);
        let starts: Vec<usize> = (1..parts)
            .filter_map(|k| n.checked_sub(k * run))
            .filter(|&start| start > 0)
            .collect();
        let mut cuts: Vec<OrderId> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| starts.contains(i))
            .map(|(_, id)| *id)
            .collect();
        cuts.reverse();
        Ok(cuts)
    }

    async fn transition(
        &self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<TransitionOutcome> {
        let mut inner = self.inner.write();
        let Some(order) = inner.orders.get_mut(&id) else {
            return Ok(TransitionOutcome::NotFound);
        };
        if order.status != from {
            return Ok(TransitionOutcome::Mismatch(order.status));
        }
        order.status = to;
        order.updated_at = at;
        let order = order.clone();
        inner.count(&order, from, false);
        inner.count(&order, to, true);
        if to != OrderStatus::Pending {
            inner.settled.insert(id);
            inner.trim();
        }
        Ok(TransitionOutcome::Applied)
    }

    async fn counts(&self, sku: &Sku) -> Result<StatusCounts> {
        Ok(self
            .inner
            .read()
            .counts
            .get(sku)
            .copied()
            .unwrap_or_default())
    }

    async fn timeline(&self, sku: &Sku, bucket: Duration, units: u64) -> Result<Timeline> {
        let placed = {
            let inner = self.inner.read();
            inner.by_sku.get(sku).map_or_else(Vec::new, |ids| {
                ids.iter()
                    .filter_map(|id| inner.orders.get(id))
                    .map(|order| (order.created_at, order.quantity))
                    .collect()
            })
        };
        Ok(Timeline::of(placed, bucket, units))
    }

    async fn add_refusals(&self, sku: &Sku, counts: &[(&'static str, u64)]) -> Result<()> {
        let mut inner = self.inner.write();
        if !inner.sales.contains_key(sku) {
            return Ok(());
        }
        let refusals = inner.refusals.entry(sku.clone()).or_default();
        for (reason, count) in counts {
            *refusals.entry((*reason).to_owned()).or_default() += count;
        }
        Ok(())
    }

    async fn refusals(&self, sku: &Sku) -> Result<BTreeMap<String, u64>> {
        Ok(self
            .inner
            .read()
            .refusals
            .get(sku)
            .cloned()
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testkit::fixtures;

    #[tokio::test]
    async fn a_bound_forgets_the_oldest_settled_orders_only() {
        let repository = MemoryOrderRepository::new().with_max_orders(2);
        let sku = Sku::new("bounded").unwrap();
        let orders = fixtures::orders(&sku, 4);
        repository.insert(&orders).await.unwrap();
        // Four pending, bound two: nothing may go.
        assert_eq!(repository.inner.read().orders.len(), 4);
        for order in &orders {
            repository
                .transition(
                    order.id,
                    OrderStatus::Pending,
                    OrderStatus::Paid,
                    order.created_at,
                )
                .await
                .unwrap();
        }
        // All settled: the two oldest went, from every index; the counts keep them.
        let kept: Vec<OrderId> = repository.inner.read().orders.keys().copied().collect();
        let mut newest: Vec<OrderId> = orders.iter().map(|order| order.id).collect();
        newest.sort();
        assert_eq!(kept, newest[2..]);
        let by_sku = OrderQuery {
            sku: Some(sku.clone()),
            status: Some(OrderStatus::Paid),
            ..OrderQuery::default()
        };
        assert_eq!(repository.list(&by_sku).await.unwrap().orders.len(), 2);
        let by_user = OrderQuery {
            user: Some(orders[0].user.clone()),
            ..OrderQuery::default()
        };
        let listed = repository.list(&by_user).await.unwrap().orders;
        assert!(listed.iter().all(|order| kept.contains(&order.id)));
        assert_eq!(repository.counts(&sku).await.unwrap().paid.orders, 4);
        assert!(
            repository
                .inner
                .read()
                .by_sku_status
                .values()
                .all(|ids| ids.len() <= 2)
        );
    }
}
