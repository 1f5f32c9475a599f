//! Purchases per second on one hot sale through the engine on the in-memory backends, next to a
//! baseline that does only the essential work of a purchase: one atomic decrement, one
//! concurrent-map insert for the user, one channel push.
//!
//! Both run the same harness: a fresh sale (stock large enough never to sell out) per measured
//! batch, 64 tasks on a 2-thread tokio runtime, each buying for distinct users. Run with
//! `cargo bench -p nexussale-core --bench purchase`; see docs/BENCHMARKS.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use dashmap::DashMap;
use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
use nexussale_core::{FlashSale, MAX_STOCK, PurchaseOutcome, PurchaseRequest, Sale, Sku, UserId};
use tokio::sync::mpsc;

const TASKS: u64 = 64;
const BATCH: u64 = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `per_task(task, n)` for `TASKS` tasks sharing `iters` purchases; answers the wall time.
async fn fan_out<F, Fut>(iters: u64, per_task: F) -> Duration
where
    F: Fn(u64, u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let per = iters.div_ceil(TASKS);
    let start = Instant::now();
    let handles: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(per_task(task, per)))
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    start.elapsed()
}

/// One batch of `BATCH` purchases through the engine on fresh in-memory backends; its wall time.
async fn engine_batch() -> Duration {
    let engine = FlashSale::new(
        Arc::new(MemoryStockStore::new()),
        Arc::new(MemoryOrderQueue::with_limits(
            usize::MAX,
            Duration::from_secs(3600),
        )),
        Arc::new(MemoryOrderRepository::new()),
    );
    let sku = Sku::new("hot").unwrap();
    engine
        .create_sale(Sale::new(sku.clone(), MAX_STOCK))
        .await
        .unwrap();
    fan_out(BATCH, |task, n| {
        let engine = engine.clone();
        let sku = sku.clone();
        async move {
            for i in 0..n {
                let user = UserId::new(format!("user-{task}-{i}")).unwrap();
                let outcome = engine
                    .purchase(PurchaseRequest::new(sku.clone(), user))
                    .await
                    .unwrap();
                assert!(matches!(outcome, PurchaseOutcome::Accepted(_)));
            }
        }
    })
    .await
}

/// One batch of the essential work alone; its wall time.
async fn baseline_batch() -> Duration {
    let stock = Arc::new(AtomicU64::new(MAX_STOCK));
    // The same hasher as the in-memory stock store's maps.
    let holders: Arc<DashMap<String, u32, foldhash::fast::RandomState>> =
        Arc::new(DashMap::default());
    let (sender, receiver) = mpsc::unbounded_channel::<(String, u64)>();
    let elapsed = fan_out(BATCH, |task, n| {
        let (stock, holders, sender) = (stock.clone(), holders.clone(), sender.clone());
        async move {
            for i in 0..n {
                let user = format!("user-{task}-{i}");
                let left = stock.fetch_sub(1, Ordering::AcqRel);
                holders.insert(user.clone(), 1);
                sender.send((user, left)).unwrap();
            }
        }
    })
    .await;
    black_box(receiver);
    elapsed
}

/// Criterion measures `batch` (one batch of `BATCH` purchases per iteration) as `name`.
fn bench_batches<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    batch: F,
) where
    F: Fn() -> Fut + Copy,
    Fut: std::future::Future<Output = Duration>,
{
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += batch().await;
            }
            total
        })
    });
}

fn engine_purchases(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("hot_sale");
    group.throughput(Throughput::Elements(BATCH));
    bench_batches(&mut group, rt, "engine_purchase", engine_batch);
    bench_batches(&mut group, rt, "baseline_essential_work", baseline_batch);
    group.finish();
}

/// Engine and baseline batches alternated, so both meet the same machine noise: prints each
/// side's median rate and the median of the per-round ratios (the figure docs/BENCHMARKS.md
/// records). `ROUNDS` pairs; skipped when criterion is asked for a profile or a listing.
fn interleaved_ratio(rt: &tokio::runtime::Runtime) {
    const ROUNDS: usize = 40;
    let rate = |elapsed: Duration| BATCH as f64 / elapsed.as_secs_f64();
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (mut engine, mut baseline, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..ROUNDS {
            let e = rate(engine_batch().await);
            let b = rate(baseline_batch().await);
            engine.push(e);
            baseline.push(b);
            ratios.push(e / b);
        }
    });
    println!(
        "interleaved ({ROUNDS} rounds of {BATCH}): engine {:.0} purchases/s, baseline {:.0}/s, ratio {:.2} (median of rounds)",
        median(engine),
        median(baseline),
        median(ratios),
    );
}

/// `NEXUSSALE_BENCH_ONLY=engine|baseline` with `NEXUSSALE_BENCH_BATCHES=N`: runs just N batches
/// of one side on one thread and exits, for instruction counts under
/// `valgrind --tool=callgrind` (deterministic where wall time on this machine is not).
fn only(side: &str) {
    let batches: u64 = std::env::var("NEXUSSALE_BENCH_BATCHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..batches {
            match side {
                "engine" => black_box(engine_batch().await),
                "baseline" => black_box(baseline_batch().await),
                other => panic!("NEXUSSALE_BENCH_ONLY must be engine or baseline, not {other}"),
            };
        }
    });
    std::process::exit(0);
}

fn benches(c: &mut Criterion) {
    if let Ok(side) = std::env::var("NEXUSSALE_BENCH_ONLY") {
        only(&side);
    }
    let rt = runtime();
    let args: Vec<String> = std::env::args().collect();
    if !args
        .iter()
        .any(|arg| arg == "--profile-time" || arg == "--list")
    {
        interleaved_ratio(&rt);
    }
    engine_purchases(c, &rt);
}

criterion_group! {
    name = purchase;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(10));
    targets = benches
}
criterion_main!(purchase);
