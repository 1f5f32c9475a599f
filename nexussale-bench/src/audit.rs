//! The audit: what the server persisted, checked against what it accepted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde::Deserialize;

use crate::BenchError;
use crate::http::Connection;

/// A persisted order, as `GET /v1/orders` shows it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Order {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) sku: String,
    pub(crate) user: String,
    pub(crate) quantity: u64,
    pub(crate) status: String,
}

/// A page of `GET /v1/orders`.
#[derive(Deserialize)]
pub(crate) struct Page {
    pub(crate) orders: Vec<Order>,
    pub(crate) next: Option<String>,
}

/// A sale, as `GET /v1/sales/{sku}` shows it.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Sale {
    #[serde(default)]
    pub(crate) sku: String,
    pub(crate) stock: u64,
    pub(crate) per_user_limit: u64,
    pub(crate) available: u64,
    pub(crate) reserved: u64,
    pub(crate) sold: u64,
}

/// What the audit found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Findings {
    /// Accepted orders found persisted.
    pub(crate) persisted: u64,
    /// Units persisted (in live orders) beyond the stock.
    pub(crate) oversold: u64,
    /// Orders beyond a user's limit, plus orders listed more than once.
    pub(crate) duplicates: u64,
    /// Accepted orders never persisted.
    pub(crate) lost: u64,
}

impl Findings {
    pub(crate) fn clean(&self) -> bool {
        self.oversold == 0 && self.duplicates == 0 && self.lost == 0
    }
}

fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    connection: &mut Connection,
    path: &str,
) -> Result<T, BenchError> {
    // A server rebuilding a sale, or a backend recovering, answers 503 with Retry-After: the
    // audit waits it out (up to a minute) instead of giving up on a run that is otherwise done.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (status, body) = loop {
        let request = connection.target().admin_request(Method::GET, path, None);
        let (status, body) = connection.send(request).await?;
        if status != StatusCode::SERVICE_UNAVAILABLE || std::time::Instant::now() >= give_up {
            break (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    if status != StatusCode::OK {
        return Err(BenchError::Server {
            what: format!("GET {path}"),
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    serde_json::from_slice(&body).map_err(|err| BenchError::Server {
        what: format!("GET {path}: {err}"),
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub(crate) async fn sale(connection: &mut Connection, sku: &str) -> Result<Sale, BenchError> {
    get_json(connection, &format!("/v1/sales/{}", percent_encode(sku))).await
}

/// Every persisted order of the sale, page by page.
pub(crate) async fn orders(
    connection: &mut Connection,
    sku: &str,
) -> Result<Vec<Order>, BenchError> {
    let path = format!("/v1/orders?sku={}&limit=1000", percent_encode(sku));
    every_page(connection, &path, |page: Page| (page.orders, page.next)).await
}

/// Every item of a paged listing: `path` (which has a query), then each next page by its
/// cursor; `split` takes a page apart into its items and the cursor of the next.
pub(crate) async fn every_page<P, T>(
    connection: &mut Connection,
    path: &str,
    split: impl Fn(P) -> (Vec<T>, Option<String>),
) -> Result<Vec<T>, BenchError>
where
    P: serde::de::DeserializeOwned,
{
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: P = match &after {
            Some(cursor) => get_json(connection, &format!("{path}&after={cursor}")).await?,
            None => get_json(connection, path).await?,
        };
        let (page_items, next) = split(page);
        items.extend(page_items);
        match next {
            Some(next) => after = Some(next),
            None => return Ok(items),
        }
    }
}

/// Polls the orders until every accepted id is among them or `wait` passes. While fewer orders
/// than accepted are stored, it asks the sale's report how many there are (one indexed count)
/// rather than listing them all again: a million orders listed every 200 ms kept the database
/// busier than the worker it waited for.
pub(crate) async fn wait_persisted(
    connection: &mut Connection,
    sku: &str,
    accepted: &HashSet<String>,
    wait: Duration,
) -> Result<Vec<Order>, BenchError> {
    let deadline = Instant::now() + wait;
    while let Some(stored) = stored_orders(connection, sku).await
        && stored < accepted.len() as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let orders = orders(connection, sku).await?;
        let found = orders.iter().filter(|o| accepted.contains(&o.id)).count();
        if found >= accepted.len() || Instant::now() >= deadline {
            return Ok(orders);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many orders of the sale the repository stores, from its report (`None` when the server
/// does not answer one: the caller lists the orders instead).
async fn stored_orders(connection: &mut Connection, sku: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Report {
        accepted: Tally,
    }
    #[derive(Deserialize)]
    struct Tally {
        orders: u64,
    }
    let path = format!("/v1/sales/{}/report", percent_encode(sku));
    get_json::<Report>(connection, &path)
        .await
        .ok()
        .map(|report| report.accepted.orders)
}

/// Checks the persisted orders against the sale and the accepted ids.
pub(crate) fn audit(sale: &Sale, accepted: &HashSet<String>, orders: &[Order]) -> Findings {
    let mut seen = HashSet::new();
    let mut listed_twice = 0;
    let mut units = 0;
    let mut per_user: HashMap<&str, u64> = HashMap::new();
    for order in orders {
        if !seen.insert(order.id.as_str()) {
            listed_twice += 1;
            continue;
        }
        // Cancelled and expired orders gave their units back.
        if matches!(order.status.as_str(), "pending" | "paid") {
            units += order.quantity;
            *per_user.entry(order.user.as_str()).or_default() += order.quantity;
        }
    }
    let beyond_limit: u64 = per_user
        .values()
        .map(|units| units.saturating_sub(sale.per_user_limit))
        .sum();
    let persisted = accepted
        .iter()
        .filter(|id| seen.contains(id.as_str()))
        .count() as u64;
    Findings {
        persisted,
        oversold: units.saturating_sub(sale.stock),
        duplicates: beyond_limit + listed_twice,
        lost: accepted.len() as u64 - persisted,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn order(id: &str, user: &str, status: &str) -> Order {
        Order {
            id: id.into(),
            sku: "s".into(),
            user: user.into(),
            quantity: 1,
            status: status.into(),
        }
    }

    fn sale(stock: u64) -> Sale {
        Sale {
            stock,
            per_user_limit: 1,
            ..Sale::default()
        }
    }

    #[test]
    fn a_clean_run_finds_nothing() {
        let accepted = HashSet::from(["a".to_owned(), "b".to_owned()]);
        let orders = [order("a", "u1", "pending"), order("b", "u2", "paid")];
        let findings = audit(&sale(2), &accepted, &orders);
        assert_eq!(
            findings,
            Findings {
                persisted: 2,
                ..Findings::default()
            }
        );
        assert!(findings.clean());
    }

    #[test]
    fn oversold_duplicated_and_lost_orders_are_counted() {
        let accepted = HashSet::from(["a".to_owned(), "b".to_owned(), "z".to_owned()]);
        let orders = [
            order("a", "u1", "pending"),
            order("b", "u1", "pending"), // u1 beyond a limit of 1
            order("b", "u1", "pending"), // listed twice
            order("c", "u3", "cancelled"),
            order("d", "u4", "paid"),
        ];
        let findings = audit(&sale(2), &accepted, &orders);
        assert_eq!(
            findings,
            Findings {
                persisted: 2,
                oversold: 1,
                duplicates: 2,
                lost: 1,
            }
        );
        assert!(!findings.clean());
    }
}
