//! Every error answer is the API's `{"error": "..."}`: a walk over every operation of the OpenAPI
//! document the server serves (so a route is covered as soon as it exists) with malformed path
//! parameters, malformed query values, malformed bodies, wrong and missing content types, no key
//! and wrong methods; plus unknown routes and the routes outside the OpenAPI service.

use reqwest::Method;
use reqwest::header::{ALLOW, CONTENT_TYPE, HeaderMap};
use rmm_ingress::auth::{KeyScope, create_key};
use rmm_jobs::{JobRequest, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_tests::runtime::{Ingress, fast_settings, runtime, tactical_tenant};
use rmm_tests::stores;
use serde_json::{Value, json};
use uuid::Uuid;

const BOOTSTRAP: &str = "bootstrap-key-for-api-errors";

/// The methods an OpenAPI path item can have, in the order an `Allow` header lists them.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

/// Sends the request and checks the answer is a 4xx with a JSON `{"error": "<text>"}` body.
async fn send(req: reqwest::RequestBuilder, what: &str) -> Answer {
    let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    assert!((400..500).contains(&status), "{what}: answered {status}: {text}");
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(ct.starts_with("application/json"), "{what}: {status} with Content-Type {ct:?}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    let error = body["error"].as_str().unwrap_or_else(|| panic!("{what}: no \"error\" string: {body}"));
    assert!(!error.is_empty(), "{what}: an empty error");
    assert!(!error.contains("param0") && !error.contains("param1"), "{what}: poem's parameter name: {error}");
    Answer { status, headers, body }
}

fn error(a: &Answer) -> &str {
    a.body["error"].as_str().unwrap_or_default()
}

/// A parameter's schema type and format.
fn kind(param: &Value) -> (&str, &str) {
    let s = &param["schema"];
    (s["type"].as_str().unwrap_or(""), s["format"].as_str().unwrap_or(""))
}

/// A value that does not parse as the parameter's type, if there is one (every string parses).
fn malformed(param: &Value) -> Option<&'static str> {
    match kind(param) {
        ("string", "uuid") => Some("not-a-uuid"),
        ("string", "date-time") => Some("yesterday"),
        ("integer", _) | ("number", _) => Some("twelve"),
        ("boolean", _) => Some("maybe"),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_malformed_input_with_a_json_error() {
    stores::each_store(|store| async move {
        let label = store.dialect().name();
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(&store.db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
        let ing = Ingress::start(&rt, Some(BOOTSTRAP)).await;
        let db = &store.db;
        let (tenant, integration) = tactical_tenant(db, &rt, None).await;
        let tenant_key = create_key(db, Some(tenant), KeyScope::Write, "api errors").await.unwrap().key;
        let job = JobRequest::for_integration("sync-org", tenant, "tacticalrmm", integration, Trigger::Admin);
        let job_id = rt.queue.enqueue(job).await.unwrap();

        let spec: Value = ing.http.get(ing.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
        let schemes = spec["components"]["securitySchemes"].clone();
        // A value every path parameter parses as (the route may still answer 4xx for it).
        let good = |p: &Value| -> String {
            match (p["name"].as_str().unwrap(), kind(p)) {
                ("tenant", _) => tenant.to_string(),
                ("provider", _) => "tacticalrmm".into(),
                ("kind", _) => "sync-org".into(),
                ("job_id", _) => job_id.clone(),
                (_, ("string", "uuid")) => Uuid::new_v4().to_string(),
                (_, ("integer", _)) | (_, ("number", _)) => "1".into(),
                (_, ("boolean", _)) => "true".into(),
                _ => "x".into(),
            }
        };
        let mut operations = 0;
        let (mut path_checks, mut query_checks, mut body_checks) = (0, 0, 0);
        for (path, item) in spec["paths"].as_object().unwrap() {
            let declared: Vec<&str> = METHODS.iter().copied().filter(|m| item.get(*m).is_some()).collect();
            for &method in &declared {
                let op = &item[method];
                operations += 1;
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let params: Vec<Value> = op["parameters"].as_array().cloned().unwrap_or_default();
                let in_path: Vec<&Value> = params.iter().filter(|p| p["in"] == "path").collect();
                let in_query: Vec<&Value> = params.iter().filter(|p| p["in"] == "query").collect();
                let url_with = |bad: Option<(&str, &str)>| -> String {
                    let mut url = format!("/api/v1{path}");
                    for p in &in_path {
                        let name = p["name"].as_str().unwrap();
                        let v = match bad {
                            Some((n, v)) if n == name => v.to_owned(),
                            _ => good(p),
                        };
                        url = url.replace(&format!("{{{name}}}"), &v);
                    }
                    ing.url(&url)
                };
                // The key the operation asks for: the bootstrap key as a bearer, or a tenant key
                // in the header an API-key scheme names.
                let security = op["security"].as_array().cloned().unwrap_or_default();
                let scheme = security.first().and_then(|s| s.as_object()?.keys().next().cloned());
                let authed = |req: reqwest::RequestBuilder| match scheme.as_deref().map(|s| &schemes[s]) {
                    Some(s) if s["type"] == "apiKey" => req.header(s["name"].as_str().unwrap(), &tenant_key),
                    Some(_) => req.bearer_auth(BOOTSTRAP),
                    None => req,
                };
                let has_body = op.get("requestBody").is_some();
                let with_body = |req: reqwest::RequestBuilder| if has_body { req.json(&json!({})) } else { req };
                let what = |how: &str| format!("{label}: {method} {path} with {how}");

                // Malformed path parameters: 400 naming the parameter as documented.
                for p in &in_path {
                    let name = p["name"].as_str().unwrap();
                    let Some(bad) = malformed(p) else { continue };
                    let req = with_body(authed(ing.http.request(m.clone(), url_with(Some((name, bad))))));
                    let a = send(req, &what(&format!("{name}={bad}"))).await;
                    assert_eq!(a.status, 400, "{}: {}", what(name), a.body);
                    assert!(
                        error(&a).contains(&format!("path parameter {name}")) && error(&a).contains(bad),
                        "{}: {}",
                        what(name),
                        a.body
                    );
                    path_checks += 1;
                }
                // Malformed query values: 400 naming the parameter.
                for p in &in_query {
                    let name = p["name"].as_str().unwrap();
                    let Some(bad) = malformed(p) else { continue };
                    let req = ing.http.request(m.clone(), format!("{}?{name}={bad}", url_with(None)));
                    let a = send(with_body(authed(req)), &what(&format!("?{name}={bad}"))).await;
                    assert_eq!(a.status, 400, "{}: {}", what(name), a.body);
                    assert!(error(&a).contains(&format!("query parameter {name}")), "{}: {}", what(name), a.body);
                    query_checks += 1;
                }
                // Bodies: not JSON, JSON of another shape (400), another content type or none (415).
                if has_body {
                    for (ct, body, status) in [
                        (Some("application/json"), "{not json", 400),
                        (Some("application/json"), "[1, 2, 3]", 400),
                        (Some("text/plain"), "{}", 415),
                        (None, "{}", 415),
                    ] {
                        let mut req = authed(ing.http.request(m.clone(), url_with(None))).body(body);
                        if let Some(ct) = ct {
                            req = req.header(CONTENT_TYPE, ct);
                        }
                        let a = send(req, &what(&format!("body {body:?} as {ct:?}"))).await;
                        assert_eq!(a.status, status, "{}: {}", what(body), a.body);
                        body_checks += 1;
                    }
                }
                // No key: 401.
                if scheme.is_some() {
                    let a = send(with_body(ing.http.request(m.clone(), url_with(None))), &what("no key")).await;
                    assert_eq!(a.status, 401, "{}: {}", what("no key"), a.body);
                    assert!(error(&a).contains("API key"), "{}", a.body);
                }
            }
            // A method the path does not take: 405 with what it takes.
            if let Some(other) = METHODS.iter().find(|m| !declared.contains(m)) {
                let m = Method::from_bytes(other.to_uppercase().as_bytes()).unwrap();
                let url = ing.url(&format!("/api/v1{path}").replace('{', "").replace('}', ""));
                let a =
                    send(ing.http.request(m, url).bearer_auth(BOOTSTRAP), &format!("{label}: {other} {path}")).await;
                assert_eq!(a.status, 405, "{other} {path}: {}", a.body);
                let mut allowed: Vec<String> = declared.iter().map(|m| m.to_uppercase()).collect();
                if declared.contains(&"get") {
                    allowed.insert(1, "HEAD".into());
                }
                let order = |m: &String| ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].iter().position(|o| o == m);
                allowed.sort_by_key(order);
                assert_eq!(a.headers[ALLOW].to_str().unwrap(), allowed.join(", "), "{other} {path}");
            }
        }
        assert!(operations >= 17, "{label}: only {operations} operations in the OpenAPI document");
        assert!(path_checks >= 15, "{label}: only {path_checks} malformed path parameters sent");
        assert!(query_checks >= 2 && body_checks >= 4 * 8, "{label}: {query_checks} query, {body_checks} body checks");

        // The example of the issue, word for word.
        let a = send(
            ing.http.put(ing.url("/api/v1/tenants/not-a-uuid")).bearer_auth(BOOTSTRAP).json(&json!({"name": "x"})),
            "PUT /tenants/not-a-uuid",
        )
        .await;
        assert_eq!(
            (a.status, a.body),
            (400, json!({"error": "invalid path parameter tenant: expected a UUID, got \"not-a-uuid\""}))
        );
        let a = send(ing.http.get(ing.url("/api/v1/jobs?limit=-1")).bearer_auth(BOOTSTRAP), "GET /jobs?limit=-1").await;
        assert_eq!(
            a.body,
            json!({"error": "invalid query parameter limit: expected a whole number from 0 to 4294967295, got \"-1\""})
        );
        // A 401 on a bearer route says how to authenticate.
        let a = send(ing.http.get(ing.url("/api/v1/jobs")), "GET /jobs without a key").await;
        assert_eq!(a.headers["www-authenticate"], "Bearer");
        let a = send(ing.http.get(ing.url("/api/v1/jobs")).bearer_auth("rmk_wrong"), "GET /jobs, wrong key").await;
        assert_eq!(a.status, 401);

        // Errors the routes make themselves pass through as they are.
        let a =
            send(ing.http.get(ing.url("/api/v1/jobs?status=bogus")).bearer_auth(BOOTSTRAP), "GET /jobs?status=bogus")
                .await;
        assert_eq!(a.status, 400);
        assert!(error(&a).starts_with("unknown status \"bogus\""), "{}", a.body);
        let a = send(
            ing.http
                .get(ing.url(&format!("/api/v1/tenants/{tenant}/integrations/tanium/webhook")))
                .bearer_auth(BOOTSTRAP),
            "GET …/tanium/webhook",
        )
        .await;
        assert_eq!((a.status, a.body), (404, json!({ "error": "tanium integrations take no webhooks" })));

        // Unknown routes, inside the API and out.
        for path in ["/api/v1/nope", "/api/v1", "/nope", "/api/v1/tenants/x/y/z/w"] {
            let a = send(ing.http.get(ing.url(path)).bearer_auth(BOOTSTRAP), path).await;
            assert_eq!(a.status, 404, "{path}: {}", a.body);
        }
        // Routes outside the OpenAPI service: a wrong method is a 405 with `Allow`, and what they
        // take still works.
        for (method, path, allow) in [
            (Method::GET, "/api/webhooks/tacticalrmm", "POST, OPTIONS"),
            (Method::POST, "/api/integrations/ninjaone/callback", "GET, HEAD"),
            (Method::POST, "/healthz", "GET, HEAD"),
            (Method::DELETE, "/readyz", "GET, HEAD"),
            (Method::PUT, "/metrics", "GET, HEAD"),
            (Method::POST, "/status", "GET, HEAD"),
        ] {
            let a = send(ing.http.request(method.clone(), ing.url(path)), &format!("{method} {path}")).await;
            assert_eq!((a.status, a.headers[ALLOW].to_str().unwrap()), (405, allow), "{method} {path}: {}", a.body);
            for m in allow.split(", ") {
                let m = Method::from_bytes(m.as_bytes()).unwrap();
                let status = ing.http.request(m.clone(), ing.url(path)).send().await.unwrap().status();
                assert_ne!(status.as_u16(), 405, "{m} {path} is in Allow but refused");
            }
        }
        // The webhook keeps AlgaPSA's answers.
        let a = send(
            ing.http.post(ing.url("/api/webhooks/tacticalrmm")).header(CONTENT_TYPE, "application/json").body("{}"),
            "webhook without a tenant",
        )
        .await;
        assert_eq!((a.status, a.body), (400, json!({"error": "Missing tenant"})));
        let a = send(
            ing.http
                .post(ing.url(&format!("/api/webhooks/tacticalrmm?tenant={tenant}")))
                .header("X-Alga-Webhook-Secret", rmm_tests::runtime::SECRET)
                .body("{not json"),
            "webhook with a broken body",
        )
        .await;
        assert_eq!((a.status, a.body), (400, json!({"error": "Invalid JSON body"})));
        drop(ing);
        store
    })
    .await;
}
