//! Live stock over server-sent events: every listener sees each change, a sale's listeners
//! share one read a tick, a feed stops when nobody listens, and shutdown ends the streams.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use common::Events;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};

use hyper::body::Body;
use hyper::service::Service;
use nexussale_core::layers::{Faulty, Method as Call};
use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
use nexussale_core::{CancellationToken, FlashSale, PurchaseRequest, Sale, Sku, UserId};
use nexussale_server::{AppState, app_with, serve};
use serde_json::Value;

const TICK: Duration = Duration::from_millis(50);

/// Reads events until one shows `available`.
trait UntilAvailable {
    async fn until_available(&mut self, available: u64) -> Value;
}

impl<B> UntilAvailable for Events<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    async fn until_available(&mut self, available: u64) -> Value {
        loop {
            let event = self.next().await.expect("the stream ended");
            if event["available"] == available {
                return event;
            }
        }
    }
}

fn engine(stock: Arc<Faulty<MemoryStockStore>>) -> FlashSale {
    FlashSale::new(
        stock,
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(MemoryOrderRepository::new()),
    )
}

async fn buy(engine: &FlashSale, sku: &Sku, user: &str) {
    engine
        .purchase(PurchaseRequest::new(
            sku.clone(),
            UserId::new(user).unwrap(),
        ))
        .await
        .unwrap();
}

async fn listen(app: &nexussale_server::App) -> nexussale_server::Response {
    app.call(common::json_request(
        Method::GET,
        "/v1/sales/live/events",
        None,
    ))
    .await
    .unwrap()
}

/// 200 listeners of one sale each get the current stock at once and then each change, while
/// the backend is read once a tick for all of them; once they leave, the reads stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_share_one_read_a_tick_and_see_each_change() {
    let stock = Arc::new(Faulty::faulty(MemoryStockStore::new()));
    let engine = engine(stock.clone());
    let sku = Sku::new("live").unwrap();
    engine
        .create_sale(Sale::new(sku.clone(), 100))
        .await
        .unwrap();
    let app = app_with(AppState::new(engine.clone()).feed_tick(TICK));

    let mut listeners = Vec::new();
    for _ in 0..200 {
        let response = listen(&app).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        listeners.push(Events::new(response.into_body(), "stock"));
    }
    for listener in &mut listeners {
        let first = listener.next().await.unwrap();
        assert_eq!(
            (&first["sku"], &first["available"], &first["state"]),
            (
                &Value::from("live"),
                &Value::from(100),
                &Value::from("active")
            ),
            "{first}"
        );
    }

    let reads_before = stock.hook().calls(Call::Snapshot);
    let started = Instant::now();
    for user in ["ann", "bob", "cy"] {
        buy(&engine, &sku, user).await;
    }
    for listener in &mut listeners {
        let event = listener.until_available(97).await;
        assert_eq!(event["reserved"], 3, "{event}");
    }
    tokio::time::sleep(TICK * 10).await;
    let reads = stock.hook().calls(Call::Snapshot) - reads_before;
    let ticks = (started.elapsed().as_millis() / TICK.as_millis()) as u64;
    // One read a tick for the sale (the purchases read none), not one per listener.
    assert!(
        reads <= ticks + 2,
        "{reads} snapshot reads in {ticks} ticks for 200 listeners"
    );

    // Everyone leaves: the feed stops reading.
    drop(listeners);
    tokio::time::sleep(TICK * 4).await;
    let after_leaving = stock.hook().calls(Call::Snapshot);
    tokio::time::sleep(TICK * 10).await;
    assert_eq!(
        stock.hook().calls(Call::Snapshot),
        after_leaving,
        "a feed without listeners kept reading"
    );

    // A listener who comes back starts it again, with the stock as it is.
    let response = listen(&app).await;
    let mut again = Events::new(response.into_body(), "stock");
    assert_eq!(again.next().await.unwrap()["available"], 97);
    buy(&engine, &sku, "dee").await;
    again.until_available(96).await;
}

/// An unknown sale or a bad sku is a JSON error, not a stream.
#[tokio::test]
async fn an_unknown_sale_has_no_stream() {
    let engine = engine(Arc::new(Faulty::faulty(MemoryStockStore::new())));
    let app = app_with(AppState::new(engine));
    let (status, body) = common::call(&app, Method::GET, "/v1/sales/nope/events", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_sale"))
    );
    let long = format!("/v1/sales/{}/events", "x".repeat(200));
    let (status, _) = common::call(&app, Method::GET, &long, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Shutting the server down ends every open stream at once (graceful shutdown would otherwise
/// wait its whole grace period for them), and the server returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_streams() {
    let engine = engine(Arc::new(Faulty::faulty(MemoryStockStore::new())));
    engine
        .create_sale(Sale::new(Sku::new("closing").unwrap(), 5))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        app_with(AppState::new(engine).feed_tick(TICK)),
        stop.clone(),
    ));
    let client = common::client();
    let response = client
        .request(common::json_request(
            Method::GET,
            &format!("http://{address}/v1/sales/closing/events"),
            None,
        ))
        .await
        .unwrap();
    let mut events = Events::new(response.into_body(), "stock");
    assert_eq!(events.next().await.unwrap()["available"], 5);

    let stopping = Instant::now();
    stop.cancel();
    assert!(events.next().await.is_none(), "the stream went on");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server did not stop")
        .unwrap()
        .unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} for the streams",
        stopping.elapsed()
    );
}
