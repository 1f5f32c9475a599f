//! Many sales at once (`--sales N`): the sales `{sku}-0`…`{sku}-(N-1)`, created concurrently,
//! buyer `user-u` buying from sale `u mod N`, and the audit over all of them from two paged
//! listings (every order, every sale) instead of one listing per sale.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde::Deserialize;

use crate::BenchError;
use crate::args::Args;
use crate::audit::{self, Findings, Order, Sale};
use crate::http::{Connection, Target};
use crate::load::{self, Kind, Pacing};

/// The skus of the run: `--sku` itself for one sale, else `{sku}-{i}`.
pub(crate) fn skus(args: &Args) -> Vec<String> {
    match args.sales {
        0 | 1 => vec![args.sku.clone()],
        count => (0..count).map(|i| format!("{}-{i}", args.sku)).collect(),
    }
}

/// Creates every sale, `concurrency` at a time (unless `--no-create`): the seconds it took,
/// from the moment every connection was open.
pub(crate) async fn create_all(
    target: &Target,
    args: &Args,
    skus: &[String],
) -> Result<f64, BenchError> {
    if args.no_create {
        return Ok(0.0);
    }
    let (stock, limit) = (args.stock, args.per_user_limit);
    let bodies: Vec<String> = skus
        .iter()
        .map(|sku| {
            serde_json::json!({ "sku": sku, "stock": stock, "per_user_limit": limit }).to_string()
        })
        .collect();
    let creator = target.clone();
    let run = load::fire(
        target,
        skus.len() as u64,
        args.concurrency,
        "sales",
        move |job| {
            creator.admin_request(
                Method::POST,
                "/v1/sales",
                Some(bodies[job as usize].clone()),
            )
        },
        |status, _| {
            if status == StatusCode::CREATED {
                Kind::Success
            } else {
                Kind::Error
            }
        },
        Pacing::default(),
    )
    .await?;
    match run.count(Kind::Error) {
        0 => Ok(run.elapsed.as_secs_f64()),
        failed => Err(BenchError::Usage(format!(
            "{failed} of {} sales could not be created: {:?}",
            skus.len(),
            run.sample_errors
        ))),
    }
}

/// A page of `GET /v1/sales`.
#[derive(Deserialize)]
struct SalePage {
    sales: Vec<Sale>,
    next: Option<String>,
}

/// Every persisted order of every sale.
async fn every_order(connection: &mut Connection) -> Result<Vec<Order>, BenchError> {
    audit::every_page(connection, "/v1/orders?limit=1000", |page: audit::Page| {
        (page.orders, page.next)
    })
    .await
}

/// Every sale, by sku.
async fn every_sale(connection: &mut Connection) -> Result<HashMap<String, Sale>, BenchError> {
    let sales = audit::every_page(connection, "/v1/sales?limit=1000", |page: SalePage| {
        (page.sales, page.next)
    })
    .await?;
    Ok(sales
        .into_iter()
        .map(|sale| (sale.sku.clone(), sale))
        .collect())
}

/// Waits until every accepted order is persisted (or `wait` passes), then audits each sale of
/// `skus`: what was found, and the sales' totals (stock, available, reserved, sold).
pub(crate) async fn audit_all(
    connection: &mut Connection,
    skus: &[String],
    accepted: &HashSet<String>,
    wait: Duration,
) -> Result<(Findings, Sale), BenchError> {
    let deadline = Instant::now() + wait;
    let orders = loop {
        let orders = every_order(connection).await?;
        let found = orders.iter().filter(|o| accepted.contains(&o.id)).count();
        if found >= accepted.len() || Instant::now() >= deadline {
            break orders;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let sales = every_sale(connection).await?;
    Ok((
        audit_sales(skus, &sales, accepted, &orders)?,
        total(skus, &sales),
    ))
}

/// Each sale audited on its own orders (oversold and duplicates are per sale); persisted and
/// lost over the whole run.
fn audit_sales(
    skus: &[String],
    sales: &HashMap<String, Sale>,
    accepted: &HashSet<String>,
    orders: &[Order],
) -> Result<Findings, BenchError> {
    let mut by_sku: HashMap<&str, Vec<Order>> = HashMap::new();
    for order in orders {
        by_sku
            .entry(order.sku.as_str())
            .or_default()
            .push(order.clone());
    }
    let none = HashSet::new();
    let mut findings = audit::audit(&Sale::default(), accepted, orders);
    (findings.oversold, findings.duplicates) = (0, 0);
    for sku in skus {
        let sale = sales.get(sku).ok_or_else(|| {
            BenchError::Usage(format!("sale {sku} is missing from GET /v1/sales"))
        })?;
        let own = by_sku.get(sku.as_str()).map_or(&[][..], Vec::as_slice);
        let found = audit::audit(sale, &none, own);
        findings.oversold += found.oversold;
        findings.duplicates += found.duplicates;
    }
    Ok(findings)
}

/// The sales of `skus` added up.
fn total(skus: &[String], sales: &HashMap<String, Sale>) -> Sale {
    let mut total = Sale::default();
    for sale in skus.iter().filter_map(|sku| sales.get(sku)) {
        total.stock += sale.stock;
        total.available += sale.available;
        total.reserved += sale.reserved;
        total.sold += sale.sold;
        total.per_user_limit = sale.per_user_limit;
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn order(id: &str, sku: &str, user: &str) -> Order {
        Order {
            id: id.into(),
            sku: sku.into(),
            user: user.into(),
            quantity: 1,
            status: "pending".into(),
        }
    }

    fn sale(sku: &str, stock: u64) -> Sale {
        Sale {
            sku: sku.into(),
            stock,
            per_user_limit: 1,
            ..Sale::default()
        }
    }

    #[test]
    fn each_sale_is_audited_on_its_own_orders() {
        let skus = vec!["s-0".to_owned(), "s-1".to_owned()];
        let sales = HashMap::from([
            ("s-0".to_owned(), sale("s-0", 1)),
            ("s-1".to_owned(), sale("s-1", 1)),
        ]);
        let accepted = HashSet::from(["a".to_owned(), "b".to_owned(), "c".to_owned()]);
        // One unit each, one order each: clean, though two orders of two sales share a buyer.
        let clean = [order("a", "s-0", "u1"), order("b", "s-1", "u1")];
        let findings = audit_sales(&skus, &sales, &accepted, &clean).unwrap();
        assert_eq!((findings.persisted, findings.lost), (2, 1));
        assert_eq!((findings.oversold, findings.duplicates), (0, 0));
        // Two units of s-1 (stock 1), the second to the same buyer: oversold and duplicated,
        // which a run-wide audit against the summed stock (2) would not see.
        let oversold = [order("b", "s-1", "u1"), order("c", "s-1", "u1")];
        let findings = audit_sales(&skus, &sales, &accepted, &oversold).unwrap();
        assert_eq!((findings.oversold, findings.duplicates), (1, 1));
        // A sale the server does not list is an error, not a clean audit.
        let missing = vec!["s-2".to_owned()];
        assert!(audit_sales(&missing, &sales, &accepted, &clean).is_err());
    }
}
