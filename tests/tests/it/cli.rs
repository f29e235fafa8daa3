//! The operator's commands as child processes: `rmm-sync integration set|test|show` against the
//! Tactical simulator, where tenant secrets land with no secret settings, and `rmm-sync demo` from
//! start to Ctrl-C.

use std::process::Stdio;
use std::time::Duration;

use rmm_shared::config::DatabaseSettings;
use rmm_shared::db::Db;
use rmm_tests::runtime::{rmm_sync_bin, rmm_sync_process};
use rmm_tests::sim::tactical::{DEFAULT_API_KEY, TacticalSim};
use rmm_tests::stores;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

async fn run(db_url: &str, secrets: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut c = rmm_sync_process(args[0], db_url, secrets);
    c.args(&args[1..]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("rmm-sync starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("ends").unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_set_test_and_show_go_through_the_admin_api_rules() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    let m = run(&url, &secrets, &["migrate"], None).await;
    assert_eq!(m.code, 0, "{}", m.stderr);
    let db = Db::connect(&url, &DatabaseSettings::default()).await.unwrap();
    let tenant = stores::tenant(&db).await.unwrap().to_string();
    db.close().await;
    let sim = TacticalSim::start_default().await.unwrap();

    // The key comes from standard input and is shown masked, never in full.
    let set = run(
        &url,
        &secrets,
        &["integration", "set", "tacticalrmm", "--tenant", &tenant, "--instance-url", sim.base_url(), "--api-key", "-"],
        Some(&format!("{DEFAULT_API_KEY}\n")),
    )
    .await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert!(!set.stdout.contains(DEFAULT_API_KEY) && !set.stderr.contains(DEFAULT_API_KEY));
    let v = set.json();
    assert_eq!(v["config"]["isActive"], false, "a new connection is inactive until tested: {v}");
    assert_eq!(v["credentials"]["hasApiKey"], true);
    let tail = &DEFAULT_API_KEY[DEFAULT_API_KEY.len() - 4..];
    assert!(v["credentials"]["apiKeyMasked"].as_str().unwrap().ends_with(tail));

    let test = run(&url, &secrets, &["integration", "test", "tacticalrmm", "--tenant", &tenant], None).await;
    assert_eq!(test.code, 0, "{}", test.stderr);
    assert_eq!(test.json()["success"], true);
    assert_eq!(test.json()["clients"], sim.clients().len());

    let show = run(
        &url,
        &secrets,
        &["integration", "show", "tacticalrmm", "--tenant", &tenant, "--webhook", "--mappings"],
        None,
    )
    .await;
    assert_eq!(show.code, 0, "{}", show.stderr);
    let v = show.json();
    assert_eq!(v["config"]["isActive"], true);
    assert!(v["webhook"]["url"].as_str().unwrap().ends_with(&format!("?tenant={tenant}")), "{v}");
    assert_eq!(v["webhook"]["headerName"], "X-Alga-Webhook-Secret");
    assert_eq!(v["mappings"], Value::Array(vec![]));

    // A wrong key: the test fails with the API's message and exit code 1; the integration is
    // inactive again (the credentials changed).
    let set =
        run(&url, &secrets, &["integration", "set", "tacticalrmm", "--tenant", &tenant, "--api-key", "nope"], None)
            .await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    let test = run(&url, &secrets, &["integration", "test", "tacticalrmm", "--tenant", &tenant], None).await;
    assert_eq!(test.code, 1, "{}", test.stdout);
    assert_eq!(test.json()["success"], false);
    assert!(test.stderr.contains("connection test failed"), "{}", test.stderr);

    // The admin API's validation, word for word.
    let bad = run(&url, &secrets, &["integration", "set", "tanium", "--tenant", &tenant, "--api-key", "x"], None).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("400") && bad.stderr.contains("are Tactical RMM settings"), "{}", bad.stderr);
    let none = run(&url, &secrets, &["integration", "show", "tanium", "--tenant", &tenant], None).await;
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("no tanium integration for this tenant"), "{}", none.stderr);
    let unknown = run(&url, &secrets, &["integration", "show", "datto", "--tenant", &tenant], None).await;
    assert!(unknown.code == 1 && unknown.stderr.contains("unknown provider"), "{}", unknown.stderr);
}

/// The demo from start to Ctrl-C: the summary it prints matches the simulated fleets, and the
/// URLs it prints answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_syncs_both_simulators_prints_a_summary_and_serves_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = tokio::process::Command::new(rmm_sync_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("RMM_SYNC_") || k.starts_with("SECRET_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    let agents_per_site = 4; // 3 clients × 2 sites × 4 = 24 agents
    let endpoints = 12;
    let level_devices = 10;
    let ninjaone_devices = 12;
    let mut child = cmd
        .current_dir(dir.path())
        .args([
            "demo",
            "--agents-per-site",
            &agents_per_site.to_string(),
            "--endpoints",
            &endpoints.to_string(),
            "--level-devices",
            &level_devices.to_string(),
            "--ninjaone-devices",
            &ninjaone_devices.to_string(),
        ])
        .env("RMM_SYNC_HTTP__BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(240), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            let done = l.starts_with("demo ready");
            out.push(l);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        let _ = child.start_kill();
        let o = child.wait_with_output().await.unwrap();
        panic!("demo did not get ready: {}\n{}", out.join("\n"), String::from_utf8_lossy(&o.stderr));
    }
    let text = out.join("\n");
    let field = |label: &str| -> String {
        out.iter()
            .find_map(|l| l.strip_prefix(label))
            .map(|r| r.split_whitespace().next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no {label:?} line in\n{text}"))
    };
    let count_of = |provider: &str| -> i64 {
        out.iter()
            .filter(|l| l.trim_start().starts_with(&format!("{provider} ")))
            .filter_map(|l| l.split_whitespace().last()?.parse::<i64>().ok())
            .sum()
    };
    // Every agent and endpoint became an asset (every remote organisation is mapped).
    assert_eq!(count_of("tacticalrmm"), 3 * 2 * agents_per_site as i64, "{text}");
    assert_eq!(count_of("tanium"), endpoints as i64, "{text}");
    assert_eq!(count_of("levelio"), level_devices as i64, "{text}");
    assert_eq!(count_of("ninjaone"), ninjaone_devices as i64, "{text}");
    let alerts = out.iter().find(|l| l.starts_with("Alerts")).unwrap();
    let open: i64 = alerts.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(open > 0, "{alerts}");
    assert!(alerts.contains("resolved"), "{alerts}");
    let titles: i64 = field("Software").parse().unwrap();
    assert!(titles > 0, "{text}");
    let pending: i64 = field("Patches").parse().unwrap();
    assert!(pending > 0, "{text}");
    for kind in [
        "sync-org",
        "sync-devices",
        "tanium-full-sync",
        "ingest-software",
        "backfill-alerts",
        "maintenance",
        "sync-agent",
        "levelio-sync-devices",
        "levelio-backfill-alerts",
        "levelio-sync-device",
        "ninjaone-sync-devices",
        "ninjaone-ingest-software",
        "ninjaone-sync-patches",
        "ninjaone-backfill-alerts",
        "ninjaone-sync-device",
    ] {
        assert!(
            out.iter().any(|l| l.trim_start().starts_with(&format!("{kind} "))),
            "no {kind} in the job table\n{text}"
        );
    }
    let key = field("Admin key");
    let tenant = field("Tenant");
    let base = format!("http://127.0.0.1:{port}");
    assert!(text.contains(&format!("Status page  {base}/status")), "{text}");

    let http = reqwest::Client::new();
    for path in ["/healthz", "/docs", "/metrics", "/openapi.json"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let status = http.get(format!("{base}/status")).basic_auth("operator", Some(&key)).send().await.unwrap();
    assert_eq!(status.status(), 200);
    assert!(status.text().await.unwrap().contains("tanium-full-sync"));
    let v: Value = http
        .get(format!("{base}/api/v1/tenants/{tenant}/integrations/tanium"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["summary"]["syncedDevices"], endpoints as i64, "{v}");
    assert_eq!(v["config"]["isActive"], true);

    // Ctrl-C ends it cleanly.
    let pid = child.id().unwrap().to_string();
    assert!(tokio::process::Command::new("kill").args(["-INT", &pid]).status().await.unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("stops").unwrap();
    assert!(status.success(), "{status:?}");
    assert!(dir.path().join("data/demo/rmm-sync.db").exists());
}

/// `rmm-sync <args>` in `cwd` with no secret, database or rmm-sync settings of the environment (as
/// a new user runs it from a checkout), logging at info.
async fn run_in(cwd: &std::path::Path, db_url: Option<&str>, args: &[&str], stdin: Option<&str>) -> Out {
    let mut c = tokio::process::Command::new(rmm_sync_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("RMM_SYNC_")
            || k.starts_with("SECRET_")
            || k.starts_with("VAULT_")
            || k.starts_with("TENANT_")
            || k == "DATABASE_URL"
            || k == "RUST_LOG"
        {
            c.env_remove(k);
        }
    }
    if let Some(url) = db_url {
        c.env("DATABASE_URL", url);
    }
    c.current_dir(cwd)
        .args(args)
        .env("RMM_SYNC_LOG__LEVEL", "info")
        .env("RMM_SYNC_SCHEDULER__ENABLED", "false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().expect("rmm-sync starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("ends").unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// With no secret settings a tenant secret set through the CLI lands in `./data/secrets` (mode
/// 0700 directories, a 0600 file), not in `./secrets`, and start-up says where secrets are kept; a
/// non-empty legacy `./secrets` keeps being read and written, with a warning naming the new place
/// and the commands to move there.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_secrets_default_to_the_data_dir_and_a_legacy_secrets_dir_keeps_working() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    if std::path::Path::new("/run/secrets").is_dir() {
        // /run/secrets comes before ./data/secrets (Docker and Kubernetes secrets): the default
        // cannot be seen on this machine.
        eprintln!("skipped: /run/secrets exists here and is the filesystem secrets' base");
        return;
    }
    let top = tempfile::tempdir().unwrap();
    let work = top.path().join("checkout");
    // An empty ./secrets (and ../secrets) is not a legacy store: it is ignored.
    std::fs::create_dir_all(work.join("secrets")).unwrap();
    std::fs::create_dir_all(top.path().join("secrets")).unwrap();

    // The default store, ./data/rmm-sync.db, in the working directory.
    let m = run_in(&work, None, &["migrate"], None).await;
    assert_eq!(m.code, 0, "{}", m.stderr);
    let db_path = work.join("data/rmm-sync.db");
    assert!(db_path.exists());
    let url = format!("sqlite://{}", db_path.display());
    let db = Db::connect(&url, &DatabaseSettings::default()).await.unwrap();
    let tenant = stores::tenant(&db).await.unwrap();
    db.close().await;
    let t = tenant.to_string();

    let key = "first-key-0000-abcd";
    let set = run_in(
        &work,
        None,
        &[
            "integration",
            "set",
            "tacticalrmm",
            "--tenant",
            &t,
            "--instance-url",
            "https://api.example.test",
            "--api-key",
            "-",
        ],
        Some(&format!("{key}\n")),
    )
    .await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(set.json()["credentials"]["hasApiKey"], true, "{}", set.stdout);
    let base = work.join("data/secrets");
    let file = base.join("tenants").join(&t).join("tacticalrmm_api_key");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
    for d in [base.clone(), base.join("tenants"), base.join("tenants").join(&t)] {
        assert_eq!(mode(&d), 0o700, "{} is not private", d.display());
    }
    assert_eq!(mode(&file), 0o600);
    assert_eq!(std::fs::read_dir(work.join("secrets")).unwrap().count(), 0, "something was written to ./secrets");
    assert!(
        set.stderr.contains("secrets are read from") && set.stderr.contains(&base.display().to_string()),
        "start-up does not say where secrets are kept: {}",
        set.stderr
    );
    assert!(!set.stderr.contains("mv "), "a warning about an empty ./secrets: {}", set.stderr);

    // Another working directory with secrets in ./secrets, as earlier versions left them.
    let old = top.path().join("old-checkout");
    let legacy = old.join("secrets");
    let legacy_file = legacy.join("tenants").join(&t).join("tacticalrmm_api_key");
    std::fs::create_dir_all(legacy_file.parent().unwrap()).unwrap();
    std::fs::write(&legacy_file, "legacy-key-9876\n").unwrap();
    let show = run_in(&old, Some(&url), &["integration", "show", "tacticalrmm", "--tenant", &t], None).await;
    assert_eq!(show.code, 0, "{}", show.stderr);
    let v = show.json();
    assert_eq!(v["credentials"]["hasApiKey"], true, "{v}");
    assert!(v["credentials"]["apiKeyMasked"].as_str().unwrap().ends_with("9876"), "not read from ./secrets: {v}");
    let new_place = old.join("data/secrets").display().to_string();
    for needle in [legacy.display().to_string(), new_place.clone(), "mv ".into(), "chmod -R go-rwx".into()] {
        assert!(show.stderr.contains(&needle), "no {needle:?} in the warning: {}", show.stderr);
    }
    assert!(show.stderr.contains("WARN"), "{}", show.stderr);
    // Writes still go there too, and nothing appears in ./data/secrets.
    let set = run_in(
        &old,
        Some(&url),
        &["integration", "set", "tacticalrmm", "--tenant", &t, "--api-key", "legacy-key-5555"],
        None,
    )
    .await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(std::fs::read_to_string(&legacy_file).unwrap().trim(), "legacy-key-5555");
    assert!(!old.join("data/secrets").exists(), "a write went to {new_place}");
}
