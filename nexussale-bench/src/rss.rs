//! The server's resident memory, read from /proc while the load runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nexussale_core::CancellationToken;

/// Resident memory of `pid` in KiB, from `/proc/{pid}/status`.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The only local process named `nexussale-server`; otherwise why there is none to sample.
pub(crate) fn find_server() -> Result<u32, String> {
    let found: Vec<u32> = std::fs::read_dir("/proc")
        .map_err(|err| format!("/proc cannot be read ({err})"))?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `comm` holds at most 15 bytes of the name.
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| "nexussale-server".starts_with(comm.trim()) && comm.len() > 10)
        })
        .collect();
    match found.as_slice() {
        [pid] => Ok(*pid),
        [] => Err("no nexussale-server process runs on this machine".to_owned()),
        pids => Err(format!(
            "{} nexussale-server processes run here ({pids:?}), so it cannot tell which is this run's",
            pids.len()
        )),
    }
}

/// Samples `pid` every `every` until cancelled; the largest sample so far in KiB.
pub(crate) fn sample_max(pid: u32, every: Duration, stop: CancellationToken) -> Arc<AtomicU64> {
    let max = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
    let shared = max.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        while stop.run_until_cancelled(tick.tick()).await.is_some() {
            if let Some(kib) = rss_kib(pid) {
                shared.fetch_max(kib, Ordering::Relaxed);
            }
        }
    });
    max
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_this_process() {
        let kib = rss_kib(std::process::id()).unwrap();
        assert!(kib > 100, "{kib} KiB");
        assert_eq!(rss_kib(u32::MAX), None);
    }
}
