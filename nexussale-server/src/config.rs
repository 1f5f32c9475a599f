//! The command line, with an environment twin for every flag (the flag wins).

use std::net::SocketAddr;
use std::str::FromStr;

use clap::Parser;
use nexussale_core::{Sale, Sku};

/// `nexussale-server` configuration. Its `Debug` shows no secret: the admin token as `***`,
/// backend URLs with their passwords as `***`, Kafka options by name only.
#[derive(Clone, Parser)]
#[command(
    name = "nexussale-server",
    version,
    about = "The NexusSale flash-sale server"
)]
pub struct Config {
    /// Address to serve on.
    #[arg(long, env = "NEXUSSALE_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Redis for live stock (`redis://[user:password@]host:port[/db]`); unset: stock in process
    /// memory.
    #[arg(long, env = "NEXUSSALE_REDIS_URL")]
    pub redis_url: Option<String>,

    /// `--redis-url` is a comma-separated list of Redis Cluster seed nodes: the server uses the
    /// cluster client, and a sale's `--redis-shards` spread over the cluster's slots.
    #[arg(long, env = "NEXUSSALE_REDIS_CLUSTER", requires = "redis_url",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub redis_cluster: bool,

    /// `--redis-url` is a comma-separated list of Redis Sentinels, and MASTER the name they
    /// watch: the server uses the master they name and follows it through failovers (while there
    /// is none, purchases get 503 with Retry-After).
    #[arg(
        long,
        env = "NEXUSSALE_REDIS_SENTINEL",
        value_name = "MASTER",
        requires = "redis_url",
        conflicts_with = "redis_cluster"
    )]
    pub redis_sentinel: Option<String>,

    /// The CA (a PEM file) that signed the Redis server's certificate, for `rediss://` URLs
    /// (without it, the system's roots). A certificate that does not chain to it refuses to
    /// start; with a `redis://` URL the server refuses to start rather than go without TLS.
    #[arg(long, env = "NEXUSSALE_REDIS_CA", requires = "redis_url")]
    pub redis_ca: Option<std::path::PathBuf>,

    /// The client certificate (a PEM file) the server presents to a Redis that requires one
    /// (`tls-auth-clients yes`), for `rediss://` URLs; with `--redis-client-key`.
    #[arg(long, env = "NEXUSSALE_REDIS_CLIENT_CERT", value_name = "FILE",
          requires_all = ["redis_url", "redis_client_key"])]
    pub redis_client_cert: Option<std::path::PathBuf>,

    /// The private key (a PEM file) of `--redis-client-cert`.
    #[arg(
        long,
        env = "NEXUSSALE_REDIS_CLIENT_KEY",
        value_name = "FILE",
        requires = "redis_client_cert"
    )]
    pub redis_client_key: Option<std::path::PathBuf>,

    /// Answer a reservation, a payment's or a release's stock change only once N replicas of the
    /// Redis primary have it (`WAIT`, one per batch of reservations): a failover then cannot take
    /// back what was answered. Short of N within half the command timeout, the purchase gets 503.
    /// On a Redis Cluster, every primary must have N replicas.
    #[arg(long, env = "NEXUSSALE_REDIS_REPLICA_ACKS", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=16))]
    pub redis_replica_acks: u8,

    /// Stock shards of each sale this server creates in Redis: one hot sale spreads over this
    /// many hash slots (Redis Cluster nodes).
    #[arg(long, env = "NEXUSSALE_REDIS_SHARDS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub redis_shards: u16,

    /// The first part of every Redis key: servers with different prefixes share one Redis
    /// without seeing each other's sales.
    #[arg(long, env = "NEXUSSALE_REDIS_PREFIX", default_value = "nexussale")]
    pub redis_prefix: String,

    /// Kafka bootstrap servers (`host:port`, comma-separated) for the order events; unset: an
    /// in-process queue.
    #[arg(long, env = "NEXUSSALE_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// The order events' Kafka topic (created at start-up when absent, with `<topic>.dlq`).
    #[arg(
        long,
        env = "NEXUSSALE_KAFKA_TOPIC",
        default_value = "nexussale.orders"
    )]
    pub kafka_topic: String,

    /// The Kafka consumer group of the order workers.
    #[arg(
        long,
        env = "NEXUSSALE_KAFKA_GROUP",
        default_value = "nexussale-order-worker"
    )]
    pub kafka_group: String,

    /// Partitions of the topic the server creates when absent: the most order workers that
    /// consume at once.
    #[arg(long, env = "NEXUSSALE_KAFKA_PARTITIONS", default_value_t = 12,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub kafka_partitions: i32,

    /// Replication factor of the topics the server creates (default: 3, or the number of
    /// brokers when fewer); they get `min.insync.replicas` one below it.
    #[arg(long, env = "NEXUSSALE_KAFKA_REPLICATION",
          value_parser = clap::value_parser!(i32).range(1..=32))]
    pub kafka_replication: Option<i32>,

    /// Any librdkafka property for the producer and consumer, `KEY=VALUE` (`security.protocol`,
    /// `sasl.username`, `session.timeout.ms`, ...). Repeat the flag for several; the environment
    /// twin is comma-separated. Values are never logged.
    #[arg(
        long = "kafka-option",
        env = "NEXUSSALE_KAFKA_OPTIONS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub kafka_options: Vec<KafkaOption>,

    /// MySQL / MariaDB for orders and sale definitions (`mysql://user[:password]@host:port/db`);
    /// the schema is migrated at start-up. Unset: orders in process memory.
    #[arg(long, env = "NEXUSSALE_DATABASE_URL")]
    pub database_url: Option<String>,

    /// The bearer token of the admin role (`POST /v1/sales`, every order). With no credential
    /// at all (no admin token, payment token or JWT key) every route is open.
    #[arg(long, env = "NEXUSSALE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// The bearer token of the payment service, the one caller (besides an admin) that may mark
    /// an order paid.
    #[arg(long, env = "NEXUSSALE_PAYMENT_TOKEN", hide_env_values = true)]
    pub payment_token: Option<String>,

    /// The key waiting-room passes are signed with (at least 16 bytes). Unset: a random key,
    /// drawn by the first server and shared through the waiting-room store.
    #[arg(long, env = "NEXUSSALE_WAITING_ROOM_SECRET", hide_env_values = true)]
    pub waiting_room_secret: Option<String>,

    /// HS256 key of buyers' JSON Web Tokens: buyer authentication on (the token's `sub` is the
    /// buyer).
    #[arg(long, env = "NEXUSSALE_JWT_SECRET", hide_env_values = true,
          conflicts_with_all = ["jwt_public_key", "jwks"])]
    pub jwt_secret: Option<String>,

    /// PEM public key (RSA: RS256; P-256: ES256) of buyers' JSON Web Tokens: buyer
    /// authentication on.
    #[arg(long, env = "NEXUSSALE_JWT_PUBLIC_KEY", conflicts_with = "jwks")]
    pub jwt_public_key: Option<std::path::PathBuf>,

    /// A JWKS (a file, or an `http(s)://` URL fetched at start-up and every 5 minutes) of buyers'
    /// JSON Web Tokens, keys picked by `kid`: buyer authentication on.
    #[arg(long, env = "NEXUSSALE_JWKS")]
    pub jwks: Option<String>,

    /// The `iss` buyers' tokens must carry.
    #[arg(long, env = "NEXUSSALE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// An `aud` buyers' tokens must carry.
    #[arg(long, env = "NEXUSSALE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// A proxy (CIDR, `10.0.0.0/8`; a bare address is one host) whose `X-Forwarded-For` /
    /// `Forwarded` names the client, for per-address limits. Repeat the flag for several; the
    /// environment twin is comma-separated. Unset: the connection's peer is the client.
    #[arg(long = "trusted-proxy", env = "NEXUSSALE_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Listen on a non-loopback address with no credential configured (every route open to
    /// anyone who can reach the server). Without it the server refuses to start that way.
    #[arg(long, env = "NEXUSSALE_INSECURE_OPEN", value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_open: bool,

    /// Do not run the order worker and the expiry sweeper in this process (front ends that only
    /// take purchases; separate worker processes persist the orders).
    #[arg(long, env = "NEXUSSALE_NO_WORKER", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_worker: bool,

    /// Connections served at once; past it, new ones wait in the listen backlog.
    #[arg(long, env = "NEXUSSALE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Seconds a client may take to send a request's headers before its connection is closed.
    #[arg(long, env = "NEXUSSALE_HEADER_READ_TIMEOUT_SECS", default_value_t = 5)]
    pub header_read_timeout_secs: u64,

    /// Seconds a client may take to send a request's body; past it the request is answered 408
    /// and the connection closed.
    #[arg(long, env = "NEXUSSALE_BODY_READ_TIMEOUT_SECS", default_value_t = 5)]
    pub body_read_timeout_secs: u64,

    /// The most sales the stock store holds at once: creating one more answers 409
    /// `too_many_sales` (each live sale costs memory and a place in every listing). 0: no cap.
    #[arg(long, env = "NEXUSSALE_MAX_SALES", default_value_t = 100_000)]
    pub max_sales: u64,

    /// Seconds a settled (paid, cancelled, expired) reservation and the idempotency key that made
    /// it stay in the stock store after the reservation's expiry (at least 60): the key's
    /// lifetime. The sweeper forgets them after it.
    #[arg(long, env = "NEXUSSALE_SETTLED_RETENTION_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(60..))]
    pub settled_retention_secs: u64,

    /// The most orders the in-memory repository keeps (no `--database-url`): past it, the oldest
    /// paid, cancelled or expired ones are forgotten (pending ones never). 0: keep every order.
    /// A sale that lost a paid order this way cannot be rebuilt from the repository.
    #[arg(long, env = "NEXUSSALE_MAX_ORDERS_IN_MEMORY", default_value_t = 0)]
    pub max_orders_in_memory: usize,

    /// Connections one client address may hold at once; past it, new ones from that address are
    /// closed at once. Unset: no per-address cap.
    #[arg(long, env = "NEXUSSALE_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,

    /// One info line per request (method, route template, status, latency), under the log
    /// target `nexussale_server::access`.
    #[arg(long, env = "NEXUSSALE_ACCESS_LOG", default_value = "on")]
    pub access_log: Switch,

    /// Seconds one request may take before it is answered 503 `unavailable`.
    #[arg(long, env = "NEXUSSALE_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,

    /// Purchases per second one user may make (a burst of one second's worth); unset: no limit.
    /// Past it: 429 `rate_limited` with `Retry-After`.
    #[arg(long, env = "NEXUSSALE_RATE_LIMIT_USER")]
    pub rate_limit_user: Option<f64>,

    /// Purchase requests per second one client address may make; unset: no limit.
    #[arg(long, env = "NEXUSSALE_RATE_LIMIT_IP")]
    pub rate_limit_ip: Option<f64>,

    /// OpenTelemetry collector to export traces to, over OTLP/HTTP (protobuf), e.g.
    /// `http://127.0.0.1:4318` (spans are posted to `/v1/traces` under it). Unset: no traces, at
    /// no cost. Sampling follows `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, the service
    /// name `OTEL_SERVICE_NAME` (default `nexussale`).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Seconds between two checks of the books (the stock store against the repository, a
    /// reconcile dry run: `nexussale_reconcile_drift_units`) of each sale whose units moved
    /// through this process since the last check, and of each that did not balance then, in a
    /// process that runs the worker; idle sales are not read. 0: never.
    #[arg(long, env = "NEXUSSALE_RECONCILE_EVERY_SECS", default_value_t = 60)]
    pub reconcile_every_secs: u64,

    /// A sale to create at start-up if absent: `SKU=STOCK[:LIMIT]` (LIMIT: units per user, default
    /// 1). Repeat the flag for several; the environment twin is comma-separated.
    #[arg(long = "sale", env = "NEXUSSALE_SALES", value_delimiter = ',')]
    pub sales: Vec<SaleSpec>,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl Switch {
    /// Whether it is `on`.
    pub fn is_on(self) -> bool {
        self == Self::On
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |url: &Option<String>| url.as_deref().map(redact);
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("redis_url", &url(&self.redis_url))
            .field("redis_cluster", &self.redis_cluster)
            .field("redis_sentinel", &self.redis_sentinel)
            .field("redis_ca", &self.redis_ca)
            .field("redis_client_cert", &self.redis_client_cert)
            .field("redis_client_key", &self.redis_client_key)
            .field("redis_shards", &self.redis_shards)
            .field("redis_replica_acks", &self.redis_replica_acks)
            .field("redis_prefix", &self.redis_prefix)
            .field("kafka_brokers", &self.kafka_brokers)
            .field("kafka_topic", &self.kafka_topic)
            .field("kafka_group", &self.kafka_group)
            .field("kafka_partitions", &self.kafka_partitions)
            .field("kafka_replication", &self.kafka_replication)
            .field("kafka_options", &self.kafka_options)
            .field("database_url", &url(&self.database_url))
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("payment_token", &self.payment_token.as_ref().map(|_| "***"))
            .field(
                "waiting_room_secret",
                &self.waiting_room_secret.as_ref().map(|_| "***"),
            )
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("jwt_public_key", &self.jwt_public_key)
            .field("jwks", &url(&self.jwks))
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("insecure_open", &self.insecure_open)
            .field("no_worker", &self.no_worker)
            .field("max_connections", &self.max_connections)
            .field("max_sales", &self.max_sales)
            .field("settled_retention_secs", &self.settled_retention_secs)
            .field("max_orders_in_memory", &self.max_orders_in_memory)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("body_read_timeout_secs", &self.body_read_timeout_secs)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("access_log", &self.access_log)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("rate_limit_user", &self.rate_limit_user)
            .field("rate_limit_ip", &self.rate_limit_ip)
            .field("otlp_endpoint", &url(&self.otlp_endpoint))
            .field("reconcile_every_secs", &self.reconcile_every_secs)
            .field("sales", &self.sales)
            .finish()
    }
}

impl Config {
    /// The credentials these flags configure: reads the JWT public key file, reads or fetches
    /// the JWKS.
    pub async fn identity(&self) -> Result<crate::Identity, crate::JwksError> {
        use crate::{BuyerTokens, Identity, Jwks, JwksError};
        let mut identity = Identity::open();
        if let Some(token) = &self.admin_token {
            identity = identity.with_admin_token(token);
        }
        if let Some(token) = &self.payment_token {
            identity = identity.with_payment_token(token);
        }
        let buyers = if let Some(secret) = &self.jwt_secret {
            Some(BuyerTokens::hs256(secret.as_bytes())?)
        } else if let Some(path) = &self.jwt_public_key {
            let pem = tokio::fs::read(path)
                .await
                .map_err(|err| JwksError::Fetch {
                    source_name: path.display().to_string(),
                    reason: err.to_string(),
                })?;
            Some(BuyerTokens::public_key_pem(&pem)?)
        } else if let Some(source) = &self.jwks {
            Some(BuyerTokens::jwks(Jwks::load(source).await?))
        } else {
            None
        };
        if let Some(mut buyers) = buyers {
            if let Some(issuer) = &self.jwt_issuer {
                buyers = buyers.with_issuer(issuer);
            }
            if let Some(audience) = &self.jwt_audience {
                buyers = buyers.with_audience(audience);
            }
            identity = identity.with_buyer_tokens(buyers);
        }
        Ok(identity)
    }
}

/// A CIDR, or one address (a /32 or /128).
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is neither a CIDR (10.0.0.0/8) nor an address"))
}

/// `url` with any password replaced by `***`, for logs.
pub(crate) fn redact(url: &str) -> String {
    // A cluster's seed list: each URL on its own.
    if url.contains(',') {
        return url.split(',').map(redact).collect::<Vec<_>>().join(",");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_owned(),
    }
}

/// A `KEY=VALUE` librdkafka property.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaOption {
    /// The property's name.
    pub key: String,
    /// Its value (may be a secret: not shown by `Debug`).
    pub value: String,
}

impl std::fmt::Debug for KafkaOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=***", self.key)
    }
}

impl FromStr for KafkaOption {
    type Err = String;

    fn from_str(option: &str) -> Result<Self, Self::Err> {
        match option.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Self {
                key: key.trim().to_owned(),
                value: value.to_owned(),
            }),
            _ => Err(format!(
                "`{}` is not KEY=VALUE",
                option.split('=').next().unwrap_or_default()
            )),
        }
    }
}

/// A `SKU=STOCK[:LIMIT]` start-up sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleSpec(pub Sale);

impl FromStr for SaleSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (sku, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("`{spec}` is not SKU=STOCK[:LIMIT]"))?;
        let (stock, limit) = match rest.split_once(':') {
            Some((stock, limit)) => (stock, Some(limit)),
            None => (rest, None),
        };
        let sku = Sku::new(sku.trim()).map_err(|err| err.to_string())?;
        let stock: u64 = stock
            .trim()
            .parse()
            .map_err(|_| format!("stock `{stock}` is not a whole number"))?;
        let limit: u32 = match limit {
            Some(limit) => limit
                .trim()
                .parse()
                .map_err(|_| format!("limit `{limit}` is not a whole number"))?,
            None => 1,
        };
        let sale = Sale::new(sku, stock).with_per_user_limit(limit);
        sale.validate().map_err(|err| err.to_string())?;
        Ok(Self(sale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sale_specs() {
        let spec: SaleSpec = "ps5=100".parse().unwrap();
        assert_eq!(
            (spec.0.sku.as_str(), spec.0.stock, spec.0.per_user_limit),
            ("ps5", 100, 1)
        );
        let spec: SaleSpec = "switch=20:2".parse().unwrap();
        assert_eq!((spec.0.stock, spec.0.per_user_limit), (20, 2));
        for bad in ["ps5", "ps5=", "ps5=-1", "=3", "ps5=0", "ps5=3:0", "ps5=3:x"] {
            assert!(bad.parse::<SaleSpec>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn redacts_passwords_from_urls() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("redis://:pw-1@a:7000,redis://b:7001,redis://u:pw-2@c:7002"),
            "redis://:***@a:7000,redis://b:7001,redis://u:***@c:7002"
        );
        assert_eq!(
            redact("redis://app:s3cr@t@cache:6379/0"),
            "redis://app:***@cache:6379/0"
        );
        assert_eq!(redact("redis://tok@cache:6379"), "redis://***@cache:6379");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn flags_parse_and_env_list_splits() {
        let config = Config::try_parse_from([
            "nexussale-server",
            "--sale",
            "a=1",
            "--sale",
            "b=2:3",
            "--listen",
            "0.0.0.0:8080",
        ])
        .unwrap();
        assert_eq!(config.sales.len(), 2);
        assert_eq!(config.listen.port(), 8080);
        let config = Config::try_parse_from(["nexussale-server", "--sale", "a=1,b=2"]).unwrap();
        assert_eq!(config.sales.len(), 2);
        assert_eq!(config.redis_url, None);
        assert_eq!(config.database_url, None);
        assert_eq!(config.kafka_brokers, None);
        assert_eq!(config.kafka_topic, "nexussale.orders");
        assert!(!config.no_worker && config.admin_token.is_none());
        let config =
            Config::try_parse_from(["nexussale-server", "--no-worker", "--admin-token", "t"])
                .unwrap();
        assert!(config.no_worker);
        assert_eq!(config.admin_token.as_deref(), Some("t"));
        assert_eq!(
            (config.redis_shards, config.redis_prefix.as_str()),
            (1, "nexussale")
        );
        let config = Config::try_parse_from([
            "nexussale-server",
            "--redis-url",
            "redis://127.0.0.1:6379",
            "--redis-shards",
            "4",
        ])
        .unwrap();
        assert_eq!(config.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(config.redis_shards, 4);
        assert!(Config::try_parse_from(["nexussale-server", "--redis-shards", "0"]).is_err());
        assert_eq!(
            config.backends().redis_topology,
            crate::RedisTopology::Single
        );
        let cluster = Config::try_parse_from([
            "nexussale-server",
            "--redis-cluster",
            "--redis-url",
            "redis://a:7000,redis://b:7000",
        ])
        .unwrap();
        assert_eq!(
            cluster.backends().redis_topology,
            crate::RedisTopology::Cluster
        );
        let sentinel = Config::try_parse_from([
            "nexussale-server",
            "--redis-sentinel",
            "shop",
            "--redis-url",
            "redis://a:26379,redis://b:26379",
        ])
        .unwrap();
        assert_eq!(
            sentinel.backends().redis_topology,
            crate::RedisTopology::Sentinel {
                master: "shop".into()
            }
        );
        assert!(
            Config::try_parse_from([
                "nexussale-server",
                "--redis-sentinel",
                "shop",
                "--redis-cluster",
                "--redis-url",
                "redis://a:26379",
            ])
            .is_err()
        );
    }

    #[test]
    fn kafka_options_parse_and_hide_their_values() {
        let config = Config::try_parse_from([
            "nexussale-server",
            "--kafka-option",
            "sasl.password=s3cret=x",
            "--kafka-option",
            "session.timeout.ms=6000",
        ])
        .unwrap();
        assert_eq!(config.kafka_options[0].key, "sasl.password");
        assert_eq!(config.kafka_options[0].value, "s3cret=x");
        assert_eq!(config.kafka_options[1].value, "6000");
        assert!(!format!("{config:?}").contains("s3cret"));
        let config = Config::try_parse_from([
            "nexussale-server",
            "--admin-token",
            "t0ken-xyz",
            "--redis-url",
            "redis://app:redis-pw@cache:6379",
            "--database-url",
            "mysql://shop:db-pw@db:3306/shop",
        ])
        .unwrap();
        let shown = format!("{config:?}");
        for secret in ["t0ken-xyz", "redis-pw", "db-pw"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("redis://app:***@cache:6379"), "{shown}");
        let refused = Config::try_parse_from(["nexussale-server", "--kafka-option", "s3cret"]);
        assert!(refused.is_err());
    }
}
