//! The event encoding: versioned JSON. `{"schema_version": 1, "type": "placed", "order": {…}}`,
//! and `"paid"`, `"cancelled"`, `"expired"` for transitions (the order in its new status);
//! unknown fields are ignored, so producers may add fields before consumers know them.

use nexussale_core::OrderEvent;
use nexussale_core::trace::TraceParent;
use rdkafka::message::{Headers, Message};
use serde::{Deserialize, Serialize};

/// The header carrying the publishing call's W3C trace context.
pub(crate) const TRACEPARENT: &str = "traceparent";

#[derive(Serialize)]
struct Outgoing<'a> {
    schema_version: u32,
    #[serde(flatten)]
    event: &'a OrderEvent,
}

#[derive(Deserialize)]
struct Incoming {
    schema_version: u32,
    #[serde(flatten)]
    event: OrderEvent,
}

pub(crate) fn encode(event: &OrderEvent) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Outgoing {
        schema_version: OrderEvent::SCHEMA_VERSION,
        event,
    })
}

/// The event, or why it cannot be read (the reason goes into the dead-letter headers).
pub(crate) fn decode(payload: Option<&[u8]>) -> Result<OrderEvent, String> {
    let payload = payload.ok_or("the message has no payload")?;
    let incoming: Incoming =
        serde_json::from_slice(payload).map_err(|err| format!("not an order event: {err}"))?;
    if incoming.schema_version == 0 {
        return Err("schema_version 0 is not a version".to_owned());
    }
    Ok(incoming.event)
}

/// The trace context `message` carries, if a well-formed one (a malformed header is ignored:
/// the event is still processed, outside any trace).
pub(crate) fn trace(message: &impl Message) -> Option<TraceParent> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == TRACEPARENT)
        .and_then(|header| std::str::from_utf8(header.value?).ok())
        .and_then(TraceParent::parse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexussale_core::testkit::fixtures;
    use nexussale_core::{Order, OrderStatus, Sku};

    fn event() -> OrderEvent {
        let sku = Sku::new("ps5").unwrap();
        fixtures::placed(Order {
            remark: Some("\"quoted\" ✓".into()),
            ..fixtures::order(&sku, "ann")
        })
    }

    #[test]
    fn round_trips_and_names_its_version() {
        let event = event();
        let bytes = encode(&event).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["type"], "placed");
        assert_eq!(decode(Some(&bytes)).unwrap(), event);
        for (status, kind) in [
            (OrderStatus::Paid, "paid"),
            (OrderStatus::Cancelled, "cancelled"),
            (OrderStatus::Expired, "expired"),
        ] {
            let mut order = event.order().clone();
            order.status = status;
            let transition = OrderEvent::of(order);
            let bytes = encode(&transition).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                (&json["type"], &json["order"]["status"]),
                (&kind.into(), &kind.into())
            );
            assert_eq!(decode(Some(&bytes)).unwrap(), transition);
        }
    }

    #[test]
    fn ignores_unknown_fields_and_refuses_garbage() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&encode(&event()).unwrap()).unwrap();
        json["added_later"] = serde_json::json!({"x": 1});
        json["order"]["loyalty_points"] = 5.into();
        assert!(decode(Some(&serde_json::to_vec(&json).unwrap())).is_ok());
        assert!(decode(None).is_err());
        assert!(decode(Some(b"{not json")).is_err());
        assert!(decode(Some(br#"{"schema_version":1,"type":"refunded"}"#)).is_err());
    }
}
