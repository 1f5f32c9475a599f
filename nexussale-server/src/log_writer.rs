//! [`BufferedLog`]: where the server binary's log lines go. A line is copied into a shared
//! buffer; the buffer reaches the sink (stdout) in one write once it holds 64 KiB, or every
//! 50 ms from a flusher thread. One system call per burst instead of one per line: with the
//! access log on, a write per request was a cost a client could measure (docs/BENCHMARKS.md).
//! Lines keep their order; a line waits at most 50 ms; [`FlushOnDrop`] writes the rest at exit.

use std::io::{self, Write};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tracing_subscriber::fmt::MakeWriter;

/// A buffer this full is written at once by the thread that filled it.
const FLUSH_AT: usize = 64 * 1024;
/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// Taken while the buffer is still locked: chunks reach the sink in the order taken.
    sink: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    /// Writes what the buffer holds (`buffer` is its lock, held by the caller).
    fn drain(&self, mut buffer: parking_lot::MutexGuard<'_, Vec<u8>>) {
        if buffer.is_empty() {
            return;
        }
        let chunk = std::mem::take(&mut *buffer);
        let mut sink = self.sink.lock();
        drop(buffer);
        // Nowhere left to report a failed log write: the line is dropped, the server goes on.
        let _ = sink.write_all(&chunk).and_then(|()| sink.flush());
    }

    /// Adds `bytes` (whole lines) to the buffer, writing it out once it is full.
    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock();
        buffer.extend_from_slice(bytes);
        if buffer.len() >= FLUSH_AT {
            self.drain(buffer);
        }
    }
}

/// A [`MakeWriter`] for tracing-subscriber's `fmt` whose lines are written in bursts.
#[derive(Clone)]
pub struct BufferedLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BufferedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferedLog")
            .field("waiting_bytes", &self.shared.buffer.lock().len())
            .finish()
    }
}

/// Writes what is still buffered when dropped (keep it until the process ends).
#[must_use = "dropping it at once writes nothing later lines need"]
pub struct FlushOnDrop {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FlushOnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlushOnDrop")
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.shared.drain(self.shared.buffer.lock());
    }
}

impl BufferedLog {
    /// Lines to stdout.
    pub fn stdout() -> (Self, FlushOnDrop) {
        Self::to(io::stdout())
    }

    /// Lines to `sink`, flushed by a thread of its own (which ends with the last handle).
    pub fn to(sink: impl Write + Send + 'static) -> (Self, FlushOnDrop) {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(FLUSH_AT)),
            sink: Mutex::new(Box::new(sink)),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let _ = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                while let Some(shared) = weak.upgrade() {
                    shared.drain(shared.buffer.lock());
                    drop(shared);
                    std::thread::sleep(FLUSH_EVERY);
                }
            });
        let guard = FlushOnDrop {
            shared: Arc::clone(&shared),
        };
        (Self { shared }, guard)
    }

    /// Writes one whole line (or several), after those written before it.
    pub fn write_line(&self, line: &[u8]) {
        self.shared.append(line);
    }
}

/// One event's writer: tracing-subscriber formats the whole line, then writes it here at once.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl std::fmt::Debug for LineWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineWriter")
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.shared.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedLog {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A sink the test can read (the log format's tests write to it too).
    #[derive(Clone, Default)]
    pub(crate) struct Sink(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_keep_their_order_and_all_arrive() {
        let sink = Sink::default();
        let (log, guard) = BufferedLog::to(sink.clone());
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let log = log.clone();
                scope.spawn(move || {
                    for n in 0..5_000 {
                        let line = format!("{thread} {n:05} {}\n", "x".repeat(n % 200));
                        log.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(sink.0.lock().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for thread in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|line| line.strip_prefix(&format!("{thread} ")))
                .map(|rest| rest[..5].parse().unwrap())
                .collect();
            assert_eq!(mine, (0..5_000).collect::<Vec<_>>(), "thread {thread}");
        }
    }

    #[test]
    fn a_line_waits_at_most_a_flush_interval() {
        let sink = Sink::default();
        let (log, _guard) = BufferedLog::to(sink.clone());
        log.make_writer().write_all(b"listening\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never flushed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*sink.0.lock(), b"listening\n");
    }
}
