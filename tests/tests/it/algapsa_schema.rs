//! Against AlgaPSA's real schema (built from AlgaPSA's own migrations): rmm-sync in `algapsa` mode
//! accepts it, a full Tactical sync, a webhook and a software ingest succeed, and AlgaPSA's own
//! read paths see the rows. A database that lacks a column is refused with a message naming it.

use std::time::Duration;

use rmm_jobs::{JobRequest, JobStatus, Trigger};
use rmm_shared::config::{QueueBackend, SchemaMode};
use rmm_shared::db::sql::ColType;
use rmm_tests::runtime::{Ingress, SECRET, Workers, fast_settings, mapped_tactical_tenant, runtime, wait_finished};
use rmm_tests::sim::tactical::{FleetSpec, SimConfig, TacticalSim};
use rmm_tests::stores::{self, scalar};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_write_rows_algapsa_reads_on_its_real_schema() {
    let store = stores::algapsa_postgres().await.expect("AlgaPSA schema loads and passes the schema check");
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(21, 2, 1, 3))).await.unwrap();
    let mut settings = fast_settings(QueueBackend::Database);
    settings.schema_mode = SchemaMode::Algapsa;
    let rt = runtime(db, settings, dir.path()).await.unwrap();
    let (tenant, integration) = mapped_tactical_tenant(db, &rt, &sim).await;
    let workers = Workers::start(&rt);
    let job =
        |kind: &'static str| JobRequest::for_integration(kind, tenant, "tacticalrmm", integration, Trigger::Admin);

    let devices = rt.queue.enqueue(job("sync-devices")).await.unwrap();
    let devices = wait_finished(&rt, &devices, Duration::from_secs(60)).await;
    assert_eq!(devices.status, JobStatus::Done, "{devices:?}");
    assert_eq!(devices.result.as_ref().unwrap()["counts"]["created"], json!(6), "{devices:?}");
    let software = rt.queue.enqueue(job("ingest-software")).await.unwrap();
    let software = wait_finished(&rt, &software, Duration::from_secs(60)).await;
    assert_eq!(software.status, JobStatus::Done, "{software:?}");

    let ing = Ingress::start(&rt, None).await;
    let agent = sim.agents()[0].agent_id.clone();
    let hook =
        json!({"agent_id": agent, "alert_id": "3001", "event": "trigger", "severity": "error", "message": "Disk"});
    let (status, reply) = ing.webhook(Some(&tenant.to_string()), Some(SECRET), hook.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    let hook_job = wait_finished(&rt, reply["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(hook_job.status, JobStatus::Done, "{hook_job:?}");
    workers.stop().await;

    // AlgaPSA's read paths.
    let t = tenant.to_string();
    let u = db.dialect().param(1, ColType::Uuid);
    let n = |sql: String| {
        let t = t.clone();
        async move { scalar(db, &sql, &[&t]).await.unwrap().unwrap().parse::<i64>().unwrap() }
    };
    // The asset list's RMM filter.
    let rmm_assets = n(format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM assets WHERE tenant = {u} AND rmm_provider IS NOT NULL AND rmm_device_id IS NOT NULL"
    ))
    .await;
    assert_eq!(rmm_assets, 6);
    let workstations =
        n(format!("SELECT CAST(COUNT(*) AS TEXT) FROM workstation_assets w JOIN assets a ON a.tenant = w.tenant AND a.asset_id = w.asset_id WHERE a.tenant = {u}")).await;
    let servers =
        n(format!("SELECT CAST(COUNT(*) AS TEXT) FROM server_assets s JOIN assets a ON a.tenant = s.tenant AND a.asset_id = s.asset_id WHERE a.tenant = {u}")).await;
    assert_eq!(workstations + servers, 6);
    // The software view the asset page reads.
    let software_rows =
        n(format!("SELECT CAST(COUNT(*) AS TEXT) FROM v_asset_software_details WHERE tenant = {u}")).await;
    assert!(software_rows > 0, "v_asset_software_details shows nothing");
    // Alerts by status.
    let active = n(format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM rmm_alerts WHERE tenant = {u} AND status = 'active' AND external_alert_id = '3001'"
    ))
    .await;
    assert_eq!(active, 1);

    // Coexistence: nothing in AlgaPSA's own job tables.
    let jobs = n(format!("SELECT CAST(COUNT(*) AS TEXT) FROM jobs WHERE tenant = {u}")).await;
    assert_eq!(jobs, 0, "rmm-sync wrote to AlgaPSA's jobs table");
    let pgboss = scalar(db, "SELECT CAST(COUNT(*) AS TEXT) FROM pgboss.job", &[]).await.unwrap();
    assert_eq!(pgboss.as_deref(), Some("0"), "rmm-sync wrote to pg-boss");

    // A column rmm-sync needs is gone: refused at start, naming it.
    db.execute("ALTER TABLE rmm_alerts DROP COLUMN external_alert_id CASCADE", &[]).await.unwrap();
    let err = db.migrate(SchemaMode::Algapsa).await.unwrap_err().to_string();
    assert!(err.contains("rmm_alerts.external_alert_id"), "{err}");
    drop(ing);
    store.cleanup().await;
}
