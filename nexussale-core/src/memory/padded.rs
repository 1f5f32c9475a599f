//! A value alone on its cache lines.

use std::ops::Deref;

/// Keeps a contended atomic off the cache lines of the read-mostly fields beside it, so writes to
/// it do not invalidate their reads on other cores (false sharing). 128 bytes: two lines, as
/// adjacent-line prefetching pairs them on x86.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
