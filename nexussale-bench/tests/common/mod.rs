//! Helpers shared by the bench's tests: a server in this process, and the bench binary run
//! against it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;

use nexussale_core::{CancellationToken, Sale};
use nexussale_server::{AppState, BackendConfig, Backends, Identity};
use serde_json::Value;

/// A server on a free port of this process, over `backends`, with `sales` created and (when
/// `worker`) the order worker persisting; stopped gracefully when dropped, also by a failed test.
pub(crate) struct Served {
    pub(crate) address: String,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

pub(crate) fn serve(backends: BackendConfig, sales: Vec<Sale>, worker: bool) -> Served {
    serve_as(backends, sales, worker, Identity::open())
}

/// [`serve`] with credentials.
pub(crate) fn serve_as(
    backends: BackendConfig,
    sales: Vec<Sale>,
    worker: bool,
    identity: Identity,
) -> Served {
    let stop = CancellationToken::new();
    let (ready, address) = mpsc::channel();
    let thread = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let engine = Backends::connect(&backends).await.unwrap().engine();
                for sale in sales {
                    engine.ensure_sale(sale).await.unwrap();
                }
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready
                    .send(listener.local_addr().unwrap().to_string())
                    .unwrap();
                let worker = worker.then(|| {
                    let (engine, stop) = (engine.clone(), stop.clone());
                    tokio::spawn(async move { engine.run_worker(stop).await })
                });
                // Waiting rooms admit as in a server.
                tokio::spawn({
                    let (engine, stop) = (engine.clone(), stop.clone());
                    async move { engine.run_admission(stop).await }
                });
                let mut state = AppState::new(engine.clone());
                state.identity = identity;
                nexussale_server::serve(listener, nexussale_server::app_with(state), stop)
                    .await
                    .unwrap();
                if let Some(worker) = worker {
                    worker.await.unwrap();
                }
            });
        }
    });
    Served {
        address: address.recv().expect("the server started"),
        stop,
        thread: Some(thread),
    }
}

pub(crate) fn in_memory(worker: bool) -> Served {
    serve(BackendConfig::default(), Vec::new(), worker)
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs the bench with `args` against `address`: its exit code and its JSON summary.
pub(crate) fn bench(address: &str, args: &[&str]) -> (i32, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_nexussale-bench"))
        .args(["--url", &format!("http://{address}")])
        .args(args)
        .output()
        .expect("run nexussale-bench");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    let summary = serde_json::from_str(last)
        .unwrap_or_else(|err| panic!("no JSON summary ({err}): {stdout}\n{stderr}"));
    (output.status.code().unwrap(), summary)
}
