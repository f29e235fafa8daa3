//! `rmm-sync integration set|test|show`: a tenant's RMM integration from the host that runs the
//! service, through the admin API's own handlers (same validation, same answers as
//! `PUT|GET /api/v1/tenants/{tenant}/integrations/{provider}` and `POST …/test`).

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand};
use rmm_ingress::local::LocalAdmin;
use serde_json::{Map, Value, json};
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
    Set(SetArgs),
    /// Test the connection (Tactical: the client list; Tanium: the Gateway probe). Success marks
    /// the integration active; a failure prints the reason and exits 1.
    Test {
        /// tacticalrmm or tanium.
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
        /// tacticalrmm or tanium.
        provider: String,
        /// The tenant whose integration is shown.
        #[arg(long)]
        tenant: Uuid,
        /// Tactical: also print the alert-action webhook to paste into Tactical (URL, headers
        /// with the webhook secret, trigger and resolve bodies); makes the secret on first use.
        #[arg(long)]
        webhook: bool,
        /// Also print the organisation mappings (remote client or group → AlgaPSA client).
        #[arg(long)]
        mappings: bool,
    },
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// tacticalrmm or tanium.
    provider: String,
    /// The tenant (it must exist: in standalone mode create it with `PUT /api/v1/tenants/{tenant}`).
    #[arg(long)]
    tenant: Uuid,
    /// Tactical: the API host (`https://api.example.com`, not the dashboard host). Tanium: the
    /// Gateway URL (`https://<host>/plugin/products/gateway`; a bare host gets that path).
    #[arg(long)]
    instance_url: Option<String>,
    /// Tactical: `api_key` (default) or `knox` (user name and password).
    #[arg(long, value_parser = ["api_key", "knox"])]
    auth_mode: Option<String>,
    /// Tactical: the API key. `-` reads it from standard input, which keeps it out of the process
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
    /// A JSON object merged key by key into the integration's settings (`null` removes a key),
    /// e.g. `'{"alert_mode":"record"}'`.
    #[arg(long, value_name = "JSON")]
    settings: Option<String>,
}

fn path(tenant: Uuid, provider: &str) -> String {
    format!("/tenants/{tenant}/integrations/{provider}")
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// The request body of `integration set`; a `-` value is read from `stdin` (one at most).
fn set_body(a: &SetArgs, stdin: &mut dyn BufRead) -> anyhow::Result<Value> {
    let from_stdin = [&a.api_key, &a.password, &a.api_token].iter().filter(|v| v.as_deref() == Some("-")).count();
    if from_stdin > 1 {
        anyhow::bail!("only one of --api-key, --password and --api-token can be read from standard input (-)");
    }
    let mut secret = |v: &Option<String>| -> anyhow::Result<Option<String>> {
        match v.as_deref() {
            Some("-") => {
                let mut line = String::new();
                stdin.read_line(&mut line)?;
                let line = line.trim().to_owned();
                if line.is_empty() {
                    anyhow::bail!("nothing was read from standard input");
                }
                Ok(Some(line))
            }
            other => Ok(other.map(str::to_owned)),
        }
    };
    let mut body = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(k.to_owned(), v);
        }
    };
    put("instance_url", a.instance_url.clone().map(Value::from));
    put("auth_mode", a.auth_mode.clone().map(Value::from));
    put("api_key", secret(&a.api_key)?.map(Value::from));
    put("username", a.username.clone().map(Value::from));
    put("password", secret(&a.password)?.map(Value::from));
    put("api_token", secret(&a.api_token)?.map(Value::from));
    put("asset_api_url", a.asset_api_url.clone().map(Value::from));
    put("use_asset_api_fallback", a.use_asset_api_fallback.map(Value::from));
    if let Some(s) = &a.settings {
        let v: Value = serde_json::from_str(s).map_err(|e| anyhow::anyhow!("--settings is not JSON: {e}"))?;
        if !v.is_object() {
            anyhow::bail!("--settings must be a JSON object");
        }
        put("settings", Some(v));
    }
    if body.is_empty() {
        anyhow::bail!("nothing to set: give --instance-url, credentials or --settings (see --help)");
    }
    Ok(Value::Object(body))
}

pub async fn run(rt: rmm_jobs::Runtime, cmd: IntegrationCommand) -> anyhow::Result<()> {
    let admin = LocalAdmin::new(rt);
    match cmd {
        IntegrationCommand::Set(a) => {
            let stdin = std::io::stdin();
            if [&a.api_key, &a.password, &a.api_token].iter().any(|v| v.as_deref() == Some("-")) && stdin.is_terminal()
            {
                eprintln!("secret (one line): ");
            }
            let body = set_body(&a, &mut stdin.lock())?;
            print(&admin.put(&path(a.tenant, &a.provider), &body).await.ok()?);
        }
        IntegrationCommand::Test { provider, tenant, totp_code } => {
            let answer = admin
                .post(&format!("{}/test", path(tenant, &provider)), &json!({ "totp_code": totp_code }))
                .await
                .ok()?;
            print(&answer);
            if answer.get("success") != Some(&Value::Bool(true)) {
                let why = answer.get("error").and_then(Value::as_str).unwrap_or("the connection test failed");
                anyhow::bail!("{provider} connection test failed: {why}");
            }
        }
        IntegrationCommand::Show { provider, tenant, webhook, mappings } => {
            let mut view = admin.get(&path(tenant, &provider)).await.ok()?;
            if webhook {
                if provider != "tacticalrmm" {
                    anyhow::bail!("--webhook: only Tactical RMM integrations take webhooks");
                }
                view["webhook"] = admin.get(&format!("{}/webhook", path(tenant, &provider))).await.ok()?;
            }
            if mappings {
                let m = admin.get(&format!("{}/mappings", path(tenant, &provider))).await.ok()?;
                view["mappings"] = m.get("mappings").cloned().unwrap_or(Value::Null);
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
            IntegrationCommand::Set(a) => a,
            _ => unreachable!(),
        }
    }

    const TENANT: &str = "5b3c9a4e-2f61-4d8a-9c1e-0b7f6a5d4c3b";

    #[test]
    fn set_reads_one_secret_from_stdin_and_passes_only_what_was_given() {
        let a = args(&format!("x set tacticalrmm --tenant {TENANT} --instance-url https://api.x.test --api-key -"));
        let body = set_body(&a, &mut "  abc123  \n".as_bytes()).unwrap();
        assert_eq!(body, json!({ "instance_url": "https://api.x.test", "api_key": "abc123" }));

        let a = args(&format!("x set tanium --tenant {TENANT} --api-token token-1 --use-asset-api-fallback true"));
        let body = set_body(&a, &mut "".as_bytes()).unwrap();
        assert_eq!(body, json!({ "api_token": "token-1", "use_asset_api_fallback": true }));
    }

    #[test]
    fn set_refuses_two_stdin_secrets_empty_input_bad_settings_and_nothing() {
        let a = args(&format!("x set tacticalrmm --tenant {TENANT} --api-key - --password -"));
        assert!(set_body(&a, &mut "k\n".as_bytes()).unwrap_err().to_string().contains("only one"));
        let a = args(&format!("x set tacticalrmm --tenant {TENANT} --api-key -"));
        assert!(set_body(&a, &mut "\n".as_bytes()).unwrap_err().to_string().contains("nothing was read"));
        let a = args(&format!("x set tacticalrmm --tenant {TENANT} --settings [1]"));
        assert!(set_body(&a, &mut "".as_bytes()).unwrap_err().to_string().contains("JSON object"));
        let a = args(&format!("x set tacticalrmm --tenant {TENANT}"));
        assert!(set_body(&a, &mut "".as_bytes()).unwrap_err().to_string().contains("nothing to set"));
        assert!(T::try_parse_from(["x", "set", "tacticalrmm", "--tenant", TENANT, "--auth-mode", "basic"]).is_err());
    }
}
