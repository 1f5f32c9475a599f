//! Who may call a route ([`Access`], one per route in the route table) and what a caller that may
//! sees ([`Scope`]).

use http::StatusCode;
use nexussale_core::UserId;

use super::{Credential, Identity};
use crate::error::ApiError;

/// Who may call a route (`shared/CONTRACT.md`, "Identity and roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone.
    Anyone,
    /// The admin role.
    Admin,
    /// A buyer, as itself (or an admin, for anyone); anyone while buyers need not authenticate.
    Buyer,
    /// One order's buyer, or an admin: the handler shows another buyer's order as absent.
    Owner,
    /// A buyer, for its own orders, or an admin, for all.
    Orders,
    /// The payment role, or an admin.
    Payment,
}

/// What a caller let through may see and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Everything: an admin, or a server with no credentials.
    All,
    /// Only this buyer's purchases and orders.
    Buyer(UserId),
    /// No order at all (the payment service's token, on a buyer's order).
    Nobody,
}

impl Scope {
    /// Whether `user`'s data is in scope.
    pub(crate) fn covers(&self, user: &UserId) -> bool {
        match self {
            Self::All => true,
            Self::Buyer(buyer) => buyer == user,
            Self::Nobody => false,
        }
    }
}

/// Lets `credential` through `access`, or answers why not: 401 `unauthorized` without a
/// credential where one is needed (or with one that does not hold, on any route), 403
/// `forbidden` for a caller without the role.
pub(crate) fn authorize(
    identity: &Identity,
    access: Access,
    credential: &Credential,
) -> Result<Scope, ApiError> {
    if identity.is_open() {
        return Ok(Scope::All);
    }
    let caller = match credential {
        Credential::Refused(why) => return Err(unauthorized(why)),
        Credential::Verified(caller) => Some(caller),
        Credential::Anonymous => None,
    };
    let Some(caller) = caller else {
        return match access {
            Access::Anyone => Ok(Scope::All),
            // Purchases are open while buyers need not authenticate (the body names the buyer).
            Access::Buyer if !identity.authenticates_buyers() => Ok(Scope::All),
            Access::Admin => Err(unauthorized(
                "this route needs `Authorization: Bearer <admin token>`",
            )),
            Access::Payment => Err(unauthorized(
                "this route needs `Authorization: Bearer <payment token>`",
            )),
            Access::Buyer | Access::Owner | Access::Orders => Err(unauthorized(
                "this route needs `Authorization: Bearer <buyer token>`",
            )),
        };
    };
    if caller.admin || access == Access::Anyone {
        return Ok(Scope::All);
    }
    match (access, &caller.buyer) {
        (Access::Payment, _) if caller.payment => Ok(Scope::All),
        (Access::Payment, _) => Err(forbidden(
            "only the payment service (or an admin) may mark an order paid",
        )),
        (Access::Admin, _) => Err(forbidden("this route needs the admin role")),
        (Access::Buyer | Access::Owner | Access::Orders, Some(buyer)) => {
            Ok(Scope::Buyer(buyer.clone()))
        }
        // The payment service's token names no buyer: it owns no order.
        (Access::Owner, None) => Ok(Scope::Nobody),
        (Access::Buyer, None) => Err(forbidden("only a buyer, with its own token, may buy")),
        (Access::Orders, None) => Err(forbidden("only a buyer or an admin may list orders")),
        (Access::Anyone, _) => Ok(Scope::All),
    }
}

pub(crate) fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

pub(crate) fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}
