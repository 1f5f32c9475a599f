//! Decorators: wrappers that implement a backend trait over another implementation of it and
//! add one cross-cutting behaviour, written once for every backend (tower's layers,
//! object_store's `LimitStore`).
//!
//! | wrapper | what it adds |
//! | --- | --- |
//! | [`Watched`] | failures logged once per outage, with counts ([`OutageLog`](crate::OutageLog)); the engine wraps its three backends in it |

mod watched;

pub use watched::Watched;
