//! Worker processes that die or are stopped: a device sync whose worker is SIGKILLed is resumed by
//! another worker from its finished units and leaves the same rows as an undisturbed run; SIGTERM
//! stops the ingress at once, lets the running job finish and leaves unstarted jobs queued.

use std::time::{Duration, Instant};

use rmm_jobs::{JobRequest, JobStatus, Trigger};
use rmm_shared::config::QueueBackend;
use rmm_shared::db::Db;
use rmm_shared::db::sql::ColType;
use rmm_tests::runtime::{
    Workers, fast_settings, mapped_tactical_tenant, rmm_sync_process, runtime, wait_finished, wait_listening,
    wait_status,
};
use rmm_tests::sim::tactical::{FleetSpec, SimConfig, TacticalSim};
use rmm_tests::stores::{self, rows, scalar};
use serde_json::json;
use uuid::Uuid;

/// What a device sync leaves behind for a tenant, without the ids that differ between tenants.
async fn device_rows(db: &Db, tenant: Uuid) -> Vec<Vec<Option<String>>> {
    let d = db.dialect();
    let t = tenant.to_string();
    let mut out = rows(
        db,
        &format!(
            "SELECT a.rmm_device_id, a.name, a.asset_type, a.status, a.serial_number, \
             CAST(w.asset_id IS NOT NULL AS TEXT), CAST(s.asset_id IS NOT NULL AS TEXT), m.external_realm_id, m.sync_status \
             FROM assets a \
             LEFT JOIN workstation_assets w ON w.tenant = a.tenant AND w.asset_id = a.asset_id \
             LEFT JOIN server_assets s ON s.tenant = a.tenant AND s.asset_id = a.asset_id \
             LEFT JOIN tenant_external_entity_mappings m ON m.tenant = a.tenant AND m.alga_entity_id = CAST(a.asset_id AS TEXT) \
             WHERE a.tenant = {} ORDER BY a.rmm_device_id",
            d.param(1, ColType::Uuid)
        ),
        &[&t],
    )
    .await
    .unwrap();
    let mappings = scalar(
        db,
        &format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM tenant_external_entity_mappings WHERE tenant = {}",
            d.param(1, ColType::Uuid)
        ),
        &[&t],
    )
    .await
    .unwrap();
    out.push(vec![mappings]);
    out
}

/// Agent-list requests the simulator saw for one Tactical client.
fn agent_list_calls(sim: &TacticalSim, client_pk: i64) -> usize {
    let needle = format!("client_id={client_pk}");
    sim.requests()
        .iter()
        .filter(|r| r.route == "GET /beta/v1/agent/" && r.query.as_deref().is_some_and(|q| q.contains(&needle)))
        .count()
}

/// Enqueues a full `sync-devices` of the tenant's Tactical integration.
async fn enqueue_sync(rt: &rmm_jobs::Runtime, tenant: Uuid, integration: Uuid) -> String {
    rt.queue
        .enqueue(JobRequest::for_integration("sync-devices", tenant, "tacticalrmm", integration, Trigger::Admin))
        .await
        .unwrap()
}

async fn finished_units(db: &Db, parent: &str) -> Vec<String> {
    let p = rmm_shared::db::sql::P(db.dialect());
    db.fetch::<(String,)>(
        &format!("SELECT unit_key FROM {} WHERE parent_job_id = {} AND status = 'done'", p.t("job_units"), p.text(1)),
        &[parent],
    )
    .await
    .unwrap()
    .into_iter()
    .map(|(k,)| k)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_sync_whose_worker_is_sigkilled_resumes_from_its_finished_units() {
    let store = stores::postgres().await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    // 6 Tactical clients of 30 agents; every request takes 300 ms, so each unit takes about a second.
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(11, 6, 1, 30))).await.unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let (clean_tenant, clean_integration) = mapped_tactical_tenant(db, &rt, &sim).await;
    let (tenant, integration) = mapped_tactical_tenant(db, &rt, &sim).await;
    sim.set_latency(Duration::from_millis(300));

    // A worker process, one unit at a time, starts the sync…
    let id = enqueue_sync(&rt, tenant, integration).await;
    let mut child =
        rmm_sync_process("worker", &store.url, dir.path()).env("RMM_SYNC_QUEUE__CONCURRENCY", "1").spawn().unwrap();
    // …and is killed after two of the six units are written.
    let start = Instant::now();
    let done_before = loop {
        let done = finished_units(db, &id).await;
        if done.len() >= 2 {
            break done;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the worker process did not finish two units");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let victim = rt.store().get(&id).await.unwrap().unwrap();
    assert_eq!(victim.status, JobStatus::Running, "{victim:?}");
    let done_before = finished_units(db, &id).await.len().max(done_before.len());
    assert!(done_before < 6, "the sync finished before the kill; the test proves nothing");
    let calls_before: Vec<usize> = sim.clients().iter().map(|c| agent_list_calls(&sim, c.id)).collect();
    let finished: Vec<String> = finished_units(db, &id).await;

    // Another worker takes the sync over and runs only the units that had not finished.
    let workers = Workers::start(&rt);
    let job = wait_finished(&rt, &id, Duration::from_secs(90)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(job.attempts, 2, "{job:?}");
    assert_eq!(job.progress_processed, 6, "{job:?}");
    let counts = &job.result.as_ref().unwrap()["counts"];
    assert_eq!(counts["units"], json!(6), "{job:?}");
    assert_eq!(counts["units_failed"], json!(0), "{job:?}");
    // One run row for the job, continued by the second attempt and finished.
    let runs = scalar(
        db,
        &format!(
            "SELECT CAST(COUNT(*) AS TEXT) || '/' || CAST(COUNT(finished_at) AS TEXT) FROM {} WHERE job_id = '{id}'",
            db.ours("sync_runs")
        ),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(runs.as_deref(), Some("1/1"), "sync_runs of the job (rows/finished)");
    for (c, before) in sim.clients().iter().zip(&calls_before) {
        let after = agent_list_calls(&sim, c.id);
        if finished.contains(&c.id.to_string()) {
            assert_eq!(after, *before, "finished unit {} was fetched again", c.id);
        } else {
            assert!(after > *before, "unit {} was not run after the takeover", c.id);
        }
    }

    // An undisturbed run of the same fleet leaves the same rows.
    sim.set_latency(Duration::ZERO);
    let clean = enqueue_sync(&rt, clean_tenant, clean_integration).await;
    let job = wait_finished(&rt, &clean, Duration::from_secs(60)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    workers.stop().await;
    let killed_rows = device_rows(db, tenant).await;
    assert_eq!(killed_rows.len(), 6 * 30 + 1, "one asset per agent, no duplicates");
    assert_eq!(killed_rows, device_rows(db, clean_tenant).await);
    store.cleanup().await;
}

/// The queue's jobs and workers and the end of a worker's log, for a failure message.
async fn queue_state(db: &Db, log: &std::path::Path) -> String {
    let jobs = rows(
        db,
        "SELECT id, job_type, status, lock_by, CAST(attempts AS TEXT) FROM apalis.jobs \
         WHERE status NOT IN ('Done', 'Killed') ORDER BY id",
        &[],
    )
    .await;
    let workers = rows(
        db,
        "SELECT id, CAST(EXTRACT(EPOCH FROM now() - last_seen) AS TEXT) FROM apalis.workers ORDER BY last_seen DESC LIMIT 30",
        &[],
    )
    .await;
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    format!(
        "unfinished tasks: {jobs:?}\nworkers (seconds since last heartbeat): {workers:?}\nlog:\n{}",
        tail.join("\n")
    )
}

/// Ten rounds in a row: a worker process syncing 5,000 agents (20 Tactical clients, so 20 units)
/// is SIGKILLed at a random point of the sync; another worker takes the sync over. After every
/// round the tenant's tables equal those of an undisturbed run of the same fleet: the same assets,
/// extension rows and mappings, no duplicates. The random points come from a seed printed with
/// the test (`RMM_TEST_KILL_SEED` repeats a run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_sigkills_at_random_points_of_a_5000_agent_sync_leave_the_rows_of_an_undisturbed_run() {
    use rand::{Rng, SeedableRng};
    const ROUNDS: usize = 10;
    let store = stores::postgres().await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let fleet = FleetSpec::new(23, 20, 5, 50);
    assert_eq!(fleet.agent_count(), 5_000);
    let sim = TacticalSim::start(SimConfig::with_fleet(fleet)).await.unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let seed: u64 = std::env::var("RMM_TEST_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("kill points from RMM_TEST_KILL_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // The undisturbed run, and how long it takes.
    let (clean_tenant, clean_integration) = mapped_tactical_tenant(db, &rt, &sim).await;
    let workers = Workers::start(&rt);
    let clean = enqueue_sync(&rt, clean_tenant, clean_integration).await;
    let started = Instant::now();
    let job = wait_finished(&rt, &clean, Duration::from_secs(300)).await;
    let clean_took = started.elapsed();
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    workers.stop().await;
    let clean_rows = device_rows(db, clean_tenant).await;
    assert_eq!(clean_rows.len(), 5_000 + 1);

    let mut killed_mid_run = 0;
    for round in 1..=ROUNDS {
        let (tenant, integration) = mapped_tactical_tenant(db, &rt, &sim).await;
        let id = enqueue_sync(&rt, tenant, integration).await;
        let mut child = rmm_sync_process("worker", &store.url, dir.path()).spawn().unwrap();
        wait_status(&rt, &id, JobStatus::Running, Duration::from_secs(60)).await;
        // A random point of the sync: that share of the undisturbed run's time, or of its units if
        // this run gets there sooner (the undisturbed run may have shared the machine with other
        // tests, so this one can be faster).
        let share = rng.random_range(0.05..0.95);
        let running = Instant::now();
        loop {
            let now = rt.store().get(&id).await.unwrap().unwrap();
            let units_done =
                now.progress_total.is_some_and(|t| t > 0 && now.progress_processed as f64 >= share * t as f64);
            if units_done || running.elapsed() >= clean_took.mul_f64(share) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let point = running.elapsed();
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        let at_kill = rt.store().get(&id).await.unwrap().unwrap();
        if !at_kill.status.is_finished() {
            killed_mid_run += 1;
        }
        // Another worker process takes the sync over, as in a deployment (a fresh process, not
        // workers restarted inside this one).
        let log = dir.path().join(format!("rescuer-{round}.log"));
        let mut rescuer = rmm_sync_process("worker", &store.url, dir.path())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let takeover = Instant::now();
        let job = loop {
            let job = rt.store().get(&id).await.unwrap().unwrap();
            if job.status.is_finished() {
                break job;
            }
            let exited = rescuer.try_wait().unwrap();
            if exited.is_some() || takeover.elapsed() > Duration::from_secs(300) {
                panic!(
                    "round {round}: the sync was not taken over (rescuer {exited:?}, {:?} after the kill): {job:?}\n{}",
                    takeover.elapsed(),
                    queue_state(db, &log).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let rest = takeover.elapsed();
        rescuer.start_kill().unwrap();
        rescuer.wait().await.unwrap();
        assert_eq!(job.status, JobStatus::Done, "round {round}: {job:?}");
        let rows = device_rows(db, tenant).await;
        assert_eq!(rows.len(), 5_000 + 1, "round {round}: one asset per agent, no duplicates");
        assert!(
            rows == clean_rows,
            "round {round} (killed {point:?} into the sync) left other rows than the undisturbed run"
        );
        eprintln!(
            "round {round}: killed {:.2} s in at {}/{} units; taken over and finished in {:.1} s, attempts {}",
            point.as_secs_f64(),
            at_kill.progress_processed,
            at_kill.progress_total.unwrap_or(0),
            rest.as_secs_f64(),
            job.attempts
        );
    }
    assert!(killed_mid_run >= ROUNDS - 2, "only {killed_mid_run} of {ROUNDS} kills hit a running sync");
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_ingress_finishes_the_running_job_and_leaves_unstarted_ones_queued() {
    let store = stores::postgres().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&store.db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = rmm_sync_process("serve", &store.url, dir.path())
        .env("RMM_SYNC_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("RMM_SYNC_QUEUE__CONCURRENCY", "1")
        .env("RMM_SYNC_WORKER__SHUTDOWN_TIMEOUT_SECS", "30")
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    wait_listening(&http, &base).await;
    let running =
        rt.queue.enqueue(JobRequest::global("test-sleep", Trigger::Admin).args(json!({"ms": 4000}))).await.unwrap();
    let job = wait_status(&rt, &running, JobStatus::Running, Duration::from_secs(30)).await;
    let worker = job.worker.unwrap();
    let queued =
        rt.queue.enqueue(JobRequest::global("test-sleep", Trigger::Admin).args(json!({"ms": 200}))).await.unwrap();

    let pid = child.id().unwrap();
    let kill = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
    assert!(kill.success());
    // The ingress stops accepting at once, while the job still runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(http.get(format!("{base}/healthz")).send().await.is_err(), "the ingress still accepts after SIGTERM");
    let job = rt.store().get(&running).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running, "{job:?}");

    // The running job finishes in the shutdown time, then the process exits cleanly.
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "{status:?}");
    let job = rt.store().get(&running).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Done, 1), "{job:?}");
    assert_eq!(job.worker.as_deref(), Some(worker.as_str()));
    let q = rt.store().get(&queued).await.unwrap().unwrap();
    assert_eq!(q.status, JobStatus::Pending, "the unstarted job was started or lost: {q:?}");

    // The unstarted job is still in the queue: the next worker runs it, first attempt.
    let workers = Workers::start(&rt);
    let q = wait_finished(&rt, &queued, Duration::from_secs(30)).await;
    assert_eq!((q.status, q.attempts), (JobStatus::Done, 1), "{q:?}");
    workers.stop().await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_that_fails_for_good_is_reported_and_the_other_units_still_run() {
    let store = stores::postgres().await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(13, 3, 1, 4))).await.unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let (tenant, integration) = mapped_tactical_tenant(db, &rt, &sim).await;
    // The first agent listing is refused (a 400 is not retried): that unit fails for good.
    sim.inject(rmm_tests::sim::tactical::Fault::status(400).on("GET /beta/v1/agent/").times(1));
    let workers = Workers::start(&rt);
    let id = enqueue_sync(&rt, tenant, integration).await;
    let job = wait_finished(&rt, &id, Duration::from_secs(60)).await;
    workers.stop().await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let counts = &job.result.as_ref().unwrap()["counts"];
    assert_eq!((counts["units"].clone(), counts["units_failed"].clone()), (json!(3), json!(1)), "{job:?}");
    assert_eq!(counts["created"], json!(8), "the two other clients' agents are synced: {job:?}");
    let d = db.dialect();
    let row = rows(
        db,
        &format!(
            "SELECT sync_status, sync_error, CAST(last_incremental_sync_at IS NULL AS TEXT) FROM rmm_integrations WHERE tenant = {}",
            d.param(1, ColType::Uuid)
        ),
        &[&tenant.to_string()],
    )
    .await
    .unwrap();
    assert_eq!(row[0][0].as_deref(), Some("error"), "{row:?}");
    let error = row[0][1].clone().unwrap_or_default();
    assert!(error.starts_with("Tactical client "), "{error}");
    assert!(error.contains("rejected the request"), "{error}");
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_serves_probes_and_metrics_when_asked() {
    let store = stores::postgres().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = rmm_sync_process("worker", &store.url, dir.path())
        .env("RMM_SYNC_WORKER__METRICS_BIND", format!("127.0.0.1:{port}"))
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let ready = loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the worker did not open its metrics listener");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.status(), 200);
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("# TYPE rmm_sync_upstream_calls_total counter"), "{metrics}");
    assert!(metrics.contains("# TYPE rmm_sync_queue_depth gauge"), "{metrics}");
    // Only the operator routes: no webhook or admin API on a worker.
    let hook = http.post(format!("{base}/api/webhooks/tacticalrmm?tenant=x")).send().await.unwrap();
    assert_eq!(hook.status(), 404);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_command_follows_its_job_and_exits_non_zero_when_it_fails() {
    let store = stores::postgres().await.unwrap();
    let db = &store.db;
    let dir = tempfile::tempdir().unwrap();
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(17, 2, 1, 2))).await.unwrap();
    let rt = runtime(db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
    let (tenant, _) = rmm_tests::runtime::tactical_tenant(db, &rt, Some(&sim)).await;
    let workers = Workers::start(&rt);
    let t = tenant.to_string();
    let sync = || {
        let mut c = rmm_sync_process("sync", &store.url, dir.path());
        c.args(["tacticalrmm", "sync-org", "--tenant", &t, "--wait"]);
        c
    };

    let out = sync().output().await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let id = stdout.trim().to_owned();
    assert_eq!(id.len(), 26, "prints the job id: {stdout}");
    // Not a terminal: plain progress lines, then the counts.
    assert!(stderr.contains("sync-org done"), "{stderr}");
    assert_eq!(rt.store().get(&id).await.unwrap().unwrap().status, JobStatus::Done);

    // Tactical refuses the key: the job fails and so does the command.
    sim.expire_api_key(rmm_tests::sim::tactical::DEFAULT_API_KEY);
    let out = sync().output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("sync-org failed"), "{stderr}");

    // jobs list / show read the same jobs.
    let mut list = rmm_sync_process("jobs", &store.url, dir.path());
    let out = list.args(["list", "--tenant", &t]).output().await.unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listing.lines().count(), 2, "{listing}");
    assert!(listing.lines().any(|l| l.starts_with(&id) && l.contains("\tdone\t")), "{listing}");
    let mut show = rmm_sync_process("jobs", &store.url, dir.path());
    let out = show.args(["show", &id]).output().await.unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["status"], json!("done"));
    workers.stop().await;
    store.cleanup().await;
}

/// A queue consumer that keeps failing is restarted `worker.max_restarts` times; after that the
/// process stops every worker and exits non-zero (for its supervisor to start a fresh one) rather
/// than living on with a queue nobody serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_queue_consumers_keep_failing_exits_non_zero() {
    let store = stores::postgres().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let mut child = rmm_sync_process("worker", &store.url, dir.path())
        .env("RMM_SYNC_WORKER__MAX_RESTARTS", "2")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // (The queue's tables appear when the worker sets the queue up.)
    let registered = "SELECT CAST(COUNT(*) AS TEXT) FROM apalis.workers";
    while !matches!(scalar(&store.db, registered, &[]).await, Ok(Some(n)) if n != "0") {
        assert!(start.elapsed() < Duration::from_secs(30), "no worker registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "the worker exited on its own");
    // Every fetch fails from now on.
    store.db.execute("ALTER FUNCTION apalis.get_jobs(TEXT, TEXT, INTEGER) RENAME TO get_jobs_gone", &[]).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("the worker exits").unwrap();
    assert!(!status.success(), "{status:?}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("queue consumer failed too often; stopping the workers"), "{log}");
    assert!(log.contains("a queue consumer failed more than worker.max_restarts times"), "{log}");
    store.cleanup().await;
}
