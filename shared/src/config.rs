//! Layered configuration: built-in defaults, then an optional TOML file, then environment variables.
//!
//! Environment variables are `RMM_SYNC_<KEY>`, with `__` between nested keys
//! (`RMM_SYNC_HTTP__BIND`). `DATABASE_URL` is also read, below `RMM_SYNC_DATABASE_URL`.
//! Every setting is documented in `docs/configuration.md`.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The data directory, relative to the working directory: the default SQLite store
/// ([`DEFAULT_DATABASE_URL`]) and the default filesystem secrets (`<data>/secrets`) live in it.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// The database used when nothing is configured: one SQLite file in [`DEFAULT_DATA_DIR`], created
/// on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/rmm-sync.db";
/// The TOML file read when `--config`/`RMM_SYNC_CONFIG` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "rmm-sync.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Whether the AlgaPSA tables are ours to create (standalone) or belong to a real AlgaPSA database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SchemaMode {
    /// Create the AlgaPSA-compatible tables ourselves (the default, for trials and tests).
    #[default]
    Standalone,
    /// Run against a real AlgaPSA database: only check that the tables and columns we use exist.
    Algapsa,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `postgres://…` or `sqlite://…`.
    pub database_url: String,
    /// Standalone (create AlgaPSA tables) or algapsa (verify them).
    pub schema_mode: SchemaMode,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub ingest: IngestSettings,
    pub queue: QueueSettings,
    pub worker: WorkerSettings,
    pub scheduler: SchedulerSettings,
    pub retention: RetentionSettings,
    pub upstream: UpstreamSettings,
    pub telemetry: TelemetrySettings,
    pub events: EventsSettings,
}

/// Publishing events on AlgaPSA's Redis streams (`RMM_SYNC_*`, `RMM_ALERT_*`,
/// `RMM_WEBHOOK_RECEIVED`). Off unless a Redis URL is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// Redis of AlgaPSA's event bus. Also `RMM_SYNC_EVENTS_REDIS_URL`. Unset or empty: off.
    pub redis_url: Option<String>,
    /// AlgaPSA's key prefix (`REDIS_PREFIX` in AlgaPSA, read below `RMM_SYNC_*`).
    pub redis_prefix: String,
    /// AlgaPSA's stream prefix (`REDIS_EVENT_STREAM_PREFIX` in AlgaPSA, read below `RMM_SYNC_*`).
    pub stream_prefix: String,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self { redis_url: None, redis_prefix: "alga-psa:".to_owned(), stream_prefix: "event-stream:".to_owned() }
    }
}

impl EventsSettings {
    /// The Redis to publish to, if publishing is on (an empty value is off).
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref().filter(|u| !u.is_empty())
    }
}

/// Trace export (OpenTelemetry, OTLP over HTTP). Off unless an endpoint is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://otel-collector:4318`; spans are posted to
    /// `<endpoint>/v1/traces` (an endpoint already ending in `/v1/traces` is used as it is).
    /// Unset: nothing is exported. `OTEL_EXPORTER_OTLP_ENDPOINT` is read below `RMM_SYNC_*`.
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (default) or `http/json`. `OTEL_EXPORTER_OTLP_PROTOCOL` is read below
    /// `RMM_SYNC_*`; `grpc` is refused.
    pub otlp_protocol: OtlpProtocol,
    /// `service.name` of the exported spans. `OTEL_SERVICE_NAME` is read below `RMM_SYNC_*`.
    pub service_name: String,
    /// Share of the traces started here that are recorded, 0.0 to 1.0. A trace continued from a
    /// caller's `traceparent` follows the caller's sampling decision.
    pub sample_ratio: f64,
    /// A `tracing` filter for the exported spans and span events (independent of `log.level`).
    pub level: String,
}

/// The OTLP encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
    /// Accepted when read, refused when an endpoint is set: this build has no gRPC exporter.
    #[serde(rename = "grpc")]
    Grpc,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            service_name: "rmm-sync".to_owned(),
            sample_ratio: 1.0,
            level: "info".to_owned(),
        }
    }
}

impl TelemetrySettings {
    /// The configured endpoint, if export is on (an empty value is off).
    pub fn endpoint(&self) -> Option<&str> {
        self.otlp_endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty())
    }

    /// The URL spans are posted to: `<endpoint>/v1/traces`.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.endpoint()?.trim_end_matches('/');
        Some(if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let Some(endpoint) = self.endpoint() else { return Ok(()) };
        let parsed = url::Url::parse(endpoint).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
        if parsed.is_none() {
            return Err(ConfigError::Invalid(format!(
                "telemetry.otlp_endpoint must be an http:// or https:// URL (got {:?})",
                redact_url(endpoint)
            )));
        }
        if self.otlp_protocol == OtlpProtocol::Grpc {
            return Err(ConfigError::Invalid(
                "telemetry.otlp_protocol grpc is not supported: use http/protobuf (or http/json) and the \
                 collector's OTLP/HTTP port (4318)"
                    .into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError::Invalid("telemetry.sample_ratio must be between 0.0 and 1.0".into()));
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::Invalid("telemetry.service_name must not be empty".into()));
        }
        tracing_subscriber::EnvFilter::try_new(&self.level)
            .map_err(|e| ConfigError::Invalid(format!("telemetry.level is not a valid filter: {e}")))?;
        Ok(())
    }
}

/// Calls to the RMM servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSettings {
    /// Redis holding the per-instance request limits, so that every process together stays under
    /// them (`redis://…`). Unset: each process limits its own calls.
    pub rate_limit_redis_url: Option<String>,
    /// Requests per second to one Tanium Gateway, all workers together (burst: twice as many).
    pub tanium_requests_per_second: u32,
    /// Relay page size of Tanium Gateway reads (1–1000).
    pub tanium_page_size: u32,
    /// Requests per second to one NinjaOne instance, all workers together (NinjaOne publishes no
    /// limit and answers 429 with `Retry-After`, which is honoured).
    pub ninjaone_requests_per_second: u32,
    /// Burst of the NinjaOne limit.
    pub ninjaone_burst: u32,
    /// Devices per page of NinjaOne's detailed device listing (1–1000).
    pub ninjaone_page_size: u32,
    /// Requests per second to one Level API host, all workers together (burst: twice as many).
    pub levelio_requests_per_second: u32,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            rate_limit_redis_url: None,
            tanium_requests_per_second: 20,
            tanium_page_size: 250,
            ninjaone_requests_per_second: 10,
            ninjaone_burst: 20,
            ninjaone_page_size: 500,
            levelio_requests_per_second: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Maximum pooled connections per process.
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before failing.
    pub acquire_timeout_secs: u64,
    /// Run migrations (or the AlgaPSA schema check) when a process starts.
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Address the ingress listens on.
    pub bind: String,
    /// The URL Tactical reaches this service at (used in the webhook URL shown to admins),
    /// e.g. `https://rmm-sync.example.com`. Default: `http://<bind>`.
    pub public_url: Option<String>,
    /// Seconds of the webhook coalescing window: a burst of webhooks for one agent refreshes it
    /// from Tactical at most twice per window (every alert is still recorded).
    pub webhook_coalesce_secs: u64,
    /// Milliseconds a client has to send a request's headers (counted from the connection's
    /// start, or from the end of its previous response); then the connection is closed. Also
    /// closes idle keep-alive connections.
    pub header_timeout_ms: u64,
    /// Milliseconds a client has to send a request's whole body, counted from the end of its
    /// headers; then it is answered 408 and the connection is closed.
    pub body_timeout_ms: u64,
    /// Largest request body of the admin API and every route other than the webhook (KiB); the
    /// webhook's limit is fixed at 256 KiB.
    pub api_body_limit_kib: usize,
    /// Milliseconds: a webhook refused for its secret (wrong secret, unknown tenant, tenant without
    /// a secret) is answered no sooner than this after its handling started, so the time of the
    /// answer does not tell whether the tenant exists. Keep it above the slowest secret lookup.
    pub webhook_unauthorized_floor_ms: u64,
    /// Statements writing webhook deliveries at once (PostgreSQL with the PostgreSQL queue).
    /// Deliveries arriving while they all run wait and are written together by the next one.
    pub webhook_batch_statements: usize,
    /// A global read-write admin API key (bootstrap). Also `RMM_SYNC_ADMIN_TOKEN`. A secret: shown
    /// as `[REDACTED]` by `Debug` and serialized as unset, so it never reaches a log or a dump.
    #[serde(serialize_with = "serialize_as_unset")]
    pub admin_token: Option<SecretString>,
}

impl HttpSettings {
    /// The bootstrap admin key, if one is set (a blank value is none).
    pub fn admin_token(&self) -> Option<&SecretString> {
        self.admin_token.as_ref().filter(|t| !t.expose_secret().trim().is_empty())
    }
}

/// Serializes a secret setting as unset, whatever it holds.
fn serialize_as_unset<S: serde::Serializer>(_: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A `tracing` filter, e.g. `info` or `rmm_shared=debug,info`. `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Devices written per transaction by the ingestion pipeline.
    pub page_size: usize,
}

/// Which store holds the job queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    /// The same database as `database_url` (Postgres or SQLite).
    #[default]
    Database,
    /// Redis at `queue.redis_url` (job status and schedules stay in the database).
    Redis,
}

/// The durable job queue (apalis).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// `database` (Postgres or SQLite, whichever `database_url` is) or `redis`.
    pub backend: QueueBackend,
    /// `redis://…`, used when `backend = "redis"`.
    pub redis_url: String,
    /// Prefix of the queue names in Redis (several deployments can share one Redis).
    pub redis_namespace: String,
    /// Milliseconds between polls for due jobs (Postgres also wakes on LISTEN/NOTIFY; delayed jobs
    /// and SQLite/Redis rely on this poll).
    pub poll_interval_ms: u64,
    /// Seconds between worker heartbeats.
    pub heartbeat_secs: u64,
    /// Heartbeats a worker may miss before its running jobs are handed to another worker.
    /// Orphan time = `heartbeat_secs × missed_heartbeats` (default 5 × 4 = 20 s).
    pub missed_heartbeats: u32,
    /// Jobs one worker process runs at once per job kind, unless the kind sets its own.
    pub concurrency: usize,
}

/// The worker process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Seconds running jobs get to finish after SIGTERM; jobs not started go back to the queue.
    pub shutdown_timeout_secs: u64,
    /// Restarts of a failed queue consumer (e.g. after a long database outage) before the process
    /// exits non-zero so that its supervisor restarts it.
    pub max_restarts: usize,
    /// `rmm-sync worker` only: address of a small HTTP listener with `/healthz`, `/readyz` and
    /// `/metrics` (e.g. `0.0.0.0:9091`). Unset: none. (`serve` has them on `http.bind`.)
    pub metrics_bind: Option<String>,
}

/// The schedule runner (runs inside every worker process; replicas never enqueue a slot twice).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// Run schedules in this process.
    pub enabled: bool,
    /// Milliseconds between looks for due schedules.
    pub tick_ms: u64,
}

/// Deleting old rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Finished jobs (done, failed after their last attempt, cancelled) older than this many days
    /// are deleted by the `maintenance` job, from the queue and from the job-status table.
    pub finished_jobs_days: u32,
    /// Minutes between runs of the built-in `maintenance` job.
    pub maintenance_interval_minutes: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            backend: QueueBackend::Database,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_namespace: "rmm-sync".to_owned(),
            poll_interval_ms: 1_000,
            heartbeat_secs: 5,
            missed_heartbeats: 4,
            concurrency: 4,
        }
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self { shutdown_timeout_secs: 30, max_restarts: 10, metrics_bind: None }
    }
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self { enabled: true, tick_ms: 5_000 }
    }
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self { finished_jobs_days: 14, maintenance_interval_minutes: 60 }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            schema_mode: SchemaMode::default(),
            database: DatabaseSettings::default(),
            http: HttpSettings::default(),
            log: LogSettings::default(),
            ingest: IngestSettings::default(),
            queue: QueueSettings::default(),
            worker: WorkerSettings::default(),
            scheduler: SchedulerSettings::default(),
            retention: RetentionSettings::default(),
            upstream: UpstreamSettings::default(),
            telemetry: TelemetrySettings::default(),
            events: EventsSettings::default(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { max_connections: 20, acquire_timeout_secs: 10, migrate_on_start: true }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".to_owned(),
            public_url: None,
            webhook_coalesce_secs: 10,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            api_body_limit_kib: 1024,
            webhook_unauthorized_floor_ms: 100,
            webhook_batch_statements: 2,
            admin_token: None,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { level: "info".to_owned(), format: LogFormat::Text }
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self { page_size: 500 }
    }
}

impl Settings {
    /// Loads the settings: defaults, then `file` (or `RMM_SYNC_CONFIG`, or `./rmm-sync.toml` when it
    /// exists), then the variables of [`EXACT_ENV`] (`DATABASE_URL`, the standard `OTEL_*`
    /// variables, AlgaPSA's Redis prefixes, `RMM_SYNC_ADMIN_TOKEN`, `RMM_SYNC_EVENTS_REDIS_URL`),
    /// then `RMM_SYNC_<SECTION>__<KEY>` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`], with the environment given explicitly (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());

        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let explicit = file.map(Path::to_path_buf).or_else(|| lookup("RMM_SYNC_CONFIG").map(PathBuf::from));
        match explicit {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path)),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        for e in EXACT_ENV {
            let Some(value) = lookup(e.var) else { continue };
            let value = if e.trim { value.trim().to_owned() } else { value };
            if !value.is_empty() || e.keep_empty {
                figment = figment.merge(Serialized::default(e.key, value));
            }
        }
        let prefixed: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| {
                k.starts_with("RMM_SYNC_")
                    && k.as_str() != "RMM_SYNC_CONFIG"
                    // a test-only switch of the job registry (feature `test-jobs`), not a setting
                    && k.as_str() != "RMM_SYNC_TEST_JOBS"
                    && !EXACT_ENV.iter().any(|e| e.var == k)
            })
            .cloned()
            .collect();
        figment = figment.merge(env_provider(prefixed));
        let settings: Settings = figment.extract().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database_url.as_str();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:")) {
            return Err(ConfigError::Invalid(format!(
                "database_url must start with postgres:// or sqlite:// (got {:?})",
                redact_url(url)
            )));
        }
        if self.ingest.page_size == 0 || self.ingest.page_size > 5_000 {
            return Err(ConfigError::Invalid("ingest.page_size must be between 1 and 5000".into()));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::Invalid("database.max_connections must be at least 1".into()));
        }
        if self.queue.backend == QueueBackend::Redis && !self.queue.redis_url.starts_with("redis") {
            return Err(ConfigError::Invalid(
                "queue.redis_url must start with redis:// or rediss:// when queue.backend = \"redis\"".into(),
            ));
        }
        if self.queue.heartbeat_secs == 0 || self.queue.missed_heartbeats == 0 {
            return Err(ConfigError::Invalid(
                "queue.heartbeat_secs and queue.missed_heartbeats must be at least 1".into(),
            ));
        }
        if self.queue.concurrency == 0 || self.queue.poll_interval_ms == 0 || self.scheduler.tick_ms == 0 {
            return Err(ConfigError::Invalid(
                "queue.concurrency, queue.poll_interval_ms and scheduler.tick_ms must be at least 1".into(),
            ));
        }
        if self.http.header_timeout_ms == 0 || self.http.body_timeout_ms == 0 || self.http.api_body_limit_kib == 0 {
            return Err(ConfigError::Invalid(
                "http.header_timeout_ms, http.body_timeout_ms and http.api_body_limit_kib must be at least 1".into(),
            ));
        }
        if self.http.webhook_batch_statements == 0 || self.http.webhook_batch_statements > 64 {
            return Err(ConfigError::Invalid("http.webhook_batch_statements must be between 1 and 64".into()));
        }
        if self.retention.finished_jobs_days == 0 || self.retention.maintenance_interval_minutes == 0 {
            return Err(ConfigError::Invalid(
                "retention.finished_jobs_days and retention.maintenance_interval_minutes must be at least 1".into(),
            ));
        }
        self.telemetry.validate()?;
        Ok(())
    }
}

/// An environment variable read under its own name (not `RMM_SYNC_<SECTION>__<KEY>`), and the
/// setting it sets. These are merged above the file and below the `RMM_SYNC_<SECTION>__<KEY>`
/// variables.
#[derive(Debug, Clone, Copy)]
pub struct ExactEnv {
    pub var: &'static str,
    /// The setting, as its TOML key.
    pub key: &'static str,
    /// Surrounding blanks are removed from the value.
    trim: bool,
    /// An empty value sets the setting to empty (otherwise it is ignored).
    keep_empty: bool,
}

const fn exact(var: &'static str, key: &'static str, trim: bool, keep_empty: bool) -> ExactEnv {
    ExactEnv { var, key, trim, keep_empty }
}

/// Every variable read under its own name: the standard ones of PostgreSQL tools and
/// OpenTelemetry, AlgaPSA's names for its Redis streams, and the two `RMM_SYNC_*` names that
/// predate the sections.
pub const EXACT_ENV: &[ExactEnv] = &[
    exact("DATABASE_URL", "database_url", false, false),
    exact("OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlp_endpoint", true, false),
    exact("OTEL_EXPORTER_OTLP_PROTOCOL", "telemetry.otlp_protocol", true, false),
    exact("OTEL_SERVICE_NAME", "telemetry.service_name", true, false),
    exact("RMM_SYNC_EVENTS_REDIS_URL", "events.redis_url", false, false),
    // AlgaPSA reads these with an empty value as an empty prefix; so do we.
    exact("REDIS_PREFIX", "events.redis_prefix", false, true),
    exact("REDIS_EVENT_STREAM_PREFIX", "events.stream_prefix", false, true),
    exact("RMM_SYNC_ADMIN_TOKEN", "http.admin_token", false, false),
];

/// `RMM_SYNC_*` variables as a figment provider, from an explicit list (no process-global reads).
fn env_provider(vars: Vec<(String, String)>) -> impl figment::Provider {
    // figment's Env provider reads the process environment; to keep `load_from` pure the given
    // variables are turned into a nested dictionary here, values parsed the way Env parses them.
    let mut root = figment::value::Dict::new();
    for (key, value) in vars {
        let path: Vec<String> = key["RMM_SYNC_".len()..].split("__").map(|p| p.to_ascii_lowercase()).collect();
        if path.iter().any(String::is_empty) {
            continue;
        }
        // A secret is taken as given: a token of digits is still a token, not a number.
        let parsed: figment::value::Value = if path.join(".") == "http.admin_token" {
            value.into()
        } else {
            value.parse().unwrap_or_else(|_| value.clone().into())
        };
        insert_path(&mut root, &path, parsed);
    }
    Serialized::defaults(root)
}

fn insert_path(dict: &mut figment::value::Dict, path: &[String], value: figment::value::Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry =
                dict.entry(first.clone()).or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
            if let figment::value::Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// A database URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_use_embedded_sqlite() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert!(
            DEFAULT_DATABASE_URL.starts_with(&format!("sqlite://{DEFAULT_DATA_DIR}/")),
            "the store is in the data dir"
        );
        assert_eq!(s.schema_mode, SchemaMode::Standalone);
        assert_eq!(s.ingest.page_size, 500);
    }

    #[test]
    fn file_then_database_url_then_prefixed_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "database_url = \"postgres://file/db\"\nschema_mode = \"algapsa\"\n[http]\nbind = \"0.0.0.0:1\"\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(s.database_url, "postgres://file/db");
        assert_eq!(s.schema_mode, SchemaMode::Algapsa);
        assert_eq!(s.http.bind, "0.0.0.0:1");

        let s = Settings::load_from(Some(&path), env(&[("DATABASE_URL", "postgres://env/db")])).unwrap();
        assert_eq!(s.database_url, "postgres://env/db");

        let s = Settings::load_from(
            Some(&path),
            env(&[
                ("DATABASE_URL", "postgres://env/db"),
                ("RMM_SYNC_DATABASE_URL", "sqlite://x.db"),
                ("RMM_SYNC_HTTP__BIND", "127.0.0.1:9"),
                ("RMM_SYNC_INGEST__PAGE_SIZE", "42"),
            ]),
        )
        .unwrap();
        assert_eq!(s.database_url, "sqlite://x.db");
        assert_eq!(s.http.bind, "127.0.0.1:9");
        assert_eq!(s.ingest.page_size, 42);
    }

    #[test]
    fn bad_input_is_refused_with_a_clear_message() {
        let e = Settings::load_from(None, env(&[("DATABASE_URL", "mysql://u:secret@h/db")])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("postgres:// or sqlite://"), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");

        let e = Settings::load_from(None, env(&[("RMM_SYNC_NOPE", "1")])).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");

        // Variables read elsewhere by the service are not settings and must not be refused as such.
        Settings::load_from(
            None,
            env(&[
                ("RMM_SYNC_ADMIN_TOKEN", "t"),
                ("RMM_SYNC_EVENTS_REDIS_URL", "redis://127.0.0.1:6379"),
                ("RMM_SYNC_TEST_JOBS", "1"),
            ]),
        )
        .unwrap();
        let e = Settings::load_from(None, env(&[("RMM_SYNC_EVENTS__REDIS_PORT", "6379")])).unwrap_err();
        assert!(e.to_string().contains("redis_port"), "{e}");

        let e = Settings::load_from(Some(Path::new("/does/not/exist.toml")), env(&[])).unwrap_err();
        assert!(matches!(e, ConfigError::MissingFile(_)));
    }

    #[test]
    fn telemetry_is_off_by_default_and_read_from_both_variable_families() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.telemetry.endpoint(), None);
        assert_eq!(s.telemetry.traces_url(), None);
        assert_eq!(s.telemetry.otlp_protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(s.telemetry.service_name, "rmm-sync");

        let s = Settings::load_from(
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_SERVICE_NAME", "sync-a"),
            ]),
        )
        .unwrap();
        assert_eq!(s.telemetry.traces_url().as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(s.telemetry.otlp_protocol, OtlpProtocol::HttpJson);
        assert_eq!(s.telemetry.service_name, "sync-a");

        // RMM_SYNC_* wins over OTEL_*.
        let s = Settings::load_from(
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("RMM_SYNC_TELEMETRY__OTLP_ENDPOINT", "https://otel.example.com/v1/traces"),
                ("RMM_SYNC_TELEMETRY__OTLP_PROTOCOL", "http/protobuf"),
                ("RMM_SYNC_TELEMETRY__SAMPLE_RATIO", "0.25"),
            ]),
        )
        .unwrap();
        assert_eq!(s.telemetry.traces_url().as_deref(), Some("https://otel.example.com/v1/traces"));
        assert_eq!(s.telemetry.sample_ratio, 0.25);

        // gRPC only matters (and is refused) when export is on.
        assert!(Settings::load_from(None, env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])).is_ok());
        let e = Settings::load_from(
            None,
            env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("4318"), "{e}");
        let e = Settings::load_from(None, env(&[("RMM_SYNC_TELEMETRY__OTLP_ENDPOINT", "collector:4318")])).unwrap_err();
        assert!(e.to_string().contains("telemetry.otlp_endpoint"), "{e}");
        let e = Settings::load_from(
            None,
            env(&[("RMM_SYNC_TELEMETRY__OTLP_ENDPOINT", "http://c:4318"), ("RMM_SYNC_TELEMETRY__SAMPLE_RATIO", "2")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("sample_ratio"), "{e}");
    }

    #[test]
    fn variables_read_under_their_own_names_are_settings() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.events.redis_url(), None);
        assert_eq!(s.events.redis_prefix, "alga-psa:");
        assert_eq!(s.events.stream_prefix, "event-stream:");
        assert!(s.http.admin_token().is_none());

        let s = Settings::load_from(
            None,
            env(&[
                ("RMM_SYNC_EVENTS_REDIS_URL", "redis://alga:6379/0"),
                ("REDIS_PREFIX", "tenant-a:"),
                ("REDIS_EVENT_STREAM_PREFIX", "streams:"),
                ("RMM_SYNC_ADMIN_TOKEN", "rmk-bootstrap-Secret-7"),
            ]),
        )
        .unwrap();
        assert_eq!(s.events.redis_url(), Some("redis://alga:6379/0"));
        assert_eq!(s.events.redis_prefix, "tenant-a:");
        assert_eq!(s.events.stream_prefix, "streams:");
        assert_eq!(s.http.admin_token().map(|t| t.expose_secret()), Some("rmk-bootstrap-Secret-7"));

        // The token is never shown or serialized.
        assert!(!format!("{s:?}").contains("Secret-7"));
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("Secret-7") && json.contains("\"admin_token\":null"), "{json}");

        // Empty: events off, no token; but an empty prefix is a prefix, as in AlgaPSA.
        let s = Settings::load_from(
            None,
            env(&[("RMM_SYNC_EVENTS_REDIS_URL", ""), ("REDIS_PREFIX", ""), ("RMM_SYNC_ADMIN_TOKEN", "  ")]),
        )
        .unwrap();
        assert_eq!(s.events.redis_url(), None);
        assert_eq!(s.events.redis_prefix, "");
        assert!(s.http.admin_token().is_none());

        // The file keys, and the sectioned variables above the plain names.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rmm-sync.toml");
        std::fs::write(
            &file,
            "[events]\nredis_url = \"redis://file\"\nredis_prefix = \"file:\"\nstream_prefix = \"fs:\"\n\
             [http]\nadmin_token = \"from-file\"\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), env(&[])).unwrap();
        assert_eq!(s.events.redis_url(), Some("redis://file"));
        assert_eq!((s.events.redis_prefix.as_str(), s.events.stream_prefix.as_str()), ("file:", "fs:"));
        assert_eq!(s.http.admin_token().map(|t| t.expose_secret()), Some("from-file"));
        let s = Settings::load_from(
            Some(&file),
            env(&[
                ("REDIS_PREFIX", "env:"),
                ("RMM_SYNC_ADMIN_TOKEN", "from-env"),
                ("RMM_SYNC_EVENTS__STREAM_PREFIX", "sectioned:"),
                ("REDIS_EVENT_STREAM_PREFIX", "plain:"),
            ]),
        )
        .unwrap();
        assert_eq!(s.events.redis_prefix, "env:");
        assert_eq!(s.events.stream_prefix, "sectioned:");
        assert_eq!(s.http.admin_token().map(|t| t.expose_secret()), Some("from-env"));
        let s = Settings::load_from(None, env(&[("RMM_SYNC_HTTP__ADMIN_TOKEN", "12345")])).unwrap();
        assert_eq!(s.http.admin_token().map(|t| t.expose_secret()), Some("12345"));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
