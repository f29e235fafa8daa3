//! The operators' status page (`GET /status`) on each queue backend: real jobs run by real workers
//! against the Tactical simulator, the page read over HTTP with a global and a tenant-scoped key,
//! and rendered by headless Chromium (Debian's `chromium`, installed by scripts/test), which signs
//! in with HTTP Basic authentication the way a browser does and takes a screenshot.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rmm_ingress::auth::{KeyScope, create_key};
use rmm_jobs::{JobRequest, JobStatus, Runtime, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_tests::runtime::{
    Ingress, Workers, fast_settings, mapped_tactical_tenant, runtime, set_secret, tactical_tenant, wait_finished,
    wait_status,
};
use rmm_tests::sim::tactical::TacticalSim;
use rmm_tests::stores::{self, TestStore, scalar};
use serde_json::json;

const BOOTSTRAP: &str = "status-test-bootstrap-0123456789abcdef";
const HOSTILE: &str = "<script>document.title=\"pwned\"</script> & 'quotes'";
const HOSTILE_ESCAPED: &str = "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt; &amp; &#39;quotes&#39;";

/// The Chromium binary: `RMM_TEST_CHROMIUM`, else Debian's `/usr/bin/chromium`.
fn chromium() -> PathBuf {
    let path = std::env::var_os("RMM_TEST_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        path.exists(),
        "{} not found: the status page test needs Chromium (`apt-get install chromium`; scripts/test installs it)",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `extra` arguments; returns its stdout.
async fn run_chromium(profile: &Path, extra: &[String], url: &str) -> String {
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of each cell of the first table row that starts with `row_start`.
fn cells(html: &str, row_start: &str) -> Vec<String> {
    let start = html.find(row_start).unwrap_or_else(|| panic!("no row {row_start} in the page"));
    let row = &html[start..];
    let row = &row[..row.find("</tr>").expect("row end")];
    row.split("<td").skip(1).map(|c| strip_tags(&c[c.find('>').expect("cell") + 1..])).collect()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_owned()
}

/// The `data-total` of a chart.
fn chart_total(html: &str, id: &str) -> i64 {
    let marker = format!("<figure id=\"{id}\" data-total=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no chart {id}")) + marker.len();
    html[start..start + html[start..].find('"').unwrap()].parse().unwrap()
}

async fn get(ing: &Ingress, auth: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = ing.http.get(ing.url("/status"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.text().await.unwrap())
}

/// The page with `key`, fetched until `ready` holds (the call counts are written every few seconds).
async fn page_when(ing: &Ingress, key: &str, within: Duration, ready: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let (status, _, body) = get(ing, Some(&format!("Bearer {key}"))).await;
        assert_eq!(status, 200, "{body}");
        if ready(&body) {
            return body;
        }
        assert!(start.elapsed() < within, "the status page did not show what was expected within {within:?}:\n{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn finished_jobs(rt: &Runtime) -> i64 {
    let db = &rt.db;
    let sql = format!("SELECT CAST(COUNT(*) AS TEXT) FROM {} WHERE finished_at IS NOT NULL", db.ours("job_runs"));
    scalar(db, &sql, &[]).await.unwrap().unwrap().parse().unwrap()
}

async fn status_page(store: &TestStore, backend: QueueBackend) {
    let label = format!("{}-{}", store.dialect().name(), backend_name(backend));
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&store.db, fast_settings(backend), dir.path()).await.unwrap();
    let db = &store.db;
    let ing = Ingress::start(&rt, Some(BOOTSTRAP)).await;

    // Tenant A: a working Tactical integration. Tenant B: its key is refused by its Tactical.
    let sim_a = TacticalSim::start_default().await.unwrap();
    let sim_b = TacticalSim::start_default().await.unwrap();
    let (tenant_a, integ_a) = mapped_tactical_tenant(db, &rt, &sim_a).await;
    let (tenant_b, integ_b) = tactical_tenant(db, &rt, Some(&sim_b)).await;
    set_secret(&rt, tenant_b, "tacticalrmm_api_key", "a-key-tactical-refuses").await;
    let key_a = create_key(db, Some(tenant_a), KeyScope::Read, "status page").await.unwrap().key;

    // Access: nothing, a wrong key, another scheme: 401 with a Basic challenge for browsers.
    for auth in [None, Some("Bearer rmk_0000"), Some("Basic b3BlcmF0b3I6d3Jvbmc="), Some("Digest x")] {
        let (status, headers, body) = get(&ing, auth).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic realm="), "{headers:?}");
        assert!(!body.contains("Jobs by kind"));
    }
    // Basic authentication with the key as the password, whatever the user name.
    let resp = ing.http.get(ing.url("/status")).basic_auth("anyone", Some(BOOTSTRAP)).send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert_eq!(headers["cache-control"], "no-store");

    // Before any worker runs: two due jobs and one due in an hour.
    for _ in 0..2 {
        rt.queue.enqueue(JobRequest::global("test-sleep", Trigger::Admin).args(json!({"ms": 0}))).await.unwrap();
    }
    rt.queue
        .enqueue(JobRequest::global("test-sleep", Trigger::Admin).args(json!({"ms": 0})).delay_secs(3600))
        .await
        .unwrap();
    let body = page_when(&ing, BOOTSTRAP, Duration::ZERO, |_| true).await;
    assert_eq!(cells(&body, "<tr data-kind=\"test-sleep\">"), ["test-sleep", "2", "0", "1", "0"], "{label}");

    // Real work: a device sync for A, an organisation sync for B (refused), a global job failing with
    // markup in its error, and a long job left running.
    let workers = Workers::start(&rt);
    let devices = rt
        .queue
        .enqueue(JobRequest::for_integration("sync-devices", tenant_a, "tacticalrmm", integ_a, Trigger::Admin))
        .await
        .unwrap();
    let refused = rt
        .queue
        .enqueue(JobRequest::for_integration("sync-org", tenant_b, "tacticalrmm", integ_b, Trigger::Admin))
        .await
        .unwrap();
    let hostile = rt
        .queue
        .enqueue(
            JobRequest::global("test-fail", Trigger::Admin)
                .args(json!({"fail_times": 1, "permanent": true, "message": HOSTILE})),
        )
        .await
        .unwrap();
    let sleeper =
        rt.queue.enqueue(JobRequest::global("test-sleep", Trigger::Admin).args(json!({"ms": 120_000}))).await.unwrap();
    let devices_job = wait_finished(&rt, &devices, Duration::from_secs(60)).await;
    assert_eq!(devices_job.status, JobStatus::Done, "{devices_job:?}");
    let refused_job = wait_finished(&rt, &refused, Duration::from_secs(60)).await;
    assert_eq!(refused_job.status, JobStatus::Failed, "{refused_job:?}");
    assert_eq!(wait_finished(&rt, &hostile, Duration::from_secs(30)).await.status, JobStatus::Failed);
    wait_status(&rt, &sleeper, JobStatus::Running, Duration::from_secs(30)).await;
    let processed = devices_job.result.as_ref().unwrap()["counts"]["processed"].as_u64().unwrap();
    assert_eq!(processed, sim_a.agent_count() as u64);

    // Global key: every tenant, the global jobs, and every upstream call the simulators received
    // (counted by the HTTP layer, written by the periodic flush).
    let upstream_total = (sim_a.total_hits() + sim_b.total_hits()) as i64;
    assert!(upstream_total > 0 && sim_b.total_hits() > 0);
    // Fetched until the periodic flush has written the calls; the job count is read after each
    // fetch, as the scheduler's maintenance job may finish meanwhile.
    let start = Instant::now();
    let all = loop {
        let body = page_when(&ing, BOOTSTRAP, Duration::ZERO, |_| true).await;
        let finished = finished_jobs(&rt).await;
        if chart_total(&body, "calls-chart") == upstream_total && chart_total(&body, "jobs-chart") == finished {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{label}: {upstream_total} calls, {finished} jobs:\n{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(all.contains("Scope: <b>all tenants</b>"), "{label}");
    assert!(all.contains(&format!("queue: {}", rt.queue.kind().name())));
    // The markup in the error is shown as text, never as markup.
    assert!(all.contains(HOSTILE_ESCAPED), "{label}: the error is shown escaped");
    assert!(!all.contains("<script"), "{label}: no script element in the page");
    assert!(all.contains(&hostile) && all.contains(&refused) && all.contains(&sleeper));
    let running = cells(&all, &format!("<tr><td>{sleeper}"));
    assert_eq!(&running[..2], [sleeper.as_str(), "test-sleep"]);
    assert_eq!(cells(&all, "<tr data-kind=\"test-fail\">"), ["test-fail", "0", "0", "0", "1"]);
    assert_eq!(cells(&all, "<tr data-kind=\"test-sleep\">"), ["test-sleep", "0", "1", "1", "0"]);
    assert_eq!(cells(&all, "<tr data-kind=\"sync-org\">")[4], "1", "{label}: B's refused sync failed");
    // A's integration: the device sync with the counts of the job; B's: the refused run's error.
    let row_a = cells(&all, &format!("<tr data-tenant=\"{tenant_a}\">"));
    assert_eq!(
        (row_a[1].as_str(), row_a[2].as_str(), row_a[4].as_str()),
        ("tacticalrmm", "completed", "sync-devices · completed")
    );
    assert_eq!(row_a[7], processed.to_string(), "{label}: processed");
    assert_eq!(row_a[13], "0", "{label}: no placeholder serial in the simulated fleet");
    assert_eq!(row_a[14], "", "{label}: no sync error for A");
    let row_b = cells(&all, &format!("<tr data-tenant=\"{tenant_b}\">"));
    assert_eq!((row_b[2].as_str(), row_b[4].as_str()), ("error", "sync-org · failed"), "{row_b:?}");
    let b_error = refused_job.last_error.clone().unwrap();
    assert!(!b_error.is_empty() && row_b[14].contains(&html_escape(&b_error)), "{row_b:?} vs {b_error}");

    // Tenant A's key: only A's rows, A's calls, no service-wide jobs.
    let mine =
        page_when(&ing, &key_a, Duration::from_secs(5), |b| chart_total(b, "calls-chart") == sim_a.total_hits() as i64)
            .await;
    assert!(mine.contains(&format!("Scope: <b>tenant {tenant_a}</b>")));
    assert!(mine.contains(&format!("<tr data-tenant=\"{tenant_a}\">")));
    for other in [tenant_b.to_string(), refused.clone(), hostile.clone(), sleeper.clone(), "pwned".into()] {
        assert!(!mine.contains(&other), "{label}: tenant A's page shows {other}");
    }
    assert!(!mine.contains("data-kind=\"test-sleep\"") && !mine.contains("data-kind=\"maintenance\""));
    assert!(mine.contains("No job is running."));
    let a_jobs = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM {} WHERE finished_at IS NOT NULL AND tenant = {}",
        db.ours("job_runs"),
        db.dialect().param(1, rmm_shared::db::sql::ColType::Uuid)
    );
    let a_jobs: i64 = scalar(db, &a_jobs, &[&tenant_a.to_string()]).await.unwrap().unwrap().parse().unwrap();
    assert_eq!(chart_total(&mine, "jobs-chart"), a_jobs);

    // In a browser: Chromium answers the Basic challenge with the URL's credentials, renders the
    // page, and takes a screenshot of it.
    let url = format!("http://operator:{BOOTSTRAP}@{}/status", ing.addr);
    let dom = run_chromium(&dir.path().join("chromium-dom"), &["--dump-dom".into()], &url).await;
    for section in ["id=\"summary\"", "id=\"queues\"", "id=\"running\"", "id=\"failures\"", "id=\"integrations\""] {
        assert!(dom.contains(section), "{label}: the rendered page has {section}:\n{dom}");
    }
    assert!(dom.contains("<svg") && dom.contains("id=\"jobs-chart\"") && dom.contains("id=\"calls-chart\""));
    assert!(dom.contains(&format!("data-total=\"{upstream_total}\"")), "{label}: the calls chart in the browser");
    assert!(dom.contains("&lt;script&gt;document.title="), "{label}: the error is text in the browser's DOM");
    assert!(!dom.contains("<script"), "{label}: no script element in the browser's DOM");
    assert!(dom.contains("<title>rmm-sync status</title>"), "{label}: the title was not changed by the error text");
    assert!(dom.contains(&sleeper) && dom.contains(&tenant_b.to_string()));

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("status-page-{label}.png"));
    let _ = std::fs::remove_file(&shot);
    let args = [format!("--screenshot={}", shot.display()), "--window-size=1280,1600".into()];
    run_chromium(&dir.path().join("chromium-shot"), &args, &url).await;
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    assert_eq!(&png[12..16], b"IHDR");
    let (w, h) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((w, h), (1280, 1600), "{label}: screenshot size");
    // A rendered page of tables and charts; a blank or sign-in page compresses to a few kB.
    assert!(png.len() > 40_000, "{label}: screenshot of {} bytes at {}", png.len(), shot.display());

    rt.queue.cancel(&sleeper).await.unwrap();
    workers.stop().await;
}

fn backend_name(b: QueueBackend) -> &'static str {
    match b {
        QueueBackend::Database => "database",
        QueueBackend::Redis => "redis",
    }
}

fn html_escape(s: &str) -> String {
    rmm_ingress::status::esc(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_on_postgres() {
    let store = stores::postgres().await.expect("PostgreSQL (RMM_TEST_PG_URL)");
    status_page(&store, QueueBackend::Database).await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_on_sqlite() {
    let store = stores::sqlite().await.unwrap();
    status_page(&store, QueueBackend::Database).await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_on_the_redis_queue() {
    let store = stores::postgres().await.expect("PostgreSQL (RMM_TEST_PG_URL)");
    status_page(&store, QueueBackend::Redis).await;
    store.cleanup().await;
}
