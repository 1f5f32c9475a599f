//! Live-stock listeners (`--listeners N`): N open `GET /v1/sales/{sku}/events` streams, each on
//! a connection of its own, from before the burst to after it — what a shop front's "N left"
//! and the console cost the server while it sells.

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use nexussale_core::CancellationToken;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::BenchError;
use crate::http::Target;

/// The open streams.
pub(crate) struct Listeners {
    tasks: Vec<JoinHandle<u64>>,
    stop: CancellationToken,
}

/// Opens `count` streams of `sku`'s events and waits for each one's first event (so all are
/// open before the burst starts).
pub(crate) async fn open(
    target: &Target,
    sku: &str,
    count: usize,
) -> Result<Listeners, BenchError> {
    let stop = CancellationToken::new();
    let path = format!("{}/events", crate::sale_path(sku));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = TcpStream::connect(target.authority()).await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request: http::Request<Full<Bytes>> = target.request(Method::GET, &path, None, None);
        let response = sender.send_request(request).await?;
        if response.status() != StatusCode::OK {
            return Err(BenchError::Server {
                what: format!("GET {path}"),
                status: response.status(),
                body: String::new(),
            });
        }
        let mut body = response.into_body();
        let mut events = 0;
        // The first event: the stock as it is.
        while events == 0 {
            match body.frame().await {
                Some(Ok(frame)) => events += stock_events(frame.data_ref()),
                _ => {
                    return Err(BenchError::Usage(format!(
                        "GET {path} ended before its first event"
                    )));
                }
            }
        }
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            // Keeps the sender (the connection) until the end.
            let _sender = sender;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return events,
                    frame = body.frame() => match frame {
                        Some(Ok(frame)) => events += stock_events(frame.data_ref()),
                        _ => return events,
                    },
                }
            }
        }));
    }
    Ok(Listeners { tasks, stop })
}

fn stock_events(data: Option<&Bytes>) -> u64 {
    data.map_or(0, |data| {
        data.windows(b"event: stock".len())
            .filter(|window| *window == b"event: stock")
            .count() as u64
    })
}

impl Listeners {
    /// Closes every stream; answers how many events they received in all.
    pub(crate) async fn close(self) -> u64 {
        self.stop.cancel();
        let mut events = 0;
        for task in self.tasks {
            events += task.await.unwrap_or(0);
        }
        events
    }
}
