//! Embedding NexusSale behind an identity system of your own: the engine takes a user id and
//! never asks who is calling, so the embedding service decides. Here a shop's sessions (a map
//! from session cookie to customer) name the buyer, and the shop lets a customer see and cancel
//! only their own orders — the rules the reference server applies to JWT buyers, written in a
//! few lines against the engine.
//!
//! ```text
//! cargo run -p nexussale-examples --example own_identity
//! ```

use std::collections::HashMap;

use nexussale_core::{
    FlashSale, Order, OrderId, PurchaseOutcome, PurchaseRequest, Sale, Sku, UserId,
};

/// Why the shop refuses a request.
#[derive(Debug)]
enum Refused {
    /// No session, or an unknown one (the server's 401).
    NotSignedIn,
    /// Another customer's order: shown as absent, so ids cannot be probed (the server's 404).
    NoSuchOrder,
    /// The engine refused or failed.
    Engine(nexussale_core::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotSignedIn => f.write_str("not signed in"),
            Self::NoSuchOrder => f.write_str("no such order"),
            Self::Engine(err) => write!(f, "{err}"),
        }
    }
}

impl From<nexussale_core::Error> for Refused {
    fn from(err: nexussale_core::Error) -> Self {
        match err {
            nexussale_core::Error::OrderNotFound(_) => Self::NoSuchOrder,
            other => Self::Engine(other),
        }
    }
}

/// The shop: its sessions, and the engine.
struct Shop {
    sessions: HashMap<&'static str, UserId>,
    engine: FlashSale,
}

impl Shop {
    fn customer(&self, session: &str) -> Result<&UserId, Refused> {
        self.sessions.get(session).ok_or(Refused::NotSignedIn)
    }

    /// Buys one unit as the session's customer: the buyer comes from the session, never from
    /// what the client sends.
    async fn buy(&self, session: &str, sku: &Sku) -> Result<PurchaseOutcome, Refused> {
        let user = self.customer(session)?.clone();
        Ok(self
            .engine
            .purchase(PurchaseRequest::new(sku.clone(), user))
            .await?)
    }

    /// One of the session's customer's orders.
    async fn order(&self, session: &str, id: OrderId) -> Result<Order, Refused> {
        let customer = self.customer(session)?;
        let order = self.engine.order(id).await?;
        if &order.user == customer {
            Ok(order)
        } else {
            Err(Refused::NoSuchOrder)
        }
    }

    /// Cancels one of the session's customer's orders (checked first: whose it is never
    /// changes).
    async fn cancel(&self, session: &str, id: OrderId) -> Result<Order, Refused> {
        self.order(session, id).await?;
        Ok(self.engine.cancel(id).await?)
    }
}

#[tokio::main]
async fn main() -> nexussale_core::Result<()> {
    let sku = Sku::new("own-identity")?;
    let engine = FlashSale::in_memory();
    engine.create_sale(Sale::new(sku.clone(), 5)).await?;
    let shop = Shop {
        sessions: HashMap::from([
            ("cookie-ann", UserId::new("ann")?),
            ("cookie-bob", UserId::new("bob")?),
        ]),
        engine,
    };

    let ann_order = match shop.buy("cookie-ann", &sku).await {
        Ok(PurchaseOutcome::Accepted(receipt)) => receipt.order.id,
        other => {
            let why = format!("ann could not buy: {other:?}");
            return Err(nexussale_core::Error::permanent("example", why));
        }
    };
    println!("ann bought order {ann_order}");
    println!(
        "no session buys: {:?}",
        shop.buy("forged", &sku).await.err()
    );
    println!(
        "bob reads ann's order: {:?}",
        shop.order("cookie-bob", ann_order).await.err()
    );
    println!(
        "bob cancels ann's order: {:?}",
        shop.cancel("cookie-bob", ann_order).await.err()
    );
    let order = shop
        .cancel("cookie-ann", ann_order)
        .await
        .map_err(|err| nexussale_core::Error::permanent("example", err.to_string()))?;
    println!("ann cancels her own order: {}", order.status);
    Ok(())
}
