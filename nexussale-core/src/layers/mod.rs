//! Decorators: one wrapper, [`Hooked`], implements each backend trait over another
//! implementation of it and forwards every method once; a [`Hook`] adds one cross-cutting
//! behaviour around the calls, written once for every backend (tower's layers, object_store's
//! `LimitStore`).
//!
//! | wrapper | hook | what it adds |
//! | --- | --- | --- |
//! | [`Watched`] | [`OutageLog`](crate::OutageLog) | failures logged once per outage, with counts; the engine wraps its three backends in it |
//! | [`Faulty`] | [`Faults`] | failures injected as planned: the Nth call refused, every call refused until healed, replies lost after the call took effect, a method slowed (tests) |
//! | [`Hooked`] | yours | anything else: the server's `/metrics` timings are a hook |

mod faults;
mod hooked;
mod watched;

pub use faults::{Faults, Faulty};
pub use hooked::{Answer, Backend, Call, Hook, Hooked, Method};
pub use watched::Watched;
