//! The `vault` secret provider against a local HTTP server that speaks Vault's KV v2 read/write
//! API (token header, `data.data`, versions, check-and-set), in AlgaPSA's composite chain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json, Path};
use poem::{EndpointExt, Response, handler, http::StatusCode};
use rmm_shared::secrets::{SecretError, SecretStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TOKEN: &str = "hvs.test-root-token-0123456789";

/// path → (version, data)
type Docs = Arc<Mutex<HashMap<String, (u64, Value)>>>;

fn vault_error(code: u16, msg: &str) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .content_type("application/json")
        .body(json!({"errors": [msg]}).to_string())
}

fn authorised(req: &poem::Request) -> bool {
    req.headers().get("x-vault-token").and_then(|v| v.to_str().ok()) == Some(TOKEN)
}

#[handler]
fn read(req: &poem::Request, Path(path): Path<String>, docs: Data<&Docs>) -> Response {
    if !authorised(req) {
        return vault_error(403, "permission denied");
    }
    match docs.0.lock().unwrap().get(&path) {
        Some((version, data)) => Response::builder()
            .content_type("application/json")
            .body(json!({"data": {"data": data, "metadata": {"version": version, "destroyed": false}}}).to_string()),
        None => vault_error(404, ""),
    }
}

#[handler]
fn write(req: &poem::Request, Path(path): Path<String>, Json(body): Json<Value>, docs: Data<&Docs>) -> Response {
    if !authorised(req) {
        return vault_error(403, "permission denied");
    }
    let mut docs = docs.0.lock().unwrap();
    let current = docs.get(&path).map(|(v, _)| *v).unwrap_or(0);
    if let Some(cas) = body["options"]["cas"].as_u64()
        && cas != current
    {
        return vault_error(400, "check-and-set parameter did not match the current version");
    }
    let Some(data) = body.get("data").filter(|d| d.is_object()).cloned() else {
        return vault_error(400, "no data provided");
    };
    docs.insert(path, (current + 1, data));
    Response::builder().content_type("application/json").body(json!({"data": {"version": current + 1}}).to_string())
}

struct KvServer {
    addr: String,
    docs: Docs,
    _stop: tokio_util::sync::DropGuard,
}

async fn kv_server() -> KvServer {
    let docs: Docs = Default::default();
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let app = poem::Route::new().at("/v1/*path", poem::get(read).post(write).put(write)).data(docs.clone());
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, async move { s.cancelled().await }, None)
            .await
    });
    KvServer { addr: format!("http://{addr}"), docs, _stop: stop.drop_guard() }
}

fn store(vars: &[(&str, &str)]) -> Result<SecretStore, SecretError> {
    SecretStore::from_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn secret(v: &str) -> SecretString {
    SecretString::from(v.to_owned())
}

#[tokio::test]
async fn tenant_secrets_are_keys_of_one_kv_v2_document_per_tenant() {
    let kv = kv_server().await;
    let tenant = Uuid::new_v4();
    let s = store(&[
        ("SECRET_READ_CHAIN", "env,vault"),
        ("SECRET_WRITE_PROVIDER", "vault"),
        ("VAULT_ADDR", &kv.addr),
        ("VAULT_TOKEN", TOKEN),
    ])
    .unwrap();
    assert!(s.get_tenant_secret(tenant, "tacticalrmm_api_key").await.unwrap().is_none());
    s.set_tenant_secret(tenant, "tacticalrmm_api_key", Some(&secret("KEY-1"))).await.unwrap();
    s.set_tenant_secret(tenant, "tacticalrmm_webhook_secret", Some(&secret("HOOK"))).await.unwrap();
    s.set_tenant_secret(tenant, "tacticalrmm_api_key", Some(&secret("KEY-2"))).await.unwrap();

    // One document at the default template path, every secret a key, the last write wins.
    let path = format!("kv/data/tenants/{tenant}/secrets");
    let (version, doc) = kv.docs.lock().unwrap().get(&path).cloned().expect("document at the template path");
    assert_eq!(doc, json!({"tacticalrmm_api_key": "KEY-2", "tacticalrmm_webhook_secret": "HOOK"}));
    assert_eq!(version, 3);
    let got = s.get_tenant_secret(tenant, "tacticalrmm_api_key").await.unwrap().unwrap();
    assert_eq!(got.expose_secret(), "KEY-2");

    // Deleting one key keeps the others.
    s.set_tenant_secret(tenant, "tacticalrmm_api_key", None).await.unwrap();
    assert!(s.get_tenant_secret(tenant, "tacticalrmm_api_key").await.unwrap().is_none());
    assert_eq!(
        s.get_tenant_secret(tenant, "tacticalrmm_webhook_secret").await.unwrap().unwrap().expose_secret(),
        "HOOK"
    );

    // The read chain is ordered: the env provider wins over Vault.
    let key = format!("TENANT_{tenant}_tacticalrmm_webhook_secret");
    let s2 = store(&[
        ("SECRET_READ_CHAIN", "env,vault"),
        ("VAULT_ADDR", &kv.addr),
        ("VAULT_TOKEN", TOKEN),
        (&key, "FROM-ENV"),
    ])
    .unwrap();
    assert_eq!(
        s2.get_tenant_secret(tenant, "tacticalrmm_webhook_secret").await.unwrap().unwrap().expose_secret(),
        "FROM-ENV"
    );
}

#[tokio::test]
async fn concurrent_writes_of_two_keys_both_survive() {
    let kv = kv_server().await;
    let tenant = Uuid::new_v4();
    let template = "secret/data/msp/{tenantId}";
    let s = store(&[
        ("SECRET_READ_CHAIN", "vault"),
        ("SECRET_WRITE_PROVIDER", "vault"),
        ("VAULT_ADDR", &format!("{}/", kv.addr)),
        ("VAULT_TOKEN", TOKEN),
        ("VAULT_TENANT_SECRET_PATH_TEMPLATE", template),
    ])
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let s = s.clone();
        tasks
            .spawn(async move { s.set_tenant_secret(tenant, &format!("k{i}"), Some(&secret(&format!("v{i}")))).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let doc = kv.docs.lock().unwrap().get(&format!("secret/data/msp/{tenant}")).cloned().unwrap().1;
    assert_eq!(doc.as_object().unwrap().len(), 8, "{doc}");
}

#[tokio::test]
async fn configuration_and_access_errors_are_clear_and_never_show_the_token() {
    // Vault named without its settings.
    let e = store(&[("SECRET_READ_CHAIN", "vault")]).unwrap_err();
    assert!(e.to_string().contains("VAULT_ADDR"), "{e}");
    let e = store(&[("SECRET_READ_CHAIN", "vault"), ("VAULT_ADDR", "http://127.0.0.1:1")]).unwrap_err();
    assert!(e.to_string().contains("VAULT_TOKEN"), "{e}");
    let e = store(&[
        ("SECRET_READ_CHAIN", "vault"),
        ("VAULT_ADDR", "http://127.0.0.1:1"),
        ("VAULT_TOKEN", TOKEN),
        ("VAULT_TENANT_SECRET_PATH_TEMPLATE", "kv/data/tenants/secrets"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("{tenantId}"), "{e}");

    // A refused token and an unreachable Vault are errors (not "no secret"), without the token.
    let kv = kv_server().await;
    let wrong = "hvs.wrong-token-9876543210";
    let s = store(&[("SECRET_READ_CHAIN", "vault"), ("VAULT_ADDR", &kv.addr), ("VAULT_TOKEN", wrong)]).unwrap();
    let e = s.get_tenant_secret(Uuid::new_v4(), "tacticalrmm_api_key").await.unwrap_err();
    assert!(e.to_string().contains("403") && e.to_string().contains("permission denied"), "{e}");
    assert!(!e.to_string().contains(wrong) && !format!("{e:?}").contains(wrong));
    let s =
        store(&[("SECRET_READ_CHAIN", "vault"), ("VAULT_ADDR", "http://127.0.0.1:1"), ("VAULT_TOKEN", TOKEN)]).unwrap();
    let e = s.get_app_secret("redis_password").await.unwrap_err();
    assert!(e.to_string().contains("cannot reach Vault"), "{e}");
    assert!(!format!("{e:?}").contains(TOKEN));
    assert!(!format!("{s:?}").contains(TOKEN));
}
