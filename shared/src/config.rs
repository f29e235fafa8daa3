//! Layered configuration: built-in defaults, then an optional TOML file, then environment variables.
//!
//! Environment variables are `RMM_SYNC_<KEY>`, with `__` between nested keys
//! (`RMM_SYNC_HTTP__BIND`). `DATABASE_URL` is also read, below `RMM_SYNC_DATABASE_URL`.
//! Every setting is documented in `docs/configuration.md`.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The database used when nothing is configured: one SQLite file, created on first start.
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

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            schema_mode: SchemaMode::default(),
            database: DatabaseSettings::default(),
            http: HttpSettings::default(),
            log: LogSettings::default(),
            ingest: IngestSettings::default(),
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
        Self { bind: "127.0.0.1:8080".to_owned() }
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
    /// exists), then `DATABASE_URL`, then `RMM_SYNC_*` variables.
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
        if let Some(url) = lookup("DATABASE_URL").filter(|u| !u.is_empty()) {
            figment = figment.merge(Serialized::default("database_url", url));
        }
        let prefixed: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| k.starts_with("RMM_SYNC_") && k != "RMM_SYNC_CONFIG" && k != "RMM_SYNC_ADMIN_TOKEN")
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
        Ok(())
    }
}

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
        let parsed: figment::value::Value = value.parse().unwrap_or_else(|_| value.clone().into());
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

        let e = Settings::load_from(Some(Path::new("/does/not/exist.toml")), env(&[])).unwrap_err();
        assert!(matches!(e, ConfigError::MissingFile(_)));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
