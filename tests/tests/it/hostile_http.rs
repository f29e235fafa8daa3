//! The ingress against hostile clients, over raw TCP on a real listener: headers or bodies sent
//! slowly are cut off after the configured time, bodies over the limit are refused with 413
//! without being read (chunked ones too, and memory does not grow), and the webhook gives a wrong
//! secret and an unknown tenant the same answer in the same time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rmm_shared::config::{QueueBackend, Settings};
use rmm_tests::runtime::{Ingress, SECRET, fast_settings, runtime, set_secret, tactical_tenant};
use rmm_tests::stores::{self, TestStore};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const HEADER_TIMEOUT_MS: u64 = 1_000;
const BODY_TIMEOUT_MS: u64 = 1_000;
const API_LIMIT_KIB: usize = 64;

struct Setup {
    ing: Ingress,
    tenant: Uuid,
    _rt: rmm_jobs::Runtime,
    _dir: tempfile::TempDir,
    store: TestStore,
}

async fn setup(adjust: impl FnOnce(&mut Settings)) -> Setup {
    let store = stores::sqlite().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings(QueueBackend::Database);
    settings.http.header_timeout_ms = HEADER_TIMEOUT_MS;
    settings.http.body_timeout_ms = BODY_TIMEOUT_MS;
    settings.http.api_body_limit_kib = API_LIMIT_KIB;
    adjust(&mut settings);
    let rt = runtime(&store.db, settings, dir.path()).await.unwrap();
    let (tenant, _) = tactical_tenant(&store.db, &rt, None).await;
    let ing = Ingress::start(&rt, Some("hostile-bootstrap-key")).await;
    Setup { ing, tenant, _rt: rt, _dir: dir, store }
}

/// A raw connection whose reader runs on its own: it collects everything the server sends until
/// the server closes, and says when that was.
struct Raw {
    wr: tokio::net::tcp::OwnedWriteHalf,
    closed: tokio::task::JoinHandle<(Duration, Vec<u8>)>,
    start: Instant,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        let (mut rd, wr) = s.into_split();
        let closed = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            (start.elapsed(), got)
        });
        Raw { wr, closed, start }
    }

    /// Writes `piece` every `every` until the server closes, a write fails, or `max` passes.
    async fn trickle(&mut self, piece: &[u8], every: Duration, max: Duration) {
        while !self.closed.is_finished() && self.start.elapsed() < max {
            if self.wr.write_all(piece).await.is_err() {
                break;
            }
            tokio::time::sleep(every).await;
        }
    }

    /// When the server closed, and what it sent.
    async fn end(self, within: Duration) -> (Duration, String) {
        let (at, got) = tokio::time::timeout(within, self.closed)
            .await
            .expect("the server did not close the connection in time")
            .unwrap();
        (at, String::from_utf8_lossy(&got).into_owned())
    }
}

fn webhook_head(tenant: Uuid, extra: &str) -> String {
    format!(
        "POST /api/webhooks/tacticalrmm?tenant={tenant} HTTP/1.1\r\nHost: rmm-sync\r\n\
         Content-Type: application/json\r\nX-Alga-Webhook-Secret: {SECRET}\r\n{extra}\r\n"
    )
}

/// The JSON body of an HTTP/1.1 answer (the text after the blank line).
fn json_of(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn assert_cut_after(at: Duration, timeout_ms: u64) {
    let ms = at.as_millis() as u64;
    assert!(ms >= timeout_ms * 8 / 10, "cut after {ms} ms, before the {timeout_ms} ms timeout");
    assert!(ms < timeout_ms + 4_000, "cut only after {ms} ms (timeout {timeout_ms} ms)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_idle_headers_are_cut_off() {
    let s = setup(|_| {}).await;

    // Headers trickled one byte every 100 ms: closed after the header timeout, with no answer.
    let mut raw = Raw::connect(s.ing.addr).await;
    raw.wr.write_all(b"POST /api/webhooks/tacticalrmm?tenant=x HTTP/1.1\r\nX-Slow: ").await.unwrap();
    raw.trickle(b"a", Duration::from_millis(100), Duration::from_secs(10)).await;
    let (at, got) = raw.end(Duration::from_secs(5)).await;
    assert_cut_after(at, HEADER_TIMEOUT_MS);
    assert!(got.is_empty(), "{got}");

    // A connection that sends nothing at all.
    let raw = Raw::connect(s.ing.addr).await;
    let (at, got) = raw.end(Duration::from_secs(6)).await;
    assert_cut_after(at, HEADER_TIMEOUT_MS);
    assert!(got.is_empty(), "{got}");

    // A head too large to be headers: refused at once, whatever its pace.
    let mut raw = Raw::connect(s.ing.addr).await;
    let head = format!("GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(600 * 1024));
    let _ = raw.wr.write_all(head.as_bytes()).await;
    let (at, got) = raw.end(Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    assert!(at < Duration::from_millis(HEADER_TIMEOUT_MS), "{at:?}");

    // An idle keep-alive connection after a complete request: answered, then closed after the
    // header timeout (counted from the end of the answer).
    let mut raw = Raw::connect(s.ing.addr).await;
    raw.wr.write_all(b"GET /healthz HTTP/1.1\r\nHost: rmm-sync\r\n\r\n").await.unwrap();
    let (at, got) = raw.end(Duration::from_secs(6)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_cut_after(at, HEADER_TIMEOUT_MS);

    s.store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_get_408_and_are_cut_off() {
    let s = setup(|_| {}).await;
    for (framing, piece) in [("Content-Length: 4000\r\n", &b"a"[..]), ("Transfer-Encoding: chunked\r\n", b"1\r\na\r\n")]
    {
        let mut raw = Raw::connect(s.ing.addr).await;
        raw.wr.write_all(webhook_head(s.tenant, framing).as_bytes()).await.unwrap();
        raw.trickle(piece, Duration::from_millis(100), Duration::from_secs(10)).await;
        let (at, got) = raw.end(Duration::from_secs(5)).await;
        assert!(got.starts_with("HTTP/1.1 408"), "{framing}: {got}");
        assert!(got.to_ascii_lowercase().contains("connection: close"), "{got}");
        assert_eq!(json_of(&got), json!({"error": format!("Request body not received within {BODY_TIMEOUT_MS} ms")}));
        assert_cut_after(at, BODY_TIMEOUT_MS);
    }

    // The admin API too.
    let mut raw = Raw::connect(s.ing.addr).await;
    let head = format!(
        "PUT /api/v1/tenants/{}/integrations/tacticalrmm HTTP/1.1\r\nHost: rmm-sync\r\n\
         Authorization: Bearer hostile-bootstrap-key\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        s.tenant
    );
    raw.wr.write_all(head.as_bytes()).await.unwrap();
    raw.trickle(b" ", Duration::from_millis(100), Duration::from_secs(10)).await;
    let (at, got) = raw.end(Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert_cut_after(at, BODY_TIMEOUT_MS);

    // A body sent at a normal pace still goes through on the same server.
    let body = json!({"agent_id": "agent-1", "alert_id": "1"}).to_string();
    let mut raw = Raw::connect(s.ing.addr).await;
    let req = webhook_head(s.tenant, &format!("Content-Length: {}\r\nConnection: close\r\n", body.len())) + &body;
    raw.wr.write_all(req.as_bytes()).await.unwrap();
    let (_, got) = raw.end(Duration::from_secs(10)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(json_of(&got)["recorded"], json!(true), "{got}");

    s.store.cleanup().await;
}

/// Resident set size of this process (the server runs in it), in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// Sends a chunked body of up to `total` bytes in 64 KiB chunks as fast as the server takes it;
/// returns how much was written before the server stopped taking it, and its answer.
async fn flood_chunked(addr: SocketAddr, head: String, total: usize) -> (usize, String) {
    let mut raw = Raw::connect(addr).await;
    raw.wr.write_all(head.as_bytes()).await.unwrap();
    let chunk = [b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < total && !raw.closed.is_finished() {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk[..], b"\r\n"].concat();
        match tokio::time::timeout(Duration::from_secs(5), raw.wr.write_all(&framed)).await {
            Ok(Ok(())) => sent += chunk.len(),
            // The server stopped reading (the socket buffers are full) or closed.
            _ => break,
        }
    }
    let _ = raw.wr.shutdown().await;
    let (_, got) = raw.end(Duration::from_secs(10)).await;
    (sent, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_without_being_read() {
    let s = setup(|_| {}).await;

    // Declared too large: refused at once, before any of it is sent.
    let mut raw = Raw::connect(s.ing.addr).await;
    raw.wr.write_all(webhook_head(s.tenant, "Content-Length: 10000000000\r\n").as_bytes()).await.unwrap();
    let (at, got) = raw.end(Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert_eq!(json_of(&got), json!({"error": "Webhook body too large (limit 256 KiB)"}));
    assert!(at < Duration::from_millis(BODY_TIMEOUT_MS), "{at:?}");

    // Chunked bodies with no length, four at once, each trying to push 256 MiB: each is answered
    // 413 once it passes the limit, the server stops reading, and memory does not grow with
    // what the clients try to send.
    let before = rss_mib();
    let floods =
        (0..4).map(|_| flood_chunked(s.ing.addr, webhook_head(s.tenant, "Transfer-Encoding: chunked\r\n"), 256 << 20));
    let results = futures::future::join_all(floods).await;
    let grown = rss_mib() - before;
    let taken: Vec<usize> = results.iter().map(|(sent, _)| sent >> 10).collect();
    eprintln!("chunked floods: KiB taken before the 413 {taken:?}; RSS grew {grown:.1} MiB");
    for (sent, got) in &results {
        assert!(got.starts_with("HTTP/1.1 413"), "after {sent} bytes: {got}");
        assert_eq!(json_of(got), json!({"error": "Webhook body too large (limit 256 KiB)"}));
        // What the server read (256 KiB) plus what the kernel's socket buffers hold.
        assert!(*sent < 32 << 20, "{sent} bytes were taken");
    }
    assert!(grown < 64.0, "RSS grew by {grown:.1} MiB");

    // The admin API's limit, declared and chunked.
    let path = format!("/api/v1/tenants/{}/integrations/tacticalrmm", s.tenant);
    let big = json!({"settings": {"note": "x".repeat(API_LIMIT_KIB * 1024)}});
    let (status, body) = s
        .ing
        .api(
            reqwest::Method::PUT,
            &format!("/tenants/{}/integrations/tacticalrmm", s.tenant),
            "hostile-bootstrap-key",
            Some(big),
        )
        .await;
    assert_eq!((status, body), (413, json!({"error": format!("Request body too large (limit {API_LIMIT_KIB} KiB)")})));
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: rmm-sync\r\nAuthorization: Bearer hostile-bootstrap-key\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let (sent, got) = flood_chunked(s.ing.addr, head, 64 << 20).await;
    assert!(got.starts_with("HTTP/1.1 413"), "after {sent} bytes: {got}");
    assert!(sent < 32 << 20, "{sent} bytes were taken");

    // Under the limit the admin API still takes the body.
    let (status, body) = s
        .ing
        .api(
            reqwest::Method::PUT,
            &format!("/tenants/{}/integrations/tacticalrmm", s.tenant),
            "hostile-bootstrap-key",
            Some(json!({"settings": {"alert_mode": "record"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    s.store.cleanup().await;
}

/// Latencies of `n` rounds of `cases`, interleaved (one of each per round, in an order that
/// rotates), so that load changes during the run fall on every case alike.
async fn interleaved(ing: &Ingress, cases: &[(Option<String>, &str)], n: usize) -> Vec<Vec<(Duration, u16, Value)>> {
    let body = json!({"agent_id": "agent-1"}).to_string();
    let mut out = vec![Vec::with_capacity(n); cases.len()];
    for round in 0..n {
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            let (tenant, secret) = &cases[i];
            let start = Instant::now();
            let (status, v) = ing.webhook(tenant.as_deref(), Some(secret), body.clone()).await;
            out[i].push((start.elapsed(), status, v));
        }
    }
    out
}

fn median_ms(samples: &[(Duration, u16, Value)]) -> f64 {
    let mut d: Vec<f64> = samples.iter().map(|(t, _, _)| t.as_secs_f64() * 1000.0).collect();
    d.sort_by(f64::total_cmp);
    d[d.len() / 2]
}

/// Two medians are the same time: within 2 ms or 10% of the larger, whichever is more.
fn same_time(a: f64, b: f64) -> bool {
    (a - b).abs() <= (0.10 * a.max(b)).max(2.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_and_unknown_tenant_get_one_answer_in_one_time() {
    const FLOOR_MS: u64 = 20;
    let s = setup(|st| st.http.webhook_unauthorized_floor_ms = FLOOR_MS).await;
    // A tenant that exists, with no Tactical integration and no secret.
    let bare = stores::tenant(&s.store.db).await.unwrap();
    // A tenant with a secret but no integration.
    let no_integration = stores::tenant(&s.store.db).await.unwrap();
    let rt = &s._rt;
    set_secret(rt, no_integration, "tacticalrmm_webhook_secret", "another-tenants-secret").await;

    let cases = [
        (Some(s.tenant.to_string()), "wrong-secret"),
        (Some(Uuid::new_v4().to_string()), "wrong-secret"),
        (Some(bare.to_string()), "wrong-secret"),
        (Some(no_integration.to_string()), "wrong-secret"),
        (Some("acme".to_owned()), "wrong-secret"),
        // The control: an answer that does not wait for the floor (no tenant at all).
        (None, "wrong-secret"),
    ];
    // Warm up the connection pool and the secret files' directory cache.
    interleaved(&s.ing, &cases, 5).await;
    let samples = interleaved(&s.ing, &cases, 200).await;

    let refused = (401, json!({"error": "Unauthorized: invalid webhook secret"}));
    for (i, case) in samples.iter().enumerate().take(5) {
        for (_, status, v) in case {
            assert_eq!((*status, v.clone()), refused, "case {i}");
        }
    }
    let medians: Vec<f64> = samples.iter().map(|c| median_ms(c)).collect();
    eprintln!(
        "median ms: wrong secret, unknown tenant, tenant without integration or secret, tenant without integration, not a UUID, no tenant (400): {medians:.2?}"
    );
    for (i, m) in medians.iter().enumerate().take(5).skip(1) {
        assert!(same_time(medians[0], *m), "case {i}: {m:.2} ms against {:.2} ms for a wrong secret", medians[0]);
    }
    assert!(medians[0] >= FLOOR_MS as f64, "{medians:?}");
    // The measurement does tell answers of different times apart.
    assert_eq!(samples[5][0].1, 400);
    assert!(!same_time(medians[0], medians[5]), "{medians:?}");

    s.store.cleanup().await;
}
