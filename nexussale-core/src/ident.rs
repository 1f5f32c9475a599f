//! Validated text identifiers: [`Sku`], [`UserId`] and [`IdempotencyKey`].
//!
//! All three travel into Redis keys, Kafka keys, SQL binds and URLs, so they share one rule: not
//! empty, at most [`MAX_IDENT_LEN`] bytes, no control characters. A value of these types is always
//! valid; parsing is the only way in.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The longest identifier accepted, in bytes.
pub const MAX_IDENT_LEN: usize = 128;

fn validate(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_IDENT_LEN {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_IDENT_LEN} bytes, got {}", value.len()),
        ));
    }
    // Printable ASCII (the common case) in one pass over bytes; otherwise check every char.
    // A fold, not `all`: no early exit, so the loop vectorizes.
    let printable_ascii = value
        .bytes()
        .fold(true, |ok, b| ok & (0x20..0x7f).contains(&b));
    if !printable_ascii && value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

macro_rules! text_ident {
    ($(#[doc = $doc_text:literal])* $name:ident, $field:literal) => {
        $(#[doc = $doc_text])*
        ///
        /// Not empty, at most [`MAX_IDENT_LEN`] bytes, no control characters. Up to 24 bytes
        /// are stored inline: cloning one is a copy, with no allocation and no shared counter.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(CompactString);

        impl $name {
            /// Validates `value`.
            pub fn new(value: impl AsRef<str>) -> Result<Self> {
                let value = value.as_ref();
                validate($field, value)?;
                Ok(Self(CompactString::from(value)))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                validate($field, &value)?;
                Ok(Self(CompactString::from(value)))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0.into_string()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                ident_schema(concat!($($doc_text),*))
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

/// The OpenAPI schema of an identifier: text of 1 to [`MAX_IDENT_LEN`] bytes. (OpenAPI counts
/// characters, so the byte limit is stated in the description too.)
#[cfg(feature = "openapi")]
fn ident_schema(doc: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_IDENT_LEN))
        .description(Some(format!(
            "{}. Not empty, at most {MAX_IDENT_LEN} bytes of UTF-8, no control characters.",
            doc.trim().trim_end_matches('.')
        )))
        .into()
}

text_ident!(
    /// The stock-keeping unit that names a sale.
    Sku,
    "sku"
);
text_ident!(
    /// The buyer.
    UserId,
    "user"
);
text_ident!(
    /// A client-chosen key that makes a purchase safe to retry: within one sale and one user, the
    /// same key always answers with the same order.
    IdempotencyKey,
    "idempotency_key"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_unicode_text() {
        assert_eq!(Sku::new("ps5").unwrap().as_str(), "ps5");
        assert!(UserId::new("Zoë 🎮").is_ok());
        assert!(Sku::new("x".repeat(MAX_IDENT_LEN)).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_control_characters() {
        let err = Sku::new("").unwrap_err();
        assert_eq!(err.to_string(), "invalid sku: must not be empty");
        let err = UserId::new("x".repeat(MAX_IDENT_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("at most 128 bytes"), "{err}");
        assert!(IdempotencyKey::new("a\nb").is_err());
        assert!(UserId::new("a\u{7f}").is_err());
    }

    #[test]
    fn serde_validates() {
        let sku: Sku = serde_json::from_str("\"ps5\"").unwrap();
        assert_eq!(serde_json::to_string(&sku).unwrap(), "\"ps5\"");
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
    }
}
