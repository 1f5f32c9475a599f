//! A purchase, once begun, finishes: clients that hang up mid-request (hyper then drops the
//! request's future) leave no unit reserved without its order.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;
use std::time::Duration;

use nexussale_core::layers::{Faulty, Method};
use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
use nexussale_core::{CancellationToken, FlashSale, OrderRepository, Sale, Sku};
use nexussale_server::{Limits, app, serve_with};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hanging_up_mid_purchase_strand_no_units() {
    let repository = Arc::new(MemoryOrderRepository::new());
    // Every publish takes 200 ms: a window between the reserve and the durable publish for
    // hang-ups to land in.
    let slow_publish = Faulty::faulty(MemoryOrderQueue::new());
    slow_publish
        .hook()
        .slow(Method::Publish, Duration::from_millis(200));
    let engine = FlashSale::new(
        Arc::new(MemoryStockStore::new()),
        Arc::new(slow_publish),
        repository.clone(),
    );
    let sku = Sku::new("hangup").unwrap();
    engine
        .create_sale(Sale::new(sku.clone(), 100_000))
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve_with(
        listener,
        app(engine.clone()),
        stop.clone(),
        Limits::default(),
    ));

    // 2,000 buyers in waves of 400, each hanging up 50 ms after sending: mid-publish.
    for wave in 0..5 {
        let buyers = (0..400).map(|n| {
            tokio::spawn(async move {
                let body = format!(r#"{{"user":"buyer-{wave}-{n}"}}"#);
                let request = format!(
                    "POST /v1/sales/hangup/purchase HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut stream = TcpStream::connect(address).await.unwrap();
                stream.write_all(request.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(stream);
            })
        });
        futures::future::join_all(buyers).await;
    }

    // Every purchase that reserved finishes its publish; the worker stores the orders.
    tokio::time::sleep(Duration::from_millis(500)).await;
    engine.drain().await.unwrap();
    let held = engine.sale(&sku).await.unwrap().snapshot.reserved;
    let counts = repository.counts(&sku).await.unwrap();
    assert!(held > 0, "no purchase reserved anything");
    assert_eq!(
        held, counts.pending.units,
        "{held} units reserved, {} with an order",
        counts.pending.units
    );
    stop.cancel();
}
