//! With every secret set and logging at TRACE, no secret value appears in the logs, in job errors
//! or in API responses — through webhooks (right and wrong secret), connection tests, syncs, an
//! upstream that refuses the key, and Knox logins, for Tactical and Tanium.
//!
//! The logs are those of this test's threads: its runtime's threads (workers and blocking ones)
//! and the test's own each have the capturing subscriber as their default, while the other tests
//! of the binary log to the process's global subscriber ([`crate::support::telemetry`], which
//! also bridges the `log` crate's records into `tracing`).

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use rmm_jobs::{JobRequest, JobStatus, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_tests::runtime::{
    Ingress, SECRET, Workers, fast_settings, runtime, set_secret, tactical_tenant, wait_finished,
};
use rmm_tests::sim::tactical::{DEFAULT_API_KEY, DEFAULT_PASSWORD, FleetSpec, SimConfig, TacticalSim};
use rmm_tests::sim::tanium::{DEFAULT_TOKEN as TANIUM_TOKEN, TaniumFault, TaniumSim};
use rmm_tests::stores;
use serde_json::json;
use tracing::Dispatch;
use tracing::dispatcher::DefaultGuard;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

thread_local! {
    /// The capturing subscriber as this thread's default, on the threads of the test's runtime.
    static CAPTURING: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

#[test]
fn no_secret_value_reaches_logs_job_errors_or_api_answers() {
    let logs = Captured::default();
    let capture = Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish(),
    );
    // The `log` bridge is installed with the global subscriber; let every `log` record through
    // to it (the capturing subscriber takes all levels).
    crate::support::telemetry();
    log::set_max_level(log::LevelFilter::Trace);
    let _capturing = tracing::dispatcher::set_default(&capture);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            CAPTURING.with(|c| *c.borrow_mut() = Some(tracing::dispatcher::set_default(&capture)));
        })
        .on_thread_stop(|| CAPTURING.with(|c| drop(c.borrow_mut().take())))
        .build()
        .unwrap();
    runtime.block_on(secrets_stay_out_of_logs_job_errors_and_api_answers(logs));
}

async fn secrets_stay_out_of_logs_job_errors_and_api_answers(logs: Captured) {
    let bootstrap = "rmk-bootstrap-Secret-Value-5511";
    let store = stores::postgres().await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(3, 2, 1, 3))).await.unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let (tenant, integration) = tactical_tenant(db, &rt, Some(&sim)).await;
    set_secret(&rt, tenant, "tacticalrmm_username", "admin").await;
    set_secret(&rt, tenant, "tacticalrmm_password", DEFAULT_PASSWORD).await;
    let workers = Workers::start(&rt);
    let ing = Ingress::start(&rt, Some(bootstrap)).await;
    let mut answers = Vec::new();
    let path = format!("/tenants/{tenant}/integrations/tacticalrmm");

    // Admin API: read (masked), connection test with the key, then Knox (logs in, stores a token).
    answers.push(ing.api(Method::GET, &path, bootstrap, None).await.1);
    answers.push(ing.api(Method::POST, &format!("{path}/test"), bootstrap, Some(json!({}))).await.1);
    answers.push(ing.api(Method::PUT, &path, bootstrap, Some(json!({"auth_mode": "knox"}))).await.1);
    answers.push(ing.api(Method::POST, &format!("{path}/test"), bootstrap, Some(json!({}))).await.1);
    answers.push(ing.api(Method::PUT, &path, bootstrap, Some(json!({"auth_mode": "api_key"}))).await.1);
    // Changing the auth mode needs a new successful test before the integration is active again.
    let (status, v) = ing.api(Method::POST, &format!("{path}/test"), bootstrap, Some(json!({}))).await;
    assert_eq!(status, 200, "{v}");
    answers.push(v);
    // The webhook setup answer carries the webhook secret on purpose (it is pasted into Tactical;
    // a write-scoped key is needed): checked for the other secrets only.
    let setup = ing.api(Method::GET, &format!("{path}/webhook"), bootstrap, None).await.1;
    assert_eq!(setup["secret"], json!(SECRET), "{setup}");

    // Webhooks with the right and a wrong secret.
    let agent = sim.agents()[0].agent_id.clone();
    let body = json!({"agent_id": agent, "alert_id": "5", "event": "trigger"}).to_string();
    let (status, reply) = ing.webhook(Some(&tenant.to_string()), Some(SECRET), body.clone()).await;
    assert_eq!(status, 200, "{reply}");
    let hook_job = reply["job_id"].as_str().unwrap().to_owned();
    answers.push(reply);
    answers.push(ing.webhook(Some(&tenant.to_string()), Some("wrong-secret"), body).await.1);

    // Jobs, one of them against a Tactical that refuses the key.
    let org = rt
        .queue
        .enqueue(JobRequest::for_integration("sync-org", tenant, "tacticalrmm", integration, Trigger::Admin))
        .await
        .unwrap();
    let mut jobs = vec![wait_finished(&rt, &hook_job, Duration::from_secs(30)).await];
    jobs.push(wait_finished(&rt, &org, Duration::from_secs(30)).await);
    sim.expire_api_key(DEFAULT_API_KEY);
    let refused = rt
        .queue
        .enqueue(JobRequest::for_integration("sync-org", tenant, "tacticalrmm", integration, Trigger::Admin))
        .await
        .unwrap();
    let refused = wait_finished(&rt, &refused, Duration::from_secs(60)).await;
    assert_eq!(refused.status, JobStatus::Failed, "{refused:?}");
    jobs.push(refused);
    answers.push(ing.api(Method::POST, &format!("{path}/test"), bootstrap, Some(json!({}))).await.1);

    // Tanium: the token saved, tested, shown (masked); a scope and a device sync; a refused one.
    let tanium = TaniumSim::start_default().await.unwrap();
    let tpath = format!("/tenants/{tenant}/integrations/tanium");
    let body = json!({"instance_url": tanium.base_url(), "api_token": TANIUM_TOKEN});
    answers.push(ing.api(Method::PUT, &tpath, bootstrap, Some(body)).await.1);
    let (status, v) = ing.api(Method::POST, &format!("{tpath}/test"), bootstrap, Some(json!({}))).await;
    assert_eq!((status, &v["success"]), (200, &json!(true)), "{v}");
    answers.push(v);
    answers.push(ing.api(Method::GET, &tpath, bootstrap, None).await.1);
    for kind in ["sync-org", "tanium-full-sync"] {
        let (status, v) = ing.api(Method::POST, &format!("{tpath}/jobs/{kind}"), bootstrap, Some(json!({}))).await;
        assert_eq!(status, 202, "{v}");
        jobs.push(wait_finished(&rt, v["job_id"].as_str().unwrap(), Duration::from_secs(60)).await);
    }
    tanium.inject(TaniumFault::Status(403), None);
    let (_, v) = ing.api(Method::POST, &format!("{tpath}/jobs/tanium-full-sync"), bootstrap, Some(json!({}))).await;
    jobs.push(wait_finished(&rt, v["job_id"].as_str().unwrap(), Duration::from_secs(60)).await);
    answers.push(ing.api(Method::POST, &format!("{tpath}/test"), bootstrap, Some(json!({}))).await.1);
    answers.push(ing.api(Method::GET, &tpath, bootstrap, None).await.1);
    workers.stop().await;

    let knox_token = rt
        .secrets
        .get_tenant_secret(tenant, "tacticalrmm_knox_token")
        .await
        .unwrap()
        .map(|t| secrecy::ExposeSecret::expose_secret(&t).to_owned());
    let knox_token = knox_token.expect("the Knox connection test stored a token");
    let secrets = [DEFAULT_API_KEY, DEFAULT_PASSWORD, SECRET, bootstrap, knox_token.as_str(), TANIUM_TOKEN];
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.len() > 10_000, "the logs were not captured ({} bytes)", logs.len());
    let jobs_text = format!("{jobs:?}");
    let answers_text = serde_json::to_string(&answers).unwrap();
    let setup_text = setup.to_string();
    for secret in [DEFAULT_API_KEY, DEFAULT_PASSWORD, bootstrap, knox_token.as_str(), TANIUM_TOKEN] {
        assert!(!setup_text.contains(secret), "a secret value is in the webhook setup answer");
    }
    for secret in secrets {
        assert!(!logs.contains(secret), "a secret value is in the logs: {}…", &secret[..4]);
        assert!(!jobs_text.contains(secret), "a secret value is in a job's error or result");
        assert!(!answers_text.contains(secret), "a secret value is in an API answer");
    }
    drop(ing);
    store.cleanup().await;
}
