//! AlgaPSA's secret chain (docs/configuration.md): tenant and app secrets read from
//! environment variables and files, in the same order and with the same names as AlgaPSA, so an
//! operator points rmm-sync at the secrets AlgaPSA already uses.
//!
//! - `env` (read-only): tenant secret `TENANT_<uuid>_<name>` (or `<SECRET_ENV_PREFIX>_TENANT_…`),
//!   app secret `<name>` (or `<PREFIX>_<name>`).
//! - `filesystem`: `<base>/tenants/<uuid>/<name>` (trimmed), app secret `<base>/<name>`; base is
//!   `SECRET_FS_BASE_PATH`, else `/run/secrets` when it exists, else `./data/secrets` when it
//!   exists, else a non-empty `./secrets` or `../secrets` (where secrets were kept before; see
//!   [`FsBase::Legacy`]), else `./data/secrets`. Directories it creates are mode 0700, the files
//!   it writes 0600.
//! - Selection: with `SECRET_READ_CHAIN` or `SECRET_WRITE_PROVIDER` set, the read chain is that
//!   comma-separated list (default `env`) and writes go to the write provider (default
//!   `filesystem`); otherwise reads try `env` then `filesystem` and writes go to `filesystem`.
//!
//! - `vault` (KV v2 over HTTP, [`vault`]): all of a tenant's secrets are keys of one document at
//!   `VAULT_TENANT_SECRET_PATH_TEMPLATE` (`{tenantId}` replaced; default
//!   `kv/data/tenants/{tenantId}/secrets`), app secrets of the document at `VAULT_APP_SECRET_PATH`
//!   (default `kv/data/app/secrets`); needs `VAULT_ADDR` and `VAULT_TOKEN`.
//!
//! Values are `SecretString`s: never logged, never in errors or `Debug` output.

pub mod vault;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("unknown secret provider {0:?} (use env, filesystem or vault)")]
    UnknownProvider(String),
    #[error("the vault secret provider needs {0}")]
    VaultConfig(&'static str),
    #[error("vault: {0}")]
    Vault(String),
    #[error("secret provider {0} is read-only; set SECRET_WRITE_PROVIDER=filesystem")]
    ReadOnly(&'static str),
    #[error("invalid secret name {0:?}: a plain file name is required")]
    InvalidName(String),
    #[error("cannot access secret {name} in {path}: {source}")]
    Io { name: String, path: String, source: std::io::Error },
}

/// Where the filesystem provider keeps secrets when `SECRET_FS_BASE_PATH` is not set: this
/// directory of the data directory ([`crate::config::DEFAULT_DATA_DIR`]), i.e. `./data/secrets`.
pub const DEFAULT_FS_SUBDIR: &str = "secrets";

/// Why the filesystem provider's base directory is the one it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsBase {
    /// `SECRET_FS_BASE_PATH`.
    Configured,
    /// `/run/secrets`, which exists (Docker and Kubernetes secrets).
    RunSecrets,
    /// `./data/secrets`: it exists, or nothing else applies (the default).
    DataDir,
    /// A non-empty `./secrets` or `../secrets`, where secrets were kept by default before
    /// `./data/secrets`: still read and written, with a warning at start-up
    /// ([`SecretStore::log_location`]). An empty one is ignored.
    Legacy,
}

/// The filesystem provider's base directory in `cwd`, and why; `run_secrets` is `/run/secrets`
/// (a parameter for tests).
pub fn resolve_fs_base(configured: Option<&str>, cwd: &Path, run_secrets: &Path) -> (PathBuf, FsBase) {
    if let Some(p) = configured {
        let p = Path::new(p);
        return (if p.is_absolute() { p.to_owned() } else { cwd.join(p) }, FsBase::Configured);
    }
    if run_secrets.is_dir() {
        return (run_secrets.to_owned(), FsBase::RunSecrets);
    }
    let data = default_fs_base(cwd);
    if data.is_dir() {
        return (data, FsBase::DataDir);
    }
    let non_empty = |d: &Path| std::fs::read_dir(d).is_ok_and(|mut entries| entries.next().is_some());
    let legacy = [Some(cwd.join("secrets")), cwd.parent().map(|p| p.join("secrets"))];
    match legacy.into_iter().flatten().find(|d| non_empty(d)) {
        Some(d) => (d, FsBase::Legacy),
        None => (data, FsBase::DataDir),
    }
}

/// `<cwd>/data/secrets`.
pub fn default_fs_base(cwd: &Path) -> PathBuf {
    let data: PathBuf = Path::new(crate::config::DEFAULT_DATA_DIR)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    cwd.join(data).join(DEFAULT_FS_SUBDIR)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Env,
    Filesystem,
    Vault,
}

impl Provider {
    fn parse(s: &str) -> Result<Provider, SecretError> {
        match s.trim() {
            "env" => Ok(Provider::Env),
            "filesystem" => Ok(Provider::Filesystem),
            "vault" => Ok(Provider::Vault),
            other => Err(SecretError::UnknownProvider(other.to_owned())),
        }
    }

    fn describe(self, base: &Path) -> String {
        match self {
            Provider::Env => "environment variables".to_owned(),
            Provider::Filesystem => format!("files in {}", base.display()),
            Provider::Vault => "Vault".to_owned(),
        }
    }
}

/// The secret chain, built from an environment (the process's or a given one).
#[derive(Clone)]
pub struct SecretStore {
    env: HashMap<String, String>,
    env_prefix: Option<String>,
    base: PathBuf,
    base_source: FsBase,
    read_chain: Vec<Provider>,
    write: Provider,
    vault: Option<vault::Vault>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("read_chain", &self.read_chain)
            .field("write", &self.write)
            .field("base", &self.base)
            .field("base_source", &self.base_source)
            .finish_non_exhaustive()
    }
}

impl SecretStore {
    /// From the process environment.
    pub fn from_process_env() -> Result<Self, SecretError> {
        Self::from_env(std::env::vars())
    }

    /// From an explicit environment (tests, or a configuration layer).
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, SecretError> {
        let env: HashMap<String, String> = vars.into_iter().collect();
        let get = |k: &str| env.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let (read_chain, write) = if get("SECRET_READ_CHAIN").is_some() || get("SECRET_WRITE_PROVIDER").is_some() {
            let chain = get("SECRET_READ_CHAIN").unwrap_or_else(|| "env".into());
            let chain =
                chain.split(',').filter(|s| !s.trim().is_empty()).map(Provider::parse).collect::<Result<_, _>>()?;
            let write = Provider::parse(&get("SECRET_WRITE_PROVIDER").unwrap_or_else(|| "filesystem".into()))?;
            (chain, write)
        } else {
            (vec![Provider::Env, Provider::Filesystem], Provider::Filesystem)
        };
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let (base, base_source) =
            resolve_fs_base(get("SECRET_FS_BASE_PATH").as_deref(), &cwd, Path::new("/run/secrets"));
        let vault = if read_chain.contains(&Provider::Vault) || write == Provider::Vault {
            let addr = get("VAULT_ADDR").ok_or(SecretError::VaultConfig("VAULT_ADDR"))?;
            let token = get("VAULT_TOKEN").ok_or(SecretError::VaultConfig("VAULT_TOKEN"))?;
            let app = get("VAULT_APP_SECRET_PATH").unwrap_or_else(|| vault::DEFAULT_APP_PATH.into());
            let tenant =
                get("VAULT_TENANT_SECRET_PATH_TEMPLATE").unwrap_or_else(|| vault::DEFAULT_TENANT_TEMPLATE.into());
            Some(vault::Vault::new(&addr, SecretString::from(token), app, tenant)?)
        } else {
            None
        };
        Ok(SecretStore { env_prefix: get("SECRET_ENV_PREFIX"), env, base, base_source, read_chain, write, vault })
    }

    fn uses_filesystem(&self) -> bool {
        self.write == Provider::Filesystem || self.read_chain.contains(&Provider::Filesystem)
    }

    /// Where secrets are read from and written to, in one line (no secret in it).
    pub fn location(&self) -> String {
        let chain: Vec<String> = self.read_chain.iter().map(|p| p.describe(&self.base)).collect();
        format!("read from {}; written to {}", chain.join(", then "), self.write.describe(&self.base))
    }

    /// What an operator should do about the filesystem base, if anything: for a legacy
    /// `./secrets` (or `../secrets`), where the default is now and the commands to move there.
    pub fn legacy_warning(&self) -> Option<String> {
        if self.base_source != FsBase::Legacy || !self.uses_filesystem() {
            return None;
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let new = default_fs_base(&cwd);
        let data = new.parent().unwrap_or(&cwd);
        let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
        Some(format!(
            "tenant secrets are kept in {old}, where rmm-sync kept them before {new} became the default \
             (outside the data directory, so a checkout's .gitignore may not cover them); they are still \
             read and written there. To move them, stop rmm-sync and run: mkdir -p {data_q} && mv {old_q} \
             {new_q} && chmod -R go-rwx {new_q}. If AlgaPSA reads the same directory, keep it instead with \
             SECRET_FS_BASE_PATH={old}",
            old = self.base.display(),
            new = new.display(),
            data_q = q(data),
            old_q = q(&self.base),
            new_q = q(&new),
        ))
    }

    /// Logs once, at start-up, where secrets are kept (info), and the [`legacy_warning`] (warn).
    ///
    /// [`legacy_warning`]: SecretStore::legacy_warning
    pub fn log_location(&self) {
        tracing::info!("secrets are {}", self.location());
        if let Some(w) = self.legacy_warning() {
            tracing::warn!("{w}");
        }
    }

    /// A tenant secret: the first provider of the read chain that has it.
    pub async fn get_tenant_secret(&self, tenant: Uuid, name: &str) -> Result<Option<SecretString>, SecretError> {
        check_name(name)?;
        for p in &self.read_chain {
            let found = match p {
                Provider::Env => self.env_value(&format!("TENANT_{tenant}_{name}")),
                Provider::Filesystem => read_file(&self.tenant_path(tenant, name), name).await?,
                Provider::Vault => self.vault()?.get(&self.vault()?.tenant_path(tenant), name).await?,
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// An app secret (e.g. `redis_password`, `db_password_server`).
    pub async fn get_app_secret(&self, name: &str) -> Result<Option<SecretString>, SecretError> {
        check_name(name)?;
        for p in &self.read_chain {
            let found = match p {
                Provider::Env => self.env_value(name),
                Provider::Filesystem => read_file(&self.base.join(name), name).await?,
                Provider::Vault => self.vault()?.get(self.vault()?.app_path(), name).await?,
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Writes (or, with `None`, deletes) a tenant secret through the write provider.
    pub async fn set_tenant_secret(
        &self,
        tenant: Uuid,
        name: &str,
        value: Option<&SecretString>,
    ) -> Result<(), SecretError> {
        check_name(name)?;
        match self.write {
            Provider::Env => return Err(SecretError::ReadOnly("env")),
            Provider::Vault => {
                let v = self.vault()?;
                return v.set(&v.tenant_path(tenant), name, value).await;
            }
            Provider::Filesystem => {}
        }
        let path = self.tenant_path(tenant, name);
        let io = |source| SecretError::Io { name: name.to_owned(), path: path.display().to_string(), source };
        match value {
            Some(v) => {
                if let Some(dir) = path.parent() {
                    create_private_dir(dir).await.map_err(io)?;
                }
                write_private(&path, v.expose_secret().as_bytes()).await.map_err(io)
            }
            None => match tokio::fs::remove_file(&path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
                _ => Ok(()),
            },
        }
    }

    fn vault(&self) -> Result<&vault::Vault, SecretError> {
        self.vault.as_ref().ok_or(SecretError::VaultConfig("VAULT_ADDR and VAULT_TOKEN"))
    }

    fn env_value(&self, key: &str) -> Option<SecretString> {
        let key = match &self.env_prefix {
            Some(p) => format!("{p}_{key}"),
            None => key.to_owned(),
        };
        self.env.get(&key).filter(|v| !v.is_empty()).map(|v| SecretString::from(v.clone()))
    }

    fn tenant_path(&self, tenant: Uuid, name: &str) -> PathBuf {
        self.base.join("tenants").join(tenant.to_string()).join(name)
    }
}

/// Names are plain file names: no separators, no `.`/`..`, nothing empty.
fn check_name(name: &str) -> Result<(), SecretError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).file_name().is_some_and(|f| f == name);
    if ok { Ok(()) } else { Err(SecretError::InvalidName(name.to_owned())) }
}

async fn read_file(path: &Path, name: &str) -> Result<Option<SecretString>, SecretError> {
    match tokio::fs::read_to_string(path).await {
        Ok(s) => {
            let s = s.trim();
            Ok((!s.is_empty()).then(|| SecretString::from(s.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretError::Io { name: name.to_owned(), path: path.display().to_string(), source }),
    }
}

/// `dir` and its missing parents, each made mode 0700 (the ones that exist are left alone).
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = tokio::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(0o700);
    b.create(dir).await
}

/// Writes `bytes` to `path`, a file only its owner reads: mode 0600, also when it existed with
/// wider permissions.
async fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    use tokio::io::AsyncWriteExt;
    let mut f = opts.open(path).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if f.metadata().await?.permissions().mode() & 0o077 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(0o600)).await?;
        }
    }
    f.write_all(bytes).await?;
    f.flush().await
}

/// Constant-time comparison of a presented secret with the stored one. Both are hashed first
/// (SHA-256) and the digests compared, so neither the content nor the length of the stored secret
/// shows in the time taken.
pub fn ct_eq(presented: &str, stored: &SecretString) -> bool {
    let a: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let b: [u8; 32] = Sha256::digest(stored.expose_secret().as_bytes()).into();
    bool::from(a.ct_eq(&b))
}

/// [`ct_eq`] against the stored secret, or, when there is none, the same work against a
/// placeholder (and `false`): a caller that has no secret for a tenant answers in the same time as
/// one that has it.
pub fn ct_eq_or_none(presented: &str, stored: Option<&SecretString>) -> bool {
    static PLACEHOLDER: std::sync::LazyLock<SecretString> =
        std::sync::LazyLock::new(|| SecretString::from("no secret is stored for this name".to_owned()));
    match stored {
        Some(s) => ct_eq(presented, s),
        None => {
            let _ = std::hint::black_box(ct_eq(presented, &PLACEHOLDER));
            false
        }
    }
}

/// HMAC-SHA256 (RFC 2104) of `body` under `key`, lower-case hex: what a provider that signs its
/// webhooks (NinjaOne's `X-Ninja-Signature`) sends.
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(body).finalize();
    hex::encode(Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize())
}

/// Whether `presented` (hex, any case, surrounding blanks and a `sha256=` prefix ignored) is the
/// HMAC-SHA256 of `body` under the stored secret, compared in constant time. No stored secret:
/// the same work against a placeholder, and `false`.
pub fn hmac_matches(presented: &str, stored: Option<&SecretString>, body: &[u8]) -> bool {
    let presented = presented.trim();
    let presented = presented.strip_prefix("sha256=").unwrap_or(presented).to_ascii_lowercase();
    let key = stored.map(|s| s.expose_secret().as_bytes()).unwrap_or(b"no secret is stored for this name");
    let expected = hmac_sha256_hex(key, body);
    let a: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let b: [u8; 32] = Sha256::digest(expected.as_bytes()).into();
    stored.is_some() & bool::from(a.ct_eq(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hmac_sha256_hex(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        let secret = SecretString::from("s3cret".to_owned());
        let sig = hmac_sha256_hex(b"s3cret", b"{}");
        assert!(hmac_matches(&sig.to_uppercase(), Some(&secret), b"{}"));
        assert!(hmac_matches(&format!(" sha256={sig} "), Some(&secret), b"{}"));
        assert!(!hmac_matches(&sig, Some(&secret), b"{ }"));
        assert!(!hmac_matches(&sig, None, b"{}"));
    }

    fn store(vars: &[(&str, &str)]) -> SecretStore {
        SecretStore::from_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    #[tokio::test]
    async fn env_then_filesystem_as_algapsa_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = Uuid::new_v4();
        let base = dir.path().to_str().unwrap();
        let key = format!("TENANT_{tenant}_tacticalrmm_api_key");
        let s = store(&[("SECRET_FS_BASE_PATH", base), (key.as_str(), "from-env")]);
        assert_eq!(
            s.get_tenant_secret(tenant, "tacticalrmm_api_key").await.unwrap().unwrap().expose_secret(),
            "from-env"
        );

        // Written to the filesystem (legacy mode), read back trimmed.
        s.set_tenant_secret(tenant, "tacticalrmm_knox_token", Some(&SecretString::from("tok \n".to_owned())))
            .await
            .unwrap();
        assert_eq!(
            s.get_tenant_secret(tenant, "tacticalrmm_knox_token").await.unwrap().unwrap().expose_secret(),
            "tok"
        );
        s.set_tenant_secret(tenant, "tacticalrmm_knox_token", None).await.unwrap();
        assert!(s.get_tenant_secret(tenant, "tacticalrmm_knox_token").await.unwrap().is_none());

        // Composite mode: filesystem first, env never consulted.
        let on_disk = dir.path().join("tenants").join(tenant.to_string());
        std::fs::create_dir_all(&on_disk).unwrap();
        std::fs::write(on_disk.join("tacticalrmm_api_key"), "from-file").unwrap();
        let s =
            store(&[("SECRET_FS_BASE_PATH", base), ("SECRET_READ_CHAIN", "filesystem"), (key.as_str(), "from-env")]);
        assert_eq!(
            s.get_tenant_secret(tenant, "tacticalrmm_api_key").await.unwrap().unwrap().expose_secret(),
            "from-file"
        );

        // A prefix applies to env names.
        let prefixed = format!("ALGA_TENANT_{tenant}_x");
        let s = store(&[("SECRET_ENV_PREFIX", "ALGA"), ("SECRET_READ_CHAIN", "env"), (prefixed.as_str(), "p")]);
        assert_eq!(s.get_tenant_secret(tenant, "x").await.unwrap().unwrap().expose_secret(), "p");
        let s = store(&[("SECRET_ENV_PREFIX", "ALGA"), ("SECRET_READ_CHAIN", "env"), ("ALGA_redis_password", "r")]);
        assert_eq!(s.get_app_secret("redis_password").await.unwrap().unwrap().expose_secret(), "r");
    }

    #[test]
    fn the_filesystem_base_is_under_the_data_dir_unless_a_legacy_dir_holds_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("work");
        std::fs::create_dir_all(&cwd).unwrap();
        let no_run = dir.path().join("no-run-secrets");
        let resolve = |configured: Option<&str>| resolve_fs_base(configured, &cwd, &no_run);
        let data = cwd.join("data").join("secrets");
        assert_eq!(default_fs_base(&cwd), data);

        // Nothing there: ./data/secrets.
        assert_eq!(resolve(None), (data.clone(), FsBase::DataDir));
        // Empty legacy directories are ignored.
        std::fs::create_dir_all(cwd.join("secrets")).unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        assert_eq!(resolve(None), (data.clone(), FsBase::DataDir));
        // A non-empty ../secrets, then a non-empty ./secrets, are used.
        std::fs::create_dir_all(dir.path().join("secrets/tenants")).unwrap();
        assert_eq!(resolve(None), (dir.path().join("secrets"), FsBase::Legacy));
        std::fs::write(cwd.join("secrets/redis_password"), "x").unwrap();
        assert_eq!(resolve(None), (cwd.join("secrets"), FsBase::Legacy));
        // ./data/secrets, once it exists, wins over them.
        std::fs::create_dir_all(&data).unwrap();
        assert_eq!(resolve(None), (data.clone(), FsBase::DataDir));
        // /run/secrets wins over that, and SECRET_FS_BASE_PATH over everything (relative to cwd).
        assert_eq!(resolve_fs_base(None, &cwd, dir.path()), (dir.path().to_owned(), FsBase::RunSecrets));
        assert_eq!(resolve(Some("elsewhere")), (cwd.join("elsewhere"), FsBase::Configured));
        assert_eq!(resolve(Some("/abs/s")), (PathBuf::from("/abs/s"), FsBase::Configured));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn written_secrets_are_private_to_the_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("data").join("secrets");
        let s = store(&[("SECRET_FS_BASE_PATH", base.to_str().unwrap()), ("SECRET_READ_CHAIN", "filesystem")]);
        let tenant = Uuid::new_v4();
        let v = SecretString::from("v".to_owned());
        s.set_tenant_secret(tenant, "k", Some(&v)).await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tenant_dir = base.join("tenants").join(tenant.to_string());
        for d in [dir.path().join("data"), base.clone(), base.join("tenants"), tenant_dir.clone()] {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
        }
        assert_eq!(mode(&tenant_dir.join("k")), 0o600);
        // A file that was readable by others is made private when it is written.
        std::fs::set_permissions(tenant_dir.join("k"), std::fs::Permissions::from_mode(0o644)).unwrap();
        s.set_tenant_secret(tenant, "k", Some(&v)).await.unwrap();
        assert_eq!(mode(&tenant_dir.join("k")), 0o600);
        assert!(s.legacy_warning().is_none());
        assert!(s.location().contains(&base.display().to_string()), "{}", s.location());
    }

    #[tokio::test]
    async fn bad_names_and_providers_are_refused() {
        let s = store(&[("SECRET_READ_CHAIN", "env")]);
        for bad in ["../x", "a/b", "..", "", "a\\b"] {
            assert!(matches!(s.get_tenant_secret(Uuid::nil(), bad).await, Err(SecretError::InvalidName(_))), "{bad}");
        }
        let e = SecretStore::from_env([("SECRET_READ_CHAIN".to_string(), "env,bogus".to_string())]).unwrap_err();
        assert!(e.to_string().contains("bogus"));
        let s = store(&[("SECRET_WRITE_PROVIDER", "env")]);
        let v = SecretString::from("v".to_owned());
        assert!(matches!(s.set_tenant_secret(Uuid::nil(), "x", Some(&v)).await, Err(SecretError::ReadOnly("env"))));
    }

    #[test]
    fn values_stay_out_of_debug_and_compare_in_constant_time() {
        let key = format!("TENANT_{}_k", Uuid::nil());
        let s = store(&[(key.as_str(), "super-secret-value")]);
        assert!(!format!("{s:?}").contains("super-secret-value"));
        let stored = SecretString::from("abc".to_owned());
        assert!(ct_eq("abc", &stored));
        assert!(!ct_eq("abd", &stored));
        assert!(!ct_eq("ab", &stored));
        assert!(!ct_eq("", &stored));
        assert!(ct_eq_or_none("abc", Some(&stored)));
        assert!(!ct_eq_or_none("abc", None));
        assert!(!ct_eq_or_none("no secret is stored for this name", None));
    }
}
