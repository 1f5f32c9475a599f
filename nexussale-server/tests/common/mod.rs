//! Helpers shared by the server's tests: in-process requests, and a keep-alive HTTP client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::Service;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nexussale_core::testkit::services::{database_url, redis_url, unavailable};
use nexussale_core::testkit::unique_name;
use nexussale_kafka::testkit::MockHost;
use nexussale_mysql::MySqlOrderRepository;
use nexussale_mysql::sqlx::{self, Connection};
use nexussale_redis::redis;
use nexussale_server::App;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One request through the service in process: status and parsed JSON body.
pub(crate) async fn call(
    app: &App,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_raw(app, json_request(method, uri, body)).await
}

/// An HS256 buyer token for `sub`, valid for an hour, with `scope` when given.
pub(crate) fn buyer_token(secret: &[u8], sub: &str, scope: Option<&str>) -> String {
    let exp = jsonwebtoken::get_current_timestamp() + 3600;
    let mut claims = serde_json::json!({"sub": sub, "exp": exp});
    if let Some(scope) = scope {
        claims["scope"] = scope.into();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

/// One request over the network with `Authorization: Bearer <bearer>` (when given) and
/// `headers`: status and parsed JSON body.
pub(crate) async fn send_as(
    client: &HttpClient,
    method: Method,
    url: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = json_request(method.clone(), url, body);
    if let Some(token) = bearer {
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    for (name, value) in headers {
        request.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() && status != StatusCode::PERMANENT_REDIRECT {
        assert!(
            value["error"].is_string() && value["message"].is_string(),
            "{method} {url}: not a contract error: {value}"
        );
    }
    (status, value)
}

/// A request with `body` (or none) as JSON.
pub(crate) fn json_request(method: Method, uri: &str, body: Option<Value>) -> Request<Full<Bytes>> {
    let bytes = body.map(|body| body.to_string()).unwrap_or_default();
    request(method, uri)
        .body(Full::new(Bytes::from(bytes)))
        .unwrap()
}

/// A request builder with JSON content type.
pub(crate) fn request(method: Method, uri: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
}

/// Sends a built request through the service.
pub(crate) async fn call_raw(app: &App, request: Request<Full<Bytes>>) -> (StatusCode, Value) {
    let response = app.call(request).await.unwrap();
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value: Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|err| panic!("not JSON ({err}): {bytes:?}"));
    if !status.is_success() {
        assert!(
            value["error"].is_string() && value["message"].is_string(),
            "not a contract error: {value}"
        );
    }
    (status, value)
}

/// A pooled keep-alive client.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .build_http()
}

/// How long a test waits for one answer: a server that hangs (or a request hyper's pool leaves
/// pending as a server goes away, seen once in CI) fails or ends the wait instead of holding
/// the test up.
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// One request's status and body, for a test that stops or kills the server under its
/// requests: `Ok(None)` when the connection failed (the server went away), `Err` when no answer
/// came within [`ANSWER_WITHIN`].
pub(crate) async fn answer(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
) -> Result<Option<(StatusCode, Bytes)>, tokio::time::error::Elapsed> {
    tokio::time::timeout(ANSWER_WITHIN, async {
        let response = client.request(request).await.ok()?;
        let status = response.status();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    })
    .await
}

/// One request over the network: status and parsed JSON body (a server that hangs fails the
/// test within [`ANSWER_WITHIN`] rather than holding it up).
pub(crate) async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = json_request(method, url, body);
    let answer = async {
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes)
    };
    let (status, bytes) = tokio::time::timeout(ANSWER_WITHIN, answer)
        .await
        .unwrap_or_else(|_| panic!("{url}: no answer within {ANSWER_WITHIN:?}"));
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// A server process started by a test; killed when dropped, so a failing test leaves none behind.
pub(crate) struct Server(Option<Child>);

impl Server {
    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// The exit status, if the process has exited.
    pub(crate) fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut().and_then(|child| child.try_wait().unwrap())
    }

    /// SIGKILL, and waits for the process to be gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl From<Child> for Server {
    fn from(child: Child) -> Self {
        Self(Some(child))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `nexussale-server --listen 127.0.0.1:0 --sale ps5=100 <extra>` (`extra` may name
/// another `--listen`) and answers it with its
/// address, read from its "listening" log line.
pub(crate) fn start_server(extra: &[&str]) -> (Server, String) {
    let (server, address, _) = start_server_logged(extra);
    (server, address)
}

/// [`start_server`], and everything the server writes to stdout, as it comes.
pub(crate) fn start_server_logged(
    extra: &[&str],
) -> (Server, String, std::sync::Arc<parking_lot::Mutex<String>>) {
    start_server_with_env(extra, &[])
}

/// [`start_server_logged`] with these environment variables set.
pub(crate) fn start_server_with_env(
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Server, String, std::sync::Arc<parking_lot::Mutex<String>>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nexussale-server"));
    // `info` unless the test asks for another filter.
    command.env("RUST_LOG", "info").envs(env.iter().copied());
    if !extra.contains(&"--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = command
        .args(["--sale", "ps5=100"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nexussale-server");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut before = String::new();
    let address = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        before.push_str(&line);
        before.push('\n');
        if let Some(at) = line.find("address=") {
            break line[at + "address=".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
        }
        // NEXUSSALE_LOG_FORMAT=json
        if let Some(at) = line.find("\"address\":\"") {
            let rest = &line[at + "\"address\":\"".len()..];
            break rest[..rest.find('"').unwrap()].to_owned();
        }
    };
    // Keep draining its output so the server never blocks on a full pipe (and show it when
    // NEXUSSALE_TEST_SERVER_LOG is set).
    let show = std::env::var_os("NEXUSSALE_TEST_SERVER_LOG").is_some();
    let log = std::sync::Arc::new(parking_lot::Mutex::new(before));
    let kept = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if show {
                eprintln!("server: {line}");
            }
            let mut kept = kept.lock();
            kept.push_str(&line);
            kept.push('\n');
        }
    });
    (Server(Some(child)), address, log)
}

/// SIGTERM, then a clean exit within 15 s.
pub(crate) fn stop(mut server: Server) {
    let mut server = server.0.take().expect("a running server");
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "server exited with {exit}");
}

/// A new, empty MySQL database: an admin connection, its name and its URL (`None`: skip, the
/// database is unavailable).
pub(crate) async fn fresh_database() -> Option<(sqlx::MySqlConnection, String, String)> {
    let admin_url = database_url();
    let mut admin = match sqlx::MySqlConnection::connect(&admin_url).await {
        Ok(admin) => admin,
        Err(err) => return unavailable("mysql", err),
    };
    let database = unique_name("nexussale_server_test_");
    sqlx::query(&format!("CREATE DATABASE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
    let root = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(root, _)| root);
    let url = format!("{root}/{database}");
    Some((admin, database, url))
}

/// A migrated repository on a new, empty database (the database's name with it, for
/// [`drop_database`]), or `None`: skip, the database is unavailable.
pub(crate) async fn fresh_repository() -> Option<(MySqlOrderRepository, String)> {
    let (admin, database, url) = fresh_database().await?;
    let _ = admin.close().await;
    let repository = MySqlOrderRepository::connect(&url).await.unwrap();
    repository.migrate().await.unwrap();
    Some((repository, database))
}

/// Drops a database [`fresh_database`] made, through any connection or pool.
pub(crate) async fn drop_database<'c, E>(executor: E, database: &str)
where
    E: sqlx::Executor<'c, Database = sqlx::MySql>,
{
    sqlx::query(&format!("DROP DATABASE `{database}`"))
        .execute(executor)
        .await
        .unwrap();
}

/// The full stack a test runs servers over: Redis stock (its own prefix), a Kafka mock cluster
/// (its own topic), a MySQL database of its own (dropped at the end).
pub(crate) struct Stack {
    pub(crate) kafka: MockHost,
    pub(crate) topic: String,
    /// The Redis key prefix the servers use.
    pub(crate) prefix: String,
    pub(crate) admin: sqlx::MySqlConnection,
    pub(crate) database: String,
    args: Vec<String>,
}

impl Stack {
    /// `None` (after printing why) where Redis or MySQL is absent and not required.
    pub(crate) async fn start(name: &str, partitions: i32) -> Option<Self> {
        let url = redis_url();
        if redis::Client::open(url.as_str())
            .and_then(|client| client.get_connection())
            .is_err()
        {
            return unavailable("redis", &url);
        }
        let (admin, database, db_url) = fresh_database().await?;
        let kafka = MockHost::start();
        let topic = unique_name(&format!("{name}-orders-"));
        let prefix = unique_name(&format!("nexussale-{name}-"));
        kafka.create_topic(&topic, partitions);
        kafka.create_topic(&format!("{topic}.dlq"), 1);
        let args = [
            "--redis-url",
            &url,
            "--redis-prefix",
            &prefix,
            "--database-url",
            &db_url,
            "--kafka-brokers",
            kafka.bootstrap(),
            "--kafka-topic",
            &topic,
            "--kafka-group",
            &unique_name(&format!("{name}-group-")),
        ]
        .map(str::to_owned)
        .to_vec();
        Some(Self {
            kafka,
            topic,
            prefix,
            args,
            admin,
            database,
        })
    }

    /// The stack's flags, then `extra`.
    pub(crate) fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        self.args
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect()
    }

    pub(crate) async fn drop_database(mut self) {
        drop_database(&mut self.admin, &self.database).await;
    }
}

/// Reads a `text/event-stream` body's events of one name as they come.
pub(crate) struct Events<B> {
    body: B,
    event: &'static str,
    buffer: String,
}

impl<B> Events<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    /// Reads `event` events (`stock`, `ticket`) from `body`.
    pub(crate) fn new(body: B, event: &'static str) -> Self {
        Self {
            body,
            event,
            buffer: String::new(),
        }
    }

    /// The next such event's data; `None` when the stream ended. Fails the test when none
    /// comes within 5 s.
    pub(crate) async fn next(&mut self) -> Option<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let name = format!("event: {}", self.event);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = block
                    .lines()
                    .skip_while(|line| *line != name)
                    .find_map(|line| line.strip_prefix("data: "))
                {
                    return Some(serde_json::from_str(data).unwrap());
                }
                continue;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let frame = tokio::time::timeout(left, self.body.frame())
                .await
                .expect("no event within 5 s")?;
            if let Ok(data) = frame.unwrap().into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }
}
