//! The admin API called in-process. The CLI's `integration` commands and `demo` go through the very
//! handlers an HTTP client reaches (validation, secret handling, the same JSON answers), without a
//! listener and without an API key: the caller already has the database, which is more than any
//! key grants.

use std::sync::Arc;

use poem::http::{Method, StatusCode};
use poem::{Endpoint, EndpointExt, IntoResponse, Request};
use rand::RngCore;
use secrecy::SecretString;
use serde_json::Value;

use crate::AppState;

/// The application with a global read-write key that exists only in this process.
pub struct LocalAdmin {
    app: poem::endpoint::BoxEndpoint<'static>,
    key: String,
}

/// An answer of the admin API: its status and JSON body (`null` when it had none).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The body of a 2xx answer; otherwise an error with the API's own message.
    pub fn ok(self) -> anyhow::Result<Value> {
        if self.status.is_success() {
            return Ok(self.body);
        }
        let msg =
            self.body.get("error").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| self.body.to_string());
        anyhow::bail!("{} {msg}", self.status.as_u16())
    }
}

impl LocalAdmin {
    pub fn new(rt: rmm_jobs::Runtime) -> LocalAdmin {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let key = format!("local-{}", hex::encode(bytes));
        let state: Arc<AppState> = AppState::new(rt, Some(SecretString::from(key.clone())));
        LocalAdmin { app: crate::app(state).map_to_response().boxed(), key }
    }

    /// `method` on `/api/v1{path}` with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri_str(format!("/api/v1{path}"))
            .header("authorization", format!("Bearer {}", self.key));
        if body.is_some() {
            req = req.content_type("application/json");
        }
        let req = match body {
            Some(b) => req.body(b.to_string()),
            None => req.finish(),
        };
        let resp = match self.app.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let status = resp.status();
        let bytes = resp.into_body().into_bytes().await.unwrap_or_default();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer { status, body }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }
}
