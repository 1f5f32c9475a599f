//! [`OrderIds`]: the order ids one key of a repository index lists (a buyer's, a sale's).

use std::collections::BTreeSet;
use std::ops::{Bound, RangeBounds};

use crate::order::OrderId;

/// A set of order ids that holds one id inline: most buyers of a drop have one order, and a set
/// of its own (a B-tree leaf, ~200 bytes) for each of millions of them would cost more than
/// the order. Past one id it is a [`BTreeSet`].
#[derive(Debug, Default)]
pub(super) enum OrderIds {
    #[default]
    Empty,
    One(OrderId),
    Many(BTreeSet<OrderId>),
}

impl OrderIds {
    /// Adds `id`.
    pub(super) fn insert(&mut self, id: OrderId) {
        match self {
            Self::Empty => *self = Self::One(id),
            Self::One(one) if *one == id => {}
            Self::One(one) => *self = Self::Many(BTreeSet::from([*one, id])),
            Self::Many(ids) => {
                ids.insert(id);
            }
        }
    }

    /// Takes `id` out.
    pub(super) fn remove(&mut self, id: &OrderId) {
        match self {
            Self::One(one) if one == id => *self = Self::Empty,
            Self::Many(ids) => {
                ids.remove(id);
            }
            Self::Empty | Self::One(_) => {}
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::One(_) => false,
            Self::Many(ids) => ids.is_empty(),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(_) => 1,
            Self::Many(ids) => ids.len(),
        }
    }

    /// Every id, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &OrderId> + '_ {
        self.newest_first(Bound::Unbounded).rev()
    }

    /// The ids below `upper`, newest first (a listing's page after its cursor).
    pub(super) fn newest_first(
        &self,
        upper: Bound<OrderId>,
    ) -> Box<dyn DoubleEndedIterator<Item = &OrderId> + '_> {
        match self {
            Self::Empty => Box::new(std::iter::empty()),
            Self::One(one) => {
                let below = (Bound::Unbounded, upper).contains(one);
                Box::new(below.then_some(one).into_iter())
            }
            Self::Many(ids) => Box::new(ids.range((Bound::Unbounded, upper)).rev()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_from_one_inline_id_and_shrinks_back() {
        let (a, b, c) = (OrderId::new(), OrderId::new(), OrderId::new());
        let mut ids = OrderIds::default();
        assert!(ids.is_empty());
        ids.insert(b);
        ids.insert(b);
        assert!(matches!(ids, OrderIds::One(_)));
        assert_eq!(ids.len(), 1);
        ids.insert(a);
        ids.insert(c);
        assert_eq!(ids.iter().copied().collect::<Vec<_>>(), [a, b, c]);
        assert_eq!(
            ids.newest_first(Bound::Excluded(c))
                .copied()
                .collect::<Vec<_>>(),
            [b, a]
        );
        for id in [a, b, c] {
            ids.remove(&id);
        }
        assert!(ids.is_empty());
    }

    #[test]
    fn one_id_answers_a_page_below_or_above_it() {
        let (older, id, newer) = (OrderId::new(), OrderId::new(), OrderId::new());
        let mut ids = OrderIds::default();
        ids.insert(id);
        let page = |upper| ids.newest_first(upper).copied().collect::<Vec<_>>();
        assert_eq!(page(Bound::Unbounded), [id]);
        assert_eq!(page(Bound::Excluded(newer)), [id]);
        assert_eq!(page(Bound::Excluded(id)), Vec::<OrderId>::new());
        assert_eq!(page(Bound::Excluded(older)), Vec::<OrderId>::new());
        ids.remove(&older);
        assert_eq!(ids.len(), 1);
        ids.remove(&id);
        assert!(ids.is_empty());
    }
}
