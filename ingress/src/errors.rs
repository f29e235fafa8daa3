//! Every error answer of the HTTP application in the API's own shape, `{"error": "..."}`, as the
//! routes answer theirs ([`crate::routes::ErrorBody`]).
//!
//! poem and poem-openapi refuse some requests before a route runs, in plain text: a path or query
//! parameter that does not parse (naming a path parameter by poem's internal name, `param0`), a
//! body that is not JSON or not of the declared shape, a wrong or missing `Content-Type`, a
//! missing or unknown API key, a path no route has and a method the route does not take.
//! [`ApiErrors`], the layer around the whole application, answers each of them as JSON with the
//! right status, naming the parameter as the OpenAPI document does:
//!
//! | what | status |
//! |---|---|
//! | a path or query parameter that does not parse | 400 |
//! | a body that is not JSON, or not of the declared shape | 400 |
//! | a body without `Content-Type`, or of another type than the route takes | 415 |
//! | no API key, or one that is not valid | 401 (`WWW-Authenticate: Bearer` on bearer routes) |
//! | no route for the path | 404 |
//! | a method the route does not take | 405, with `Allow` |
//!
//! Errors the routes make themselves are already JSON and pass through untouched; so do the
//! webhook routes' answers (AlgaPSA's contract), which are responses, not errors. Any other error
//! poem makes keeps its status and headers and gets its text as `error`.

use std::collections::HashMap;
use std::sync::Arc;

use poem::PathPattern;
use poem::http::{HeaderValue, Method, StatusCode, Uri, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OpenApi;
use poem_openapi::error::{
    AuthorizationError, ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
};
use poem_openapi::registry::{MetaParamIn, MetaSchemaRef, Registry};
use serde_json::json;

/// The longest part of a request (a path, a parameter's value) repeated in an error.
const ECHO_MAX: usize = 100;

/// The layer: built with the OpenAPI routes ([`ApiErrors::api`]) and the other routes
/// ([`ApiErrors::route`]) of the application, so that a 405 can say what is allowed.
#[derive(Clone, Default)]
pub struct ApiErrors {
    table: Arc<Table>,
}

#[derive(Default)]
struct Table {
    /// By poem's path pattern (`/api/v1/tenants/:param0`, `/api/webhooks/:provider`).
    routes: HashMap<String, Vec<(Method, Option<Operation>)>>,
}

/// What an OpenAPI operation declares, for naming what a request got wrong.
struct Operation {
    /// The path parameters in poem's order (`param0`, `param1`, …).
    path: Vec<Param>,
    /// Query, header and cookie parameters.
    other: Vec<(Param, &'static str)>,
    /// The request body's content types.
    body: Vec<&'static str>,
    /// How to authenticate, e.g. `Authorization: Bearer <key>`.
    auth: Option<Auth>,
}

struct Param {
    name: String,
    /// What a valid value is (`a UUID`), when the schema says.
    expected: Option<String>,
}

#[derive(Clone, Copy)]
enum Auth {
    Bearer,
    Header(&'static str),
}

impl ApiErrors {
    pub fn new() -> Self {
        ApiErrors::default()
    }

    /// The operations of the OpenAPI service `T`, nested at `prefix` (`/api/v1`).
    pub fn api<T: OpenApi>(mut self, prefix: &str) -> Self {
        let mut registry = Registry::new();
        T::register(&mut registry);
        let table = Arc::get_mut(&mut self.table).expect("built before use");
        for path in T::meta().into_iter().flat_map(|api| api.paths) {
            let pattern = format!("{}{}", prefix.trim_end_matches('/'), poem_pattern(&path.path));
            let ops = table.routes.entry(pattern).or_default();
            for op in path.operations {
                let mut path_params = Vec::new();
                let mut other = Vec::new();
                for p in op.params {
                    let param = Param { expected: expected(&p.schema), name: p.name };
                    match p.in_type {
                        MetaParamIn::Path => path_params.push(param),
                        MetaParamIn::Query => other.push((param, "query")),
                        MetaParamIn::Header => other.push((param, "header")),
                        _ => other.push((param, "cookie")),
                    }
                }
                let auth = op.security.iter().flat_map(|s| s.keys()).find_map(|name| {
                    let scheme = registry.security_schemes.get(name)?;
                    match (scheme.ty, scheme.scheme, scheme.key_in, scheme.name) {
                        ("http", Some(s), _, _) if s.eq_ignore_ascii_case("bearer") => Some(Auth::Bearer),
                        ("apiKey", _, Some("header"), Some(h)) => Some(Auth::Header(h)),
                        _ => None,
                    }
                });
                let body = op
                    .request
                    .map(|r| r.content.iter().map(|c| c.content_type.split(';').next().unwrap_or("").trim()).collect())
                    .unwrap_or_default();
                ops.push((op.method, Some(Operation { path: path_params, other, body, auth })));
            }
        }
        self
    }

    /// A route outside the OpenAPI service, by its poem pattern, and the methods it takes.
    pub fn route(mut self, pattern: &str, methods: &[Method]) -> Self {
        let table = Arc::get_mut(&mut self.table).expect("built before use");
        table.routes.entry(pattern.to_owned()).or_default().extend(methods.iter().map(|m| (m.clone(), None)));
        self
    }
}

/// `/tenants/{tenant}/clients/{client_id}` → `/tenants/:param0/clients/:param1`, as poem-openapi
/// registers an operation's path with poem.
fn poem_pattern(oai_path: &str) -> String {
    let mut out = String::new();
    let mut n = 0;
    for seg in oai_path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if seg.starts_with('{') && seg.ends_with('}') {
            out.push_str(&format!(":param{n}"));
            n += 1;
        } else {
            out.push_str(seg);
        }
    }
    if out.is_empty() { "/".to_owned() } else { out }
}

/// What a valid value of a parameter with this schema is, in words.
fn expected(schema: &MetaSchemaRef) -> Option<String> {
    let MetaSchemaRef::Inline(s) = schema else { return None };
    let max = |f: &str| match f {
        "uint8" => Some(u64::from(u8::MAX)),
        "uint16" => Some(u64::from(u16::MAX)),
        "uint32" => Some(u64::from(u32::MAX)),
        "uint64" => Some(u64::MAX),
        _ => None,
    };
    Some(match (s.ty, s.format) {
        ("string", Some("uuid")) => "a UUID".to_owned(),
        ("string", Some("date-time")) => "a date and time (RFC 3339)".to_owned(),
        ("string", _) if !s.enum_items.is_empty() => {
            let items: Vec<String> = s.enum_items.iter().map(|v| v.to_string()).collect();
            format!("one of {}", items.join(", "))
        }
        ("integer", Some(f)) if max(f).is_some() => format!("a whole number from 0 to {}", max(f).unwrap_or(0)),
        ("integer", _) => "a whole number".to_owned(),
        ("number", _) => "a number".to_owned(),
        ("boolean", _) => "true or false".to_owned(),
        _ => return None,
    })
}

impl<E: Endpoint> Middleware<E> for ApiErrors {
    type Output = ApiErrorsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ApiErrorsEndpoint { inner: ep, table: self.table.clone() }
    }
}

/// The endpoint [`ApiErrors`] makes.
pub struct ApiErrorsEndpoint<E> {
    inner: E,
    table: Arc<Table>,
}

impl<E: Endpoint> Endpoint for ApiErrorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let method = req.method().clone();
        let uri = req.uri().clone();
        match self.inner.call(req).await {
            Ok(resp) => Ok(resp.into_response()),
            Err(e) => Ok(self.table.answer(e, &method, &uri).await),
        }
    }
}

fn json_error(status: StatusCode, msg: impl Into<String>) -> Response {
    poem::web::Json(json!({ "error": msg.into() })).with_status(status).into_response()
}

/// At most [`ECHO_MAX`] characters of `s`, quoted as JSON quotes strings.
fn echo(s: &str) -> String {
    let cut: String = s.chars().take(ECHO_MAX).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    format!("{}{more}", serde_json::Value::String(cut))
}

impl Table {
    fn operation(&self, pattern: Option<&str>, method: &Method) -> Option<&Operation> {
        let ops = self.routes.get(pattern?)?;
        // poem answers HEAD with the GET route.
        let find = |m: &Method| ops.iter().find(|(om, _)| om == m).and_then(|(_, op)| op.as_ref());
        find(method).or_else(|| if method == Method::HEAD { find(&Method::GET) } else { None })
    }

    fn allowed(&self, pattern: Option<&str>) -> Vec<Method> {
        let Some(ops) = pattern.and_then(|p| self.routes.get(p)) else { return Vec::new() };
        let order =
            [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS];
        let has = |m: &Method| ops.iter().any(|(om, _)| om == m);
        order.into_iter().filter(|m| has(m) || (*m == Method::HEAD && has(&Method::GET))).collect()
    }

    async fn answer(&self, e: poem::Error, method: &Method, uri: &Uri) -> Response {
        let pattern = e.data::<PathPattern>().map(|p| p.0.to_string());
        let op = self.operation(pattern.as_deref(), method);
        if let Some(p) = e.downcast_ref::<ParsePathError>() {
            let index = p.name.strip_prefix("param").and_then(|n| n.parse::<usize>().ok());
            let param = index.and_then(|i| op?.path.get(i));
            let value = pattern.as_deref().and_then(|pat| path_value(pat, p.name, uri.path()));
            let name = param.map(|p| p.name.as_str()).unwrap_or(p.name);
            let expected = param.and_then(|p| p.expected.as_deref());
            return json_error(StatusCode::BAD_REQUEST, invalid("path", name, expected, value, &p.reason));
        }
        if let Some(p) = e.downcast_ref::<ParseParamError>() {
            let found = op.and_then(|op| op.other.iter().find(|(q, _)| q.name == p.name));
            let place = found.map(|(_, place)| *place).unwrap_or("query");
            let expected = found.and_then(|(q, _)| q.expected.as_deref());
            let value = (place == "query").then(|| query_value(uri, p.name)).flatten();
            return json_error(StatusCode::BAD_REQUEST, invalid(place, p.name, expected, value, &p.reason));
        }
        if let Some(p) = e.downcast_ref::<ParseRequestPayloadError>() {
            return json_error(StatusCode::BAD_REQUEST, format!("invalid request body: {}", p.reason));
        }
        if let Some(c) = e.downcast_ref::<ContentTypeError>() {
            let takes = op.map(|op| op.body.join(" or ")).filter(|t| !t.is_empty());
            let takes = takes.as_deref().unwrap_or("application/json");
            let msg = match c {
                ContentTypeError::NotSupported { content_type } => {
                    format!("unsupported Content-Type {}: send the body as {takes}", echo(content_type))
                }
                ContentTypeError::ExpectContentType => {
                    format!("the request has no Content-Type: send the body as {takes}")
                }
            };
            return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg);
        }
        if e.is::<AuthorizationError>() {
            let auth = op.and_then(|op| op.auth).unwrap_or(Auth::Bearer);
            let how = match auth {
                Auth::Bearer => "send it in the Authorization header as \"Bearer <key>\"".to_owned(),
                Auth::Header(h) => format!("send it in the {h} header"),
            };
            let mut resp = json_error(StatusCode::UNAUTHORIZED, format!("missing or invalid API key: {how}"));
            if matches!(auth, Auth::Bearer) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return resp;
        }
        if e.is::<poem::error::NotFoundError>() {
            return json_error(
                StatusCode::NOT_FOUND,
                format!(
                    "no route for {method} {}; the admin API's routes are listed in /openapi.json",
                    echo(uri.path())
                ),
            );
        }
        if e.is::<poem::error::MethodNotAllowedError>() {
            let allowed = self.allowed(pattern.as_deref());
            let list = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            let mut resp =
                json_error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed here; allowed: {list}"));
            if let Ok(v) = HeaderValue::from_str(&list) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
            return resp;
        }
        wrap(e.into_response()).await
    }
}

/// `invalid path parameter tenant: expected a UUID, got "x"`.
fn invalid(place: &str, name: &str, expected: Option<&str>, value: Option<String>, reason: &str) -> String {
    match (expected, value) {
        (Some(expected), Some(v)) => format!("invalid {place} parameter {name}: expected {expected}, got {}", echo(&v)),
        (Some(expected), None) => format!("invalid {place} parameter {name}: expected {expected}"),
        (None, Some(v)) => format!("invalid {place} parameter {name} ({}): {reason}", echo(&v)),
        (None, None) => format!("invalid {place} parameter {name}: {reason}"),
    }
}

/// The segment of `path` where `pattern` has `:name`.
fn path_value(pattern: &str, name: &str, path: &str) -> Option<String> {
    let at = pattern.split('/').position(|seg| seg.strip_prefix(':') == Some(name))?;
    path.split('/').nth(at).map(str::to_owned)
}

/// The (first) value of query parameter `name`, decoded.
fn query_value(uri: &Uri, name: &str) -> Option<String> {
    let req = Request::builder().uri(uri.clone()).finish();
    let pairs: Vec<(String, String)> = req.params().ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Another error of poem's: JSON already (a route's own answer) stays as it is; text becomes
/// `{"error": text}` with the same status and headers.
async fn wrap(resp: Response) -> Response {
    let is_json = resp.content_type().is_some_and(|c| {
        let c = c.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        c == "application/json" || c.ends_with("+json")
    });
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = body.into_string().await.unwrap_or_default();
    let text = text.trim();
    let msg =
        if text.is_empty() { parts.status.canonical_reason().unwrap_or("error").to_owned() } else { text.to_owned() };
    let mut out = json_error(parts.status, msg);
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    *out.extensions_mut() = parts.extensions;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poem_patterns_number_path_parameters_in_order() {
        assert_eq!(poem_pattern("/tenants/{tenant}/clients/{client_id}"), "/tenants/:param0/clients/:param1");
        assert_eq!(poem_pattern("/jobs"), "/jobs");
        assert_eq!(poem_pattern("/"), "/");
        assert_eq!(
            path_value("/api/v1/tenants/:param0/x/:param1", "param1", "/api/v1/tenants/a/x/b"),
            Some("b".into())
        );
    }

    #[test]
    fn the_admin_api_is_in_the_table() {
        let e = ApiErrors::new().api::<crate::routes::AdminApi>("/api/v1").route("/healthz", &[Method::GET]);
        let t = &e.table;
        let op = t.operation(Some("/api/v1/tenants/:param0/clients/:param1"), &Method::PUT).expect("put_client");
        let names: Vec<&str> = op.path.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["tenant", "client_id"]);
        assert_eq!(op.path[0].expected.as_deref(), Some("a UUID"));
        assert_eq!(op.body, ["application/json"]);
        let jobs = t.operation(Some("/api/v1/jobs"), &Method::GET).expect("list_jobs");
        let limit = jobs.other.iter().find(|(p, _)| p.name == "limit").expect("limit");
        assert_eq!(limit.0.expected.as_deref(), Some("a whole number from 0 to 4294967295"));
        assert_eq!(t.allowed(Some("/healthz")), [Method::GET, Method::HEAD]);
        assert_eq!(
            t.allowed(Some("/api/v1/tenants/:param0/integrations/:param1")),
            [Method::GET, Method::HEAD, Method::PUT, Method::DELETE]
        );
    }
}
