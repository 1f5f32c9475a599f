//! Identity over real sockets: every route × role as `shared/CONTRACT.md` ("Identity and roles")
//! has it, forged tokens refused with nothing changed, forwarding headers believed only from a
//! trusted proxy, and no token or secret in the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{HttpClient, buyer_token, client, send_as, start_server_logged};
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use nexussale_core::{CancellationToken, FlashSale};
use nexussale_server::{AppState, BuyerTokens, Identity, Jwks, TrustedProxies, app_with, serve};
use serde_json::{Value, json};

const ADMIN: &str = "adm-TOPSECRET-1";
const PAYMENT: &str = "pay-TOPSECRET-2";
const SECRET: &[u8] = b"jwt-TOPSECRET-3";

const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("keys/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("keys/ec_public.pem");

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A server in this process on a real socket, stopped when dropped.
struct Running {
    base: String,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn running(state: AppState) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, app_with(state), stop.clone()));
    Running {
        base: format!("http://{address}"),
        stop,
    }
}

/// An engine with sale `ps5`: 100 units, 50 per buyer.
async fn engine_with_sale() -> FlashSale {
    let engine = FlashSale::in_memory();
    engine
        .create_sale(
            nexussale_core::Sale::new(nexussale_core::Sku::new("ps5").unwrap(), 100)
                .with_per_user_limit(50),
        )
        .await
        .unwrap();
    engine
}

async fn with_sale(identity: Identity) -> (Running, FlashSale) {
    let engine = engine_with_sale().await;
    let mut state = AppState::new(engine.clone());
    state.identity = identity;
    (running(state).await, engine)
}

async fn available(engine: &FlashSale) -> u64 {
    engine
        .sale(&nexussale_core::Sku::new("ps5").unwrap())
        .await
        .unwrap()
        .snapshot
        .available
}

/// Who calls, in the table below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    /// The order's buyer (ann).
    Owner,
    /// Another buyer (bob).
    Other,
    Payment,
    Admin,
}

const EVERYONE: [Who; 5] = [
    Who::Nobody,
    Who::Owner,
    Who::Other,
    Who::Payment,
    Who::Admin,
];

struct Table {
    http: HttpClient,
    base: String,
    ann: String,
    bob: String,
}

impl Table {
    fn token(&self, who: Who) -> Option<&str> {
        match who {
            Who::Nobody => None,
            Who::Owner => Some(&self.ann),
            Who::Other => Some(&self.bob),
            Who::Payment => Some(PAYMENT),
            Who::Admin => Some(ADMIN),
        }
    }

    async fn call(
        &self,
        who: Who,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        send_as(&self.http, method, &url, self.token(who), &[], body).await
    }

    /// A new pending order of ann's (bought by ann herself).
    async fn ann_order(&self) -> String {
        let (status, body) = self
            .call(
                Who::Owner,
                Method::POST,
                "/v1/sales/tv/purchase",
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["user"], "ann");
        body["order_id"].as_str().unwrap().to_owned()
    }

    async fn status_of(&self, order: &str) -> String {
        let (status, body) = self
            .call(
                Who::Admin,
                Method::GET,
                &format!("/v1/orders/{order}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        body["status"].as_str().unwrap().to_owned()
    }
}

/// Every route, every role: what the contract's table says, over a real socket to the binary.
#[tokio::test]
async fn every_route_answers_each_role_as_the_table_says() {
    let secret = String::from_utf8(SECRET.to_vec()).unwrap();
    let (_server, address, log) = start_server_logged(&[
        "--admin-token",
        ADMIN,
        "--payment-token",
        PAYMENT,
        "--jwt-secret",
        &secret,
        "--sale",
        "tv=100:50",
    ]);
    let t = Table {
        http: client(),
        base: format!("http://{address}"),
        ann: buyer_token(SECRET, "ann", None),
        bob: buyer_token(SECRET, "bob", None),
    };
    use Method as M;
    use StatusCode as S;
    let expect = async |who: Who, method: Method, path: &str, body: Option<Value>, wanted: S| {
        let (status, answer) = t.call(who, method.clone(), path, body).await;
        assert_eq!(status, wanted, "{who:?} {method} {path}: {answer}");
        answer
    };

    // Open to anyone, whoever calls.
    for who in EVERYONE {
        for path in [
            "/health",
            "/ready",
            "/metrics",
            "/v1/sales",
            "/v1/sales/ps5",
            "/api-docs/openapi.json",
        ] {
            expect(who, M::GET, path, None, S::OK).await;
        }
    }

    // Sale creation: admin only.
    for (who, wanted) in [
        (Who::Nobody, S::UNAUTHORIZED),
        (Who::Owner, S::FORBIDDEN),
        (Who::Payment, S::FORBIDDEN),
        (Who::Admin, S::CREATED),
    ] {
        let body = json!({"sku": format!("new-{who:?}"), "stock": 1});
        expect(who, M::POST, "/v1/sales", Some(body), wanted).await;
    }
    expect(
        Who::Admin,
        M::GET,
        "/v1/sales/new-Owner",
        None,
        S::NOT_FOUND,
    )
    .await;

    // Purchases: a buyer as itself; an admin for anyone.
    for (path, body) in [
        ("/v1/sales/tv/purchase", json!({"user": "ann"})),
        ("/seckill/add", json!({"user": "ann", "goods": "tv"})),
    ] {
        for (who, wanted) in [
            (Who::Nobody, S::UNAUTHORIZED),
            (Who::Owner, S::ACCEPTED),
            (Who::Other, S::FORBIDDEN),
            (Who::Payment, S::FORBIDDEN),
            (Who::Admin, S::ACCEPTED),
        ] {
            let answer = expect(who, M::POST, path, Some(body.clone()), wanted).await;
            if wanted == S::ACCEPTED {
                assert_eq!(answer["user"], "ann");
            }
        }
    }
    // Without `user`, the token's buyer.
    let answer = expect(
        Who::Other,
        M::POST,
        "/v1/sales/tv/purchase",
        Some(json!({})),
        S::ACCEPTED,
    )
    .await;
    assert_eq!(answer["user"], "bob");
    let bob_order = answer["order_id"].as_str().unwrap().to_owned();
    // Four accepted (ann twice per route as herself and by the admin), one by bob: nothing else
    // took stock.
    let (_, tv) = t.call(Who::Nobody, M::GET, "/v1/sales/tv", None).await;
    assert_eq!(tv["available"], 95, "{tv}");

    // One order: its buyer or an admin; anyone else sees no such order.
    let order = t.ann_order().await;
    for path in [format!("/v1/orders/{order}"), format!("/order/{order}")] {
        for (who, wanted) in [
            (Who::Nobody, S::UNAUTHORIZED),
            (Who::Owner, S::OK),
            (Who::Other, S::NOT_FOUND),
            (Who::Payment, S::NOT_FOUND),
            (Who::Admin, S::OK),
        ] {
            let answer = expect(who, M::GET, &path, None, wanted).await;
            if wanted == S::NOT_FOUND {
                // Exactly what an order that does not exist answers.
                let missing = path.replace(&order, "0191f3a0-0000-7000-8000-000000000000");
                let (_, absent) = t.call(Who::Admin, M::GET, &missing, None).await;
                assert_eq!(answer["error"], absent["error"]);
                assert_eq!(
                    answer["message"].as_str().unwrap().replace(&order, "ID"),
                    absent["message"]
                        .as_str()
                        .unwrap()
                        .replace("0191f3a0-0000-7000-8000-000000000000", "ID")
                );
            }
        }
    }

    // Listing: a buyer its own; an admin all.
    let (_, own) = t
        .call(Who::Owner, M::GET, "/v1/orders?limit=1000", None)
        .await;
    let own = own["orders"].as_array().unwrap().clone();
    assert!(
        !own.is_empty() && own.iter().all(|o| o["user"] == "ann"),
        "{own:?}"
    );
    let (_, all) = t
        .call(Who::Admin, M::GET, "/v1/orders?limit=1000", None)
        .await;
    assert!(
        all["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["user"] == "bob")
    );
    expect(Who::Owner, M::GET, "/v1/orders?user=ann", None, S::OK).await;
    expect(
        Who::Owner,
        M::GET,
        "/v1/orders?user=bob",
        None,
        S::FORBIDDEN,
    )
    .await;
    expect(Who::Nobody, M::GET, "/v1/orders", None, S::UNAUTHORIZED).await;
    expect(Who::Payment, M::GET, "/v1/orders", None, S::FORBIDDEN).await;
    for (who, wanted) in [
        (Who::Nobody, S::UNAUTHORIZED),
        (Who::Owner, S::FORBIDDEN),
        (Who::Payment, S::FORBIDDEN),
        (Who::Admin, S::OK),
    ] {
        expect(who, M::GET, "/order/all", None, wanted).await;
    }

    // Pay: the payment service or an admin, never the buyer; a refusal changes nothing.
    let pay = format!("/v1/orders/{order}/pay");
    for who in [Who::Nobody, Who::Owner, Who::Other] {
        let wanted = if who == Who::Nobody {
            S::UNAUTHORIZED
        } else {
            S::FORBIDDEN
        };
        expect(who, M::POST, &pay, None, wanted).await;
        assert_eq!(t.status_of(&order).await, "pending");
    }
    expect(Who::Payment, M::POST, &pay, None, S::OK).await;
    assert_eq!(t.status_of(&order).await, "paid");
    let other = t.ann_order().await;
    expect(
        Who::Admin,
        M::POST,
        &format!("/v1/orders/{other}/pay"),
        None,
        S::OK,
    )
    .await;

    // Cancel: the buyer or an admin; anyone else sees no such order, and nothing changes.
    let order = t.ann_order().await;
    let cancel = format!("/v1/orders/{order}/cancel");
    for (who, wanted) in [
        (Who::Nobody, S::UNAUTHORIZED),
        (Who::Other, S::NOT_FOUND),
        (Who::Payment, S::NOT_FOUND),
    ] {
        expect(who, M::POST, &cancel, None, wanted).await;
        assert_eq!(t.status_of(&order).await, "pending");
    }
    expect(Who::Owner, M::POST, &cancel, None, S::OK).await;
    expect(
        Who::Admin,
        M::POST,
        &format!("/v1/orders/{bob_order}/cancel"),
        None,
        S::OK,
    )
    .await;

    // Roles carried by a JWT's scope.
    let root = buyer_token(SECRET, "root", Some("openid nexussale:admin"));
    let payer = buyer_token(SECRET, "psp", Some("nexussale:pay"));
    let url = |path: &str| format!("{}{path}", t.base);
    let (status, _) = send_as(&t.http, M::GET, &url("/order/all"), Some(&root), &[], None).await;
    assert_eq!(status, S::OK);
    let order = t.ann_order().await;
    let (status, _) = send_as(
        &t.http,
        M::POST,
        &url(&format!("/v1/orders/{order}/pay")),
        Some(&payer),
        &[],
        None,
    )
    .await;
    assert_eq!(status, S::OK);
    let (status, _) = send_as(&t.http, M::GET, &url("/order/all"), Some(&payer), &[], None).await;
    assert_eq!(status, S::FORBIDDEN);

    // Nothing in the log names a token or the secret.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = log.lock().clone();
    assert!(
        log.contains("nexussale_server::access"),
        "the access log is on: {log}"
    );
    for secret in [
        "TOPSECRET",
        &t.ann[t.ann.len() - 20..],
        &root[root.len() - 20..],
    ] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

/// Forged, broken and misplaced tokens: 401 `unauthorized`, and nothing bought.
#[tokio::test]
async fn forged_and_broken_tokens_are_refused_and_change_nothing() {
    let rsa_key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let ec_key = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
    let claims = |sub: &str| json!({"sub": sub, "exp": now() + 600, "iss": "https://id.example", "aud": "nexussale"});
    let rs256 = BuyerTokens::public_key_pem(RSA_PUBLIC)
        .unwrap()
        .with_issuer("https://id.example")
        .with_audience("nexussale");
    let (server, engine) = with_sale(
        Identity::open()
            .with_admin_token(ADMIN)
            .with_buyer_tokens(rs256),
    )
    .await;
    let http = client();
    let purchase = format!("{}/v1/sales/ps5/purchase", server.base);
    let attempt = async |token: Option<&str>, url: &str| {
        let before = available(&engine).await;
        let (status, body) = send_as(
            &http,
            Method::POST,
            url,
            token,
            &[],
            Some(json!({"user": "ann"})),
        )
        .await;
        assert_eq!(
            available(&engine).await,
            if status == StatusCode::ACCEPTED {
                before - 1
            } else {
                before
            }
        );
        (status, body)
    };

    // The genuine article first: the checks below refuse for what they change, not by default.
    let good = sign(Header::new(Algorithm::RS256), &claims("ann"), &rsa_key);
    assert_eq!(
        attempt(Some(&good), &purchase).await.0,
        StatusCode::ACCEPTED
    );

    let b64 = |value: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("ann"))
    );
    let hs_with_public_key = sign(
        Header::new(Algorithm::HS256),
        &claims("ann"),
        &EncodingKey::from_secret(RSA_PUBLIC).unwrap(),
    );
    let other_rsa = sign(Header::new(Algorithm::ES256), &claims("ann"), &ec_key);
    let mut expired = claims("ann");
    expired["exp"] = (now() - 120).into();
    let mut early = claims("ann");
    early["nbf"] = (now() + 600).into();
    let mut wrong_iss = claims("ann");
    wrong_iss["iss"] = "https://evil.example".into();
    let mut wrong_aud = claims("ann");
    wrong_aud["aud"] = "someone-else".into();
    let mut no_exp = claims("ann");
    no_exp.as_object_mut().unwrap().remove("exp");
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.rsplit_once('.').unwrap();
    let tampered = format!("{head}.{}.{signature}", b64(&claims("root")));
    let huge = format!("{good}{}", "A".repeat(10_000));
    let forged = [
        ("alg none", unsigned),
        ("HS256 keyed with the RS256 public key", hs_with_public_key),
        ("another key and algorithm", other_rsa),
        (
            "expired",
            sign(Header::new(Algorithm::RS256), &expired, &rsa_key),
        ),
        (
            "not yet valid",
            sign(Header::new(Algorithm::RS256), &early, &rsa_key),
        ),
        (
            "wrong iss",
            sign(Header::new(Algorithm::RS256), &wrong_iss, &rsa_key),
        ),
        (
            "wrong aud",
            sign(Header::new(Algorithm::RS256), &wrong_aud, &rsa_key),
        ),
        (
            "no exp",
            sign(Header::new(Algorithm::RS256), &no_exp, &rsa_key),
        ),
        ("claims swapped under the signature", tampered),
        ("garbage", "garbage".to_owned()),
        ("three dots of nothing", "..".to_owned()),
        ("10 kB", huge),
    ];
    for (what, token) in &forged {
        let (status, body) = attempt(Some(token), &purchase).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "{what}: {body}"
        );
        assert!(
            !body["message"].as_str().unwrap().contains(token.as_str()),
            "{what}"
        );
        // Refused on an open route too: a credential that does not hold is never ignored.
        let (status, _) = send_as(
            &http,
            Method::GET,
            &format!("{}/v1/sales", server.base),
            Some(token),
            &[],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
    }
    // Not a bearer header, or a token where proxies and logs keep it.
    for header in ["Basic YW5uOnB3", "Bearer", &format!("Token {good}")] {
        let (status, _) = send_as(
            &http,
            Method::POST,
            &purchase,
            None,
            &[("authorization", header)],
            Some(json!({"user": "ann"})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}");
    }
    for query in ["access_token", "token", "jwt"] {
        let (status, _) = attempt(None, &format!("{purchase}?{query}={good}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "?{query}=");
    }
    // The genuine token still works after all that.
    assert_eq!(
        attempt(Some(&good), &purchase).await.0,
        StatusCode::ACCEPTED
    );
}

/// ES256 keys, and a JWKS with keys chosen by `kid`.
#[tokio::test]
async fn es256_keys_and_jwks_kids() {
    let ec_key = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
    let rsa_key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let claims = json!({"sub": "ann", "exp": now() + 600});
    let es256 = BuyerTokens::public_key_pem(EC_PUBLIC).unwrap();
    let (server, _engine) = with_sale(Identity::open().with_buyer_tokens(es256)).await;
    let http = client();
    let url = format!("{}/v1/orders", server.base);
    let ok = sign(Header::new(Algorithm::ES256), &claims, &ec_key);
    assert_eq!(
        send_as(&http, Method::GET, &url, Some(&ok), &[], None)
            .await
            .0,
        StatusCode::OK
    );
    let rs = sign(Header::new(Algorithm::RS256), &claims, &rsa_key);
    assert_eq!(
        send_as(&http, Method::GET, &url, Some(&rs), &[], None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    let jwks = jwks_document(&[
        ("ec-1", EC_PUBLIC, Algorithm::ES256),
        ("rsa-1", RSA_PUBLIC, Algorithm::RS256),
    ]);
    let buyers = BuyerTokens::jwks(Jwks::from_json(jwks.to_string().as_bytes()).unwrap());
    let (server, _engine) = with_sale(Identity::open().with_buyer_tokens(buyers)).await;
    let url = format!("{}/v1/orders", server.base);
    let with_kid = |alg: Algorithm, kid: Option<&str>, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        sign(header, &claims, key)
    };
    for (token, wanted, what) in [
        (
            with_kid(Algorithm::ES256, Some("ec-1"), &ec_key),
            StatusCode::OK,
            "ec-1",
        ),
        (
            with_kid(Algorithm::RS256, Some("rsa-1"), &rsa_key),
            StatusCode::OK,
            "rsa-1",
        ),
        (
            with_kid(Algorithm::RS256, Some("nope"), &rsa_key),
            StatusCode::UNAUTHORIZED,
            "a kid the set lacks",
        ),
        (
            with_kid(Algorithm::RS256, None, &rsa_key),
            StatusCode::UNAUTHORIZED,
            "no kid in a two-key set",
        ),
        (
            with_kid(Algorithm::RS256, Some("ec-1"), &rsa_key),
            StatusCode::UNAUTHORIZED,
            "the RSA key under the EC kid",
        ),
        (
            with_kid(
                Algorithm::HS256,
                Some("rsa-1"),
                &EncodingKey::from_secret(RSA_PUBLIC).unwrap(),
            ),
            StatusCode::UNAUTHORIZED,
            "HS256 under an RSA kid",
        ),
    ] {
        assert_eq!(
            send_as(&http, Method::GET, &url, Some(&token), &[], None)
                .await
                .0,
            wanted,
            "{what}"
        );
    }
}

/// A JWK for a PEM public key.
fn jwk(kid: &str, pem: &[u8], alg: Algorithm) -> Value {
    let key = match alg {
        Algorithm::ES256 => jsonwebtoken::DecodingKey::from_ec_pem(pem).unwrap(),
        _ => jsonwebtoken::DecodingKey::from_rsa_pem(pem).unwrap(),
    };
    let mut jwk =
        serde_json::to_value(jsonwebtoken::jwk::Jwk::from_decoding_key(&key, Some(alg)).unwrap())
            .unwrap();
    jwk["kid"] = kid.into();
    jwk
}

fn jwks_document(keys: &[(&str, &[u8], Algorithm)]) -> Value {
    json!({"keys": keys.iter().map(|(kid, pem, alg)| jwk(kid, pem, *alg)).collect::<Vec<_>>()})
}

/// A JWKS served over HTTP: fetched at start-up; a new `kid` is fetched when a token names it;
/// a key dropped from the set stops verifying, even for a token verified (and cached) before.
#[tokio::test]
async fn a_jwks_url_is_fetched_again_for_a_new_kid() {
    let served = std::sync::Arc::new(parking_lot::Mutex::new(jwks_document(&[(
        "rsa-1",
        RSA_PUBLIC,
        Algorithm::RS256,
    )])));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let document = std::sync::Arc::clone(&served);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let document = std::sync::Arc::clone(&document);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let body = document.lock().to_string();
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let jwks = Jwks::load(&jwks_url).await.unwrap();
    let (server, _engine) =
        with_sale(Identity::open().with_buyer_tokens(BuyerTokens::jwks(jwks))).await;
    let http = client();
    let url = format!("{}/v1/orders", server.base);
    let rsa_key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let ec_key = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
    let token = |alg: Algorithm, kid: &str, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        sign(header, &json!({"sub": "ann", "exp": now() + 600}), key)
    };
    let old = token(Algorithm::RS256, "rsa-1", &rsa_key);
    let new = token(Algorithm::ES256, "ec-2", &ec_key);
    assert_eq!(
        send_as(&http, Method::GET, &url, Some(&old), &[], None)
            .await
            .0,
        StatusCode::OK
    );
    // The identity provider rotates: ec-2 in, rsa-1 out.
    *served.lock() = jwks_document(&[("ec-2", EC_PUBLIC, Algorithm::ES256)]);
    assert_eq!(
        send_as(&http, Method::GET, &url, Some(&new), &[], None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = send_as(&http, Method::GET, &url, Some(&new), &[], None).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new kid was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        send_as(&http, Method::GET, &url, Some(&old), &[], None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

/// Per-address limits: a spoofed `X-Forwarded-For` from an untrusted peer is ignored; from a
/// trusted proxy it names the client.
#[tokio::test]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    let http = client();
    for trusted in [false, true] {
        let mut state = AppState::new(engine_with_sale().await);
        state.ip_limit = Some(std::sync::Arc::new(nexussale_server::RateLimiter::new(
            0.01, 1.0,
        )));
        if trusted {
            state.proxies = TrustedProxies::new(["127.0.0.0/8".parse().unwrap()]);
        }
        let server = running(state).await;
        let url = format!("{}/v1/sales/ps5/purchase", server.base);
        let mut statuses = Vec::new();
        for (user, client) in [
            ("a", "198.51.100.1"),
            ("b", "198.51.100.2"),
            ("c", "198.51.100.1"),
        ] {
            let (status, _) = send_as(
                &http,
                Method::POST,
                &url,
                None,
                &[("x-forwarded-for", client)],
                Some(json!({"user": user})),
            )
            .await;
            statuses.push(status.as_u16());
        }
        if trusted {
            // Two clients, one bucket each: the second request of the first is limited.
            assert_eq!(statuses, [202, 202, 429]);
        } else {
            // One peer, one bucket, whatever the header claims.
            assert_eq!(statuses, [202, 429, 429]);
        }
    }
}

/// With no credential the server refuses a non-loopback address unless told it is meant.
#[test]
fn an_open_server_refuses_a_public_address_unless_insecure_open() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_nexussale-server"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("--insecure-open"), "{said}");
    // The environment twin takes `1`, as the contract writes it.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nexussale-server"))
        .args(["--listen", "0.0.0.0:0"])
        .env("NEXUSSALE_INSECURE_OPEN", "1")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let listening = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .any(|line| line.contains("listening"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        listening,
        "NEXUSSALE_INSECURE_OPEN=1 did not start the server"
    );
    let (server, _address, log) =
        start_server_logged(&["--listen", "0.0.0.0:0", "--insecure-open"]);
    assert!(
        log.lock().contains("no credential configured"),
        "{}",
        log.lock()
    );
    drop(server);
    let (server, _address, _log) =
        start_server_logged(&["--listen", "0.0.0.0:0", "--admin-token", ADMIN]);
    drop(server);
}
