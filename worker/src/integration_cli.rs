//! `rmm-sync integration set|test|show`: a tenant's RMM integration from the host that runs the
//! service, through the integrations service the admin API uses (same validation, same answers as
//! `PUT|GET /api/v1/tenants/{tenant}/integrations/{provider}` and `POST …/test`; a refusal is
//! printed with the status the API answers it with).

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand};
use rmm_jobs::Runtime;
use rmm_shared::integrations::{self as svc, IntegrationError, IntegrationInput};
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// Save settings and credentials of a tenant's integration (merged with what is saved; a new
    /// or changed connection stays inactive until `integration test` succeeds). Prints the
    /// integration with its secrets masked.
    ///
    /// Tactical RMM: `rmm-sync integration set tacticalrmm --tenant <uuid>
    /// --instance-url https://api.example.com --api-key -` (the key is read from standard input).
    /// Tanium: `rmm-sync integration set tanium --tenant <uuid>
    /// --instance-url https://example-api.cloud.tanium.com --api-token -`.
    /// Level: `rmm-sync integration set levelio --tenant <uuid> --api-key -` (the API URL is
    /// `https://api.level.io` unless `--instance-url` says otherwise).
    Set(Box<SetArgs>),
    /// Test the connection (Tactical: the client list; Tanium: the Gateway probe; Level: one
    /// group). Success marks
    /// the integration active; a failure prints the reason and exits 1.
    Test {
        /// tacticalrmm, tanium, ninjaone or levelio.
        provider: String,
        /// The tenant whose integration is tested.
        #[arg(long)]
        tenant: Uuid,
        /// Tactical with Knox auth for a user with TOTP: the current code from the authenticator.
        #[arg(long)]
        totp_code: Option<String>,
    },
    /// Print the integration as JSON: connection state, settings (secrets masked), last sync and
    /// counts (mapped organisations, synced devices by agent status, open alerts).
    Show {
        /// tacticalrmm, tanium, ninjaone or levelio.
        provider: String,
        /// The tenant whose integration is shown.
        #[arg(long)]
        tenant: Uuid,
        /// Tactical: also print the alert-action webhook to paste into Tactical; Level: the HTTP
        /// POST step to add to a Level automation (URL, headers with the webhook secret, trigger
        /// and resolve bodies); makes the secret on first use.
        #[arg(long)]
        webhook: bool,
        /// Also print the organisation mappings (remote client or group → AlgaPSA client).
        #[arg(long)]
        mappings: bool,
    },
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// tacticalrmm, tanium, ninjaone or levelio.
    provider: String,
    /// The tenant (it must exist: in standalone mode create it with `PUT /api/v1/tenants/{tenant}`).
    #[arg(long)]
    tenant: Uuid,
    /// Tactical: the API host (`https://api.example.com`, not the dashboard host). Tanium: the
    /// Gateway URL (`https://<host>/plugin/products/gateway`; a bare host gets that path). Level:
    /// the API URL, only when it is not `https://api.level.io`.
    #[arg(long)]
    instance_url: Option<String>,
    /// Tactical: `api_key` (default) or `knox` (user name and password). NinjaOne:
    /// `authorization_code` (default) or `client_credentials` (an API-service app).
    #[arg(long, value_parser = ["api_key", "knox", "authorization_code", "client_credentials"])]
    auth_mode: Option<String>,
    /// Tactical or Level: the API key. `-` reads it from standard input, which keeps it out of the process
    /// list and the shell history.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Tactical with Knox auth: the user name.
    #[arg(long)]
    username: Option<String>,
    /// Tactical with Knox auth: the password (`-`: from standard input).
    #[arg(long)]
    password: Option<String>,
    /// Tanium: the API Gateway token, `token-…` (`-`: from standard input).
    #[arg(long, value_name = "TOKEN")]
    api_token: Option<String>,
    /// Tanium: the Asset API base URL for the fallback (`""` removes it).
    #[arg(long)]
    asset_api_url: Option<String>,
    /// Tanium: refresh the assets of an empty computer group from the Asset API.
    #[arg(long, value_name = "true|false")]
    use_asset_api_fallback: Option<bool>,
    /// NinjaOne: the OAuth app's client id.
    #[arg(long)]
    client_id: Option<String>,
    /// NinjaOne: the OAuth app's client secret (`-`: from standard input).
    #[arg(long, value_name = "SECRET")]
    client_secret: Option<String>,
    /// NinjaOne: the region, `US`, `US2`, `EU`, `OC` or `CA`.
    #[arg(long)]
    region: Option<String>,
    /// A JSON object merged key by key into the integration's settings (`null` removes a key),
    /// e.g. `'{"alert_mode":"record"}'`.
    #[arg(long, value_name = "JSON")]
    settings: Option<String>,
}

/// A refusal of the service as the admin API answers it: `<status> <message>`.
pub fn service_error(e: IntegrationError) -> anyhow::Error {
    match &e {
        IntegrationError::Db(db) => tracing::error!(error = %db, "database error"),
        IntegrationError::SecretStore(s) => tracing::error!(error = %s, "secret store error"),
        _ => {}
    }
    anyhow::anyhow!("{} {}", e.http_status(), e.public_message())
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// What `integration set` saves; a `-` value is read from `stdin` (one at most).
fn set_input(a: &SetArgs, stdin: &mut dyn BufRead) -> anyhow::Result<IntegrationInput> {
    let from_stdin =
        [&a.api_key, &a.password, &a.api_token, &a.client_secret].iter().filter(|v| v.as_deref() == Some("-")).count();
    if from_stdin > 1 {
        anyhow::bail!(
            "only one of --api-key, --password, --api-token and --client-secret can be read from standard input (-)"
        );
    }
    let mut secret = |v: &Option<String>| -> anyhow::Result<Option<SecretString>> {
        match v.as_deref() {
            Some("-") => {
                let mut line = String::new();
                stdin.read_line(&mut line)?;
                let line = line.trim().to_owned();
                if line.is_empty() {
                    anyhow::bail!("nothing was read from standard input");
                }
                Ok(Some(SecretString::from(line)))
            }
            other => Ok(other.map(|v| SecretString::from(v.to_owned()))),
        }
    };
    let settings = match &a.settings {
        Some(s) => {
            let v: Value = serde_json::from_str(s).map_err(|e| anyhow::anyhow!("--settings is not JSON: {e}"))?;
            if !v.is_object() {
                anyhow::bail!("--settings must be a JSON object");
            }
            Some(v)
        }
        None => None,
    };
    let input = IntegrationInput {
        instance_url: a.instance_url.clone(),
        auth_mode: a.auth_mode.clone(),
        api_key: secret(&a.api_key)?,
        username: a.username.clone(),
        password: secret(&a.password)?,
        settings,
        api_token: secret(&a.api_token)?,
        asset_api_url: a.asset_api_url.clone(),
        use_asset_api_fallback: a.use_asset_api_fallback,
        client_id: a.client_id.clone(),
        client_secret: secret(&a.client_secret)?,
        region: a.region.clone(),
    };
    let nothing = input.instance_url.is_none()
        && input.auth_mode.is_none()
        && input.api_key.is_none()
        && input.username.is_none()
        && input.password.is_none()
        && input.settings.is_none()
        && input.api_token.is_none()
        && input.asset_api_url.is_none()
        && input.use_asset_api_fallback.is_none()
        && input.client_id.is_none()
        && input.client_secret.is_none()
        && input.region.is_none();
    if nothing {
        anyhow::bail!("nothing to set: give --instance-url, credentials or --settings (see --help)");
    }
    Ok(input)
}

pub async fn run(rt: Runtime, cmd: IntegrationCommand) -> anyhow::Result<()> {
    let (db, secrets) = (&rt.db, &rt.secrets);
    match cmd {
        IntegrationCommand::Set(a) => {
            let stdin = std::io::stdin();
            if [&a.api_key, &a.password, &a.api_token, &a.client_secret].iter().any(|v| v.as_deref() == Some("-"))
                && stdin.is_terminal()
            {
                eprintln!("secret (one line): ");
            }
            let input = set_input(&a, &mut stdin.lock())?;
            let provider = svc::provider(&a.provider).map_err(service_error)?;
            let view = svc::save(db, secrets, a.tenant, provider, &input).await.map_err(service_error)?;
            print(&serde_json::to_value(view)?);
        }
        IntegrationCommand::Test { provider, tenant, totp_code } => {
            let p = svc::provider(&provider).map_err(service_error)?;
            let outcome =
                svc::test(&rt.integrations(), tenant, p, totp_code.as_deref()).await.map_err(service_error)?;
            let answer = outcome.to_json();
            print(&answer);
            if !outcome.success() {
                let why = answer.get("error").and_then(Value::as_str).unwrap_or("the connection test failed");
                anyhow::bail!("{provider} connection test failed: {why}");
            }
        }
        IntegrationCommand::Show { provider, tenant, webhook, mappings } => {
            let p = svc::provider(&provider).map_err(service_error)?;
            let mut view = serde_json::to_value(svc::view(db, secrets, tenant, p).await.map_err(service_error)?)?;
            if webhook {
                view["webhook"] = match svc::webhook_setup(secrets, tenant, p, &rt.settings.http).await {
                    Err(IntegrationError::NoWebhook(_)) => {
                        anyhow::bail!("--webhook: {provider} sends no webhooks to rmm-sync")
                    }
                    setup => setup.map_err(service_error)?,
                };
            }
            if mappings {
                view["mappings"] = serde_json::to_value(svc::mappings(db, tenant, p).await.map_err(service_error)?)?;
            }
            print(&view);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        c: IntegrationCommand,
    }

    fn args(line: &str) -> SetArgs {
        match T::try_parse_from(line.split_whitespace()).unwrap().c {
            IntegrationCommand::Set(a) => *a,
            _ => unreachable!(),
        }
    }

    const TENANT: &str = "5b3c9a4e-2f61-4d8a-9c1e-0b7f6a5d4c3b";

    #[test]
    fn set_reads_one_secret_from_stdin_and_passes_only_what_was_given() {
        use secrecy::ExposeSecret;
        let a = args(&format!("x set tacticalrmm --tenant {TENANT} --instance-url https://api.x.test --api-key -"));
        let input = set_input(&a, &mut "  abc123  \n".as_bytes()).unwrap();
        assert_eq!(input.instance_url.as_deref(), Some("https://api.x.test"));
        assert_eq!(input.api_key.as_ref().map(|k| k.expose_secret()), Some("abc123"));
        assert!(input.password.is_none() && input.api_token.is_none() && input.settings.is_none());

        let a = args(&format!("x set tanium --tenant {TENANT} --api-token token-1 --use-asset-api-fallback true"));
        let input = set_input(&a, &mut "".as_bytes()).unwrap();
        assert_eq!(input.api_token.as_ref().map(|k| k.expose_secret()), Some("token-1"));
        assert_eq!(input.use_asset_api_fallback, Some(true));
        assert!(input.instance_url.is_none() && input.api_key.is_none() && input.asset_api_url.is_none());
    }

    #[test]
    fn set_refuses_two_stdin_secrets_empty_input_bad_settings_and_nothing() {
        let err = |line: String, stdin: &str| set_input(&args(&line), &mut stdin.as_bytes()).err().unwrap().to_string();
        assert!(
            err(format!("x set tacticalrmm --tenant {TENANT} --api-key - --password -"), "k\n").contains("only one")
        );
        assert!(err(format!("x set tacticalrmm --tenant {TENANT} --api-key -"), "\n").contains("nothing was read"));
        assert!(err(format!("x set tacticalrmm --tenant {TENANT} --settings [1]"), "").contains("JSON object"));
        assert!(err(format!("x set tacticalrmm --tenant {TENANT}"), "").contains("nothing to set"));
        assert!(T::try_parse_from(["x", "set", "tacticalrmm", "--tenant", TENANT, "--auth-mode", "basic"]).is_err());
    }
}
