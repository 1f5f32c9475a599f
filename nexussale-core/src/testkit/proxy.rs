//! A TCP proxy that fails on command, for a backend's fault tests: put it between the backend and
//! its server, then cut every connection, refuse new ones, or stall traffic for a while.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use nexussale_core::testkit::proxy::FaultProxy;
//!
//! let proxy = FaultProxy::start("127.0.0.1:3306").await.unwrap();
//! let url = format!("mysql://root@{}/test", proxy.address());
//! // ... connect the backend to `url`, then:
//! proxy.set_down(true); // every connection cut, new ones refused
//! proxy.set_down(false);
//! proxy.set_stalled(true); // connections stay open, nothing moves
//! proxy.set_stalled(false);
//! # let _ = url; }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Control {
    upstream: String,
    down: AtomicBool,
    stalled: watch::Sender<bool>,
    /// Cancelled to cut every connection open now; replaced for the next ones.
    cut: Mutex<CancellationToken>,
    accepted: AtomicU64,
}

/// The proxy; it stops (and cuts everything) when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    control: Arc<Control>,
    stop: CancellationToken,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let control = Arc::new(Control {
            upstream: upstream.to_owned(),
            down: AtomicBool::new(false),
            stalled: watch::Sender::new(false),
            cut: Mutex::new(CancellationToken::new()),
            accepted: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, Arc::clone(&control), stop.clone()));
        Ok(Self {
            address,
            control,
            stop,
        })
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.control.accepted.load(Ordering::Relaxed)
    }

    /// Down: every open connection is cut and new ones are closed at once. Up: forwarding again.
    pub fn set_down(&self, down: bool) {
        self.control.down.store(down, Ordering::SeqCst);
        if down {
            self.cut();
        }
    }

    /// Cuts every open connection (new ones are forwarded as before).
    pub fn cut(&self) {
        let mut cut = self.control.cut.lock();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    /// Stalled: connections stay open but no byte moves either way until unstalled (a database
    /// that stopped answering, a network partition without resets).
    pub fn set_stalled(&self, stalled: bool) {
        self.control.stalled.send_replace(stalled);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

async fn accept(listener: TcpListener, control: Arc<Control>, stop: CancellationToken) {
    loop {
        let client = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        control.accepted.fetch_add(1, Ordering::Relaxed);
        if control.down.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let cut = control.cut.lock().clone();
        let control = Arc::clone(&control);
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&control.upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            // When either direction ends (or the cut comes), both halves drop: the connection
            // closes on both sides.
            tokio::select! {
                () = pump(client_read, server_write, &control, &cut) => {}
                () = pump(server_read, client_write, &control, &cut) => {}
            }
        });
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    control: &Control,
    cut: &CancellationToken,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut stalled = control.stalled.subscribe();
    loop {
        let read = tokio::select! {
            () = cut.cancelled() => return,
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            },
        };
        // While stalled, the bytes read wait here.
        while *stalled.borrow_and_update() {
            tokio::select! {
                () = cut.cancelled() => return,
                changed = stalled.changed() => if changed.is_err() { return },
            }
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
