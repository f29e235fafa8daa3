//! The Tactical client against the simulator, and the mapping against the recorded responses of
//! a real Tactical RMM 1.5.1 server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use rmm_shared::http::{HttpClient, HttpConfig, RetryPolicy, UpstreamRequest};
use rmm_shared::ingest::snapshot::{AgentStatus, AssetType};
use rmm_shared::providers::tactical::error::{
    MSG_5XX, MSG_401, MSG_404, MSG_429, MSG_DASHBOARD_HOST, MSG_INVALID_RESPONSE, MSG_UNREACHABLE,
};
use rmm_shared::providers::tactical::mapping::{self, AgentScope, MappingContext, SiteIndex};
use rmm_shared::providers::tactical::model::{
    Agent, Alert, Client, NOT_KEPT, Page, RawRecord, Site, SoftwareRow, WmiFacts,
};
use rmm_shared::providers::tactical::parse;
use rmm_shared::providers::tactical::{
    AgentQuery, CheckCreds, FnTokenSink, LoginGate, TacticalAuth, TacticalClient, TacticalConfig, TacticalError,
    TokenSink,
};
use rmm_tests::sim::tactical::{
    DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME, Fault, FleetSpec, LoginThrottle, NewAlert, SeenAuth,
    SimConfig, TOTP_CODE, TOTP_PASSWORD, TOTP_USERNAME, TacticalSim,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use uuid::Uuid;

// ---- helpers ------------------------------------------------------------------------------------

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).unwrap_or_else(|e| panic!("parse {name}: {e}"))
}

/// When the fixtures were recorded: the login token (5 h TTL) expires at 12:27:39.
fn recorded_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 7, 27, 39).unwrap()
}

fn fast_http() -> HttpConfig {
    HttpConfig {
        request_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            retry_after_threshold: Duration::from_secs(5),
        },
        rate_limit: None,
        provider: "tacticalrmm",
        user_agent: "rmm-sync-tests".into(),
        max_body_bytes: rmm_shared::http::DEFAULT_MAX_BODY_BYTES,
    }
}

fn api_key_client(sim: &TacticalSim, key: &str) -> TacticalClient {
    let mut config = TacticalConfig::new(sim.base_url(), TacticalAuth::ApiKey(SecretString::from(key.to_owned())));
    config.http = fast_http();
    TacticalClient::new(config).unwrap()
}

fn knox_client(sim: &TacticalSim, user: &str, password: &str, token: Option<&str>) -> TacticalClient {
    let auth = TacticalAuth::Knox {
        username: user.into(),
        password: SecretString::from(password.to_owned()),
        token: token.map(|t| SecretString::from(t.to_owned())),
    };
    let mut config = TacticalConfig::new(sim.base_url(), auth);
    config.http = fast_http();
    TacticalClient::new(config).unwrap()
}

type SeenTokens = Arc<std::sync::Mutex<Vec<String>>>;

/// Collects every token handed to the `on_token_refreshed` hook.
fn recording_sink() -> (Arc<dyn TokenSink>, SeenTokens) {
    let seen: SeenTokens = Arc::default();
    let s = seen.clone();
    let sink = Arc::new(FnTokenSink(move |t: &SecretString| s.lock().unwrap().push(t.expose_secret().to_owned())));
    (sink, seen)
}

fn assert_no_secret(err: &TacticalError, secrets: &[&str]) {
    let texts = [err.to_string(), err.diagnostic(), format!("{err:?}")];
    for t in &texts {
        for s in secrets {
            assert!(!t.contains(s), "error text leaks a credential: {t}");
        }
    }
}

/// Raw GET with the default API key, for shape checks.
async fn raw_get(sim: &TacticalSim, path_and_query: &str) -> (u16, Value) {
    let http = HttpClient::new(fast_http()).unwrap();
    let url = url::Url::parse(&format!("{}{path_and_query}", sim.base_url())).unwrap();
    let req =
        UpstreamRequest::get(url).secret_header("x-api-key", &SecretString::from(DEFAULT_API_KEY.to_owned())).unwrap();
    match http.send(req.retry(RetryPolicy::none())).await {
        Ok(r) => (r.status.as_u16(), serde_json::from_slice(&r.body).unwrap_or(Value::Null)),
        Err(e) => (e.status().unwrap_or(0), serde_json::from_str(e.body().unwrap_or("null")).unwrap_or(Value::Null)),
    }
}

async fn raw_post(sim: &TacticalSim, path: &str, body: &Value) -> (u16, String) {
    let http = HttpClient::new(fast_http()).unwrap();
    let url = url::Url::parse(&format!("{}{path}", sim.base_url())).unwrap();
    let req = UpstreamRequest::post(url).json(body).unwrap().retry(RetryPolicy::none());
    match http.send(req).await {
        Ok(r) => (r.status.as_u16(), String::from_utf8_lossy(&r.body).into_owned()),
        Err(e) => (e.status().unwrap_or(0), e.body().unwrap_or("").to_owned()),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Same keys, and the same JSON type wherever both sides are non-null.
fn assert_same_shape(what: &str, real: &Value, sim: &Value) {
    let (Some(r), Some(s)) = (real.as_object(), sim.as_object()) else {
        panic!("{what}: not objects: {real} / {sim}");
    };
    let rk: HashSet<&String> = r.keys().collect();
    let sk: HashSet<&String> = s.keys().collect();
    assert_eq!(
        rk,
        sk,
        "{what}: keys differ (real-only {:?}, sim-only {:?})",
        rk.difference(&sk).collect::<Vec<_>>(),
        sk.difference(&rk).collect::<Vec<_>>()
    );
    for (k, rv) in r {
        let sv = &s[k];
        if rv.is_null() || sv.is_null() {
            continue;
        }
        let (rt, st) = (type_name(rv), type_name(sv));
        let numeric = |t: &str| t == "int" || t == "float";
        assert!(rt == st || (numeric(rt) && numeric(st) && k == "boot_time"), "{what}.{k}: real {rt}, sim {st}");
    }
}

// ---- mapping against the recorded fixtures ---------------------------------------------------

fn ctx_at(now: DateTime<Utc>) -> MappingContext {
    MappingContext { integration_id: Uuid::nil(), now }
}

fn fixture_sites() -> SiteIndex {
    // The recorded site page holds 2 of the 9 sites; the clients own sites round-robin.
    let mut sites: Vec<Site> = fixture("beta_sites.json")["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Site::from_value(v.clone()).unwrap())
        .collect();
    for id in 3..=9 {
        sites.push(
            Site::from_value(serde_json::json!({"id": id, "client": (id - 1) / 3 + 1, "name": format!("site {id}")}))
                .unwrap(),
        );
    }
    SiteIndex::new(sites)
}

#[test]
fn every_recorded_beta_agent_maps_correctly() {
    let now = recorded_at();
    let rows = fixture("beta_agents_p1000.json");
    let page: Page<Value> = serde_json::from_value(rows).unwrap();
    assert_eq!(page.count, 50);
    assert!(page.next.is_none());
    // Tactical's own computed values for the same agents, by agent_id.
    let table: HashMap<String, Value> = fixture("agents.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["agent_id"].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    let sites = fixture_sites();
    for v in page.results {
        let agent = Agent::from_value(v.clone()).unwrap();
        let t = &table[agent.agent_id.as_deref().unwrap()];
        let scope = sites.scope_for(&agent, None).expect("every site is known");
        let snap = mapping::agent_snapshot(&agent, &scope, &ctx_at(now)).unwrap();
        let ext = snap.extension.clone().unwrap();
        let id = &snap.external_device_id;

        let expected_type = if v["monitoring_type"] == "server" { AssetType::Server } else { AssetType::Workstation };
        assert_eq!(snap.asset_type, expected_type, "{id}");
        assert_eq!(snap.display_name, v["hostname"].as_str().unwrap());
        assert_eq!(snap.external_scope_id, scope.client_id);
        assert_eq!(snap.asset_tag.as_deref(), Some(format!("tactical:{id}").as_str()));
        // Computed from wmi_detail exactly as Tactical computes it for its table.
        assert_eq!(snap.serial_number.as_deref(), t["serial_number"].as_str(), "{id} serial");
        assert_eq!(agent.local_ips().join(", "), t["local_ips"].as_str().unwrap(), "{id} local_ips");
        assert_eq!(agent.make_model().as_deref(), t["make_model"].as_str(), "{id} make_model");
        assert_eq!(
            agent.cpu_models(),
            t["cpu_model"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect::<Vec<_>>()
        );
        let first_v4 = t["local_ips"].as_str().unwrap().split(", ").next().unwrap().split('/').next().unwrap();
        assert_eq!(ext.lan_ip.as_deref(), Some(first_v4), "{id} lan_ip");
        assert_eq!(ext.wan_ip.as_deref(), v["public_ip"].as_str());
        let user = v["logged_in_username"].as_str().unwrap();
        assert_eq!(ext.current_user.as_deref(), if user == "None" { None } else { Some(user) }, "{id} user");
        assert_eq!(ext.agent_version.as_deref(), v["version"].as_str());
        assert_eq!(ext.os_version.as_deref(), v["operating_system"].as_str());
        assert_eq!(ext.os_type.as_deref(), Some(if v["plat"] == "windows" { "Windows" } else { "Linux" }));
        assert_eq!(ext.ram_gb, Some(Some(v["total_ram"].as_f64().unwrap())));
        assert!(matches!(&ext.disk_usage, Some(Some(d)) if d.len() == 1 && d[0].total_gb.is_some()));
        assert!(ext.system_info.as_ref().is_some_and(|s| s["make_model"] == t["make_model"]));

        // Status: AlgaPSA's rule at the recording time agrees with Tactical's own answer.
        let status = snap.agent_status.unwrap();
        assert_eq!(status.slug(), t["status"].as_str().unwrap(), "{id} status");
        assert_eq!(snap.last_seen_at, agent.last_seen_at());

        // Uptime from boot_time: at `now` when online, at the last check-in otherwise.
        let boot = v["boot_time"].as_f64().unwrap();
        assert_eq!(ext.last_reboot_at.map(|d| d.timestamp()), Some(boot.floor() as i64));
        let at = if status == AgentStatus::Online { now } else { agent.last_seen_at().unwrap() };
        let expected = (at - ext.last_reboot_at.unwrap()).num_seconds();
        assert_eq!(ext.uptime_seconds, (expected >= 0).then_some(expected), "{id} uptime");
        if status == AgentStatus::Online {
            assert!(ext.uptime_seconds.unwrap() > 0);
        }

        let meta = snap.metadata.as_ref().unwrap();
        assert_eq!(meta["site_id"], Value::from(v["site"].as_i64().unwrap().to_string()));
        assert_eq!(meta["raw"], without_blobs(&v), "raw is the agent object without wmi_detail and services");
    }
}

#[test]
fn every_recorded_table_row_maps_correctly() {
    let now = recorded_at();
    for row in fixture("agents.json").as_array().unwrap() {
        let agent = Agent::from_value(row.clone()).unwrap();
        let scope =
            AgentScope { client_id: "1".into(), site_id: None, site_name: agent.site_name().map(str::to_owned) };
        let snap = mapping::agent_snapshot(&agent, &scope, &ctx_at(now)).unwrap();
        let ext = snap.extension.unwrap();
        let id = row["agent_id"].as_str().unwrap();
        assert_eq!(snap.asset_type.slug(), row["monitoring_type"].as_str().unwrap(), "{id}");
        assert_eq!(snap.serial_number.as_deref(), row["serial_number"].as_str());
        assert_eq!(
            snap.agent_status.unwrap().slug(),
            row["status"].as_str().unwrap(),
            "no thresholds: Tactical's status"
        );
        assert_eq!(snap.location.as_deref(), row["site_name"].as_str());
        let ips = row["local_ips"].as_str().unwrap();
        assert_eq!(ext.lan_ip.as_deref(), ips.split(", ").next().map(|ip| ip.split('/').next().unwrap()));
        // "-" is nobody; italic rows show the last user, not a current one.
        let shown = row["logged_username"].as_str().unwrap();
        let expected_user = if shown == "-" || row["italic"] == true { None } else { Some(shown) };
        assert_eq!(ext.current_user.as_deref(), expected_user, "{id} user");
        assert!(ext.last_reboot_at.is_some());
        assert_eq!(ext.cpu_model.clone().flatten().as_deref(), row["cpu_model"][0].as_str());
    }
}

#[test]
fn recorded_detail_endpoints_map_like_the_list_row() {
    let now = recorded_at();
    let ctx = ctx_at(now);
    let list_row = fixture("beta_agents_p1000.json")["results"][0].clone();
    let list = Agent::from_value(list_row).unwrap();
    let beta = Agent::from_value(fixture("beta_agent_1.json")).unwrap();
    let detail = Agent::from_value(fixture("agent_detail.json")).unwrap();
    assert_eq!(beta.id, None, "the beta detail has no id");
    assert_eq!(detail.client_name(), Some("Acme Inc."));
    assert_eq!(detail.site_name(), Some("HQ"));
    let sites = fixture_sites();
    let scope = sites.scope_for(&list, None).unwrap();
    assert_eq!(scope, AgentScope { client_id: "1".into(), site_id: Some("1".into()), site_name: Some("HQ".into()) });
    let a = mapping::agent_snapshot(&list, &scope, &ctx).unwrap();
    for other in [&beta, &detail] {
        let b = mapping::agent_snapshot(other, &sites.scope_for(other, None).unwrap(), &ctx).unwrap();
        assert_eq!(a.external_device_id, b.external_device_id);
        assert_eq!(a.serial_number, b.serial_number);
        assert_eq!(a.asset_type, b.asset_type);
        assert_eq!(a.agent_status, b.agent_status);
        let (ea, eb) = (a.extension.clone().unwrap(), b.extension.unwrap());
        assert_eq!(
            (ea.lan_ip, ea.wan_ip, ea.current_user, ea.uptime_seconds),
            (eb.lan_ip, eb.wan_ip, eb.current_user, eb.uptime_seconds)
        );
    }
    assert_eq!(beta.status.as_deref(), Some("online"));
    assert_eq!(detail.serial_number, None, "the non-beta detail has no serial_number; wmi_detail gives it");
    assert_eq!(detail.serial_number().as_deref(), Some("5B94E13675"));
}

#[test]
fn recorded_lists_parse() {
    let clients: Vec<Client> = fixture("beta_clients.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Client::from_value(v.clone()).unwrap())
        .collect();
    assert_eq!(
        clients.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["Acme Inc.", "Globex Inc.", "Initech Inc."]
    );
    let sites: Page<Value> = serde_json::from_value(fixture("beta_sites.json")).unwrap();
    assert_eq!((sites.count, sites.results.len()), (9, 2));
    let alerts: Vec<Alert> = fixture("alerts_filtered.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Alert::from_value(v.clone()).unwrap())
        .collect();
    assert!(alerts.iter().all(|a| !a.resolved && !a.snoozed));
    assert!(alerts.iter().any(|a| a.hidden), "hidden alerts are part of the filtered answer");
    assert!(alerts.iter().all(|a| a.agent.is_some() && a.agent_id.is_some() && a.alert_time_at().is_some()));
    let rows: Vec<SoftwareRow> = serde_json::from_value(fixture("software.json")).unwrap();
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| r.agent > 0 && !r.software.is_empty()));
    assert!(rows.iter().flat_map(|r| &r.software).any(|i| i.publisher.is_none()), "some items are name+version only");
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    rmm_tests::tactical_fixture(name)
}

/// A record as [`Agent::raw`] keeps it: without the inventory blobs.
fn without_blobs(v: &Value) -> Value {
    let mut v = v.clone();
    let m = v.as_object_mut().unwrap();
    for k in NOT_KEPT {
        m.remove(k);
    }
    v
}

/// A recorded agent page read from its bytes as they arrive: each agent keeps its record without
/// `wmi_detail` and `services`, and from `wmi_detail` exactly what its whole tree gives, which is
/// what Tactical itself computes.
#[test]
fn recorded_agent_page_reads_compactly() {
    let page = parse::read_agent_page(&fixture_bytes("beta_agents_p1000.json")[..]).unwrap();
    let whole = fixture("beta_agents_p1000.json");
    let records = whole["results"].as_array().unwrap();
    assert!(!page.has_next);
    assert_eq!(page.items.len(), records.len());
    let table: HashMap<String, Value> = fixture("agents.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["agent_id"].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    let (mut windows, mut linux) = (0, 0);
    for (agent, v) in page.items.iter().zip(records) {
        let id = agent.agent_id.clone().unwrap();
        assert_eq!(agent.raw(), &without_blobs(v), "{id}");
        assert!(v.get("wmi_detail").is_some_and(Value::is_object) && v.get("services").is_some());
        let facts = agent.wmi.clone().expect("wmi_detail is read");
        assert_eq!(facts, WmiFacts::from_wmi_detail(&v["wmi_detail"], agent.is_posix()), "{id}");
        let t = &table[&id];
        assert_eq!(facts.serial_number.as_deref(), t["serial_number"].as_str(), "{id}");
        assert_eq!(facts.local_ips.join(", "), t["local_ips"].as_str().unwrap(), "{id}");
        assert_eq!(facts.make_model.as_deref(), t["make_model"].as_str(), "{id}");
        let cpus: Vec<String> = t["cpu_model"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().into()).collect();
        assert_eq!(facts.cpu_models, cpus, "{id}");
        if agent.is_posix() {
            linux += 1;
            assert_eq!(facts.cpu_cores, None);
        } else {
            windows += 1;
            assert!(facts.cpu_cores.is_some_and(|n| n > 0), "{id}");
        }
    }
    assert!(windows > 0 && linux > 0);
}

/// The detail answers read from their bytes: the record without the blobs, and from
/// `wmi_detail` the values Tactical computed into the same answer.
#[test]
fn recorded_agent_details_read_compactly() {
    for name in ["agent_detail.json", "beta_agent_1.json"] {
        let agent = parse::agent_detail_from_slice(&fixture_bytes(name)).unwrap();
        let v = fixture(name);
        assert_eq!(agent.raw(), &without_blobs(&v), "{name}");
        let facts = agent.wmi.clone().expect("wmi_detail is read");
        assert_eq!(facts.local_ips.join(", "), v["local_ips"].as_str().unwrap(), "{name}");
        assert_eq!(facts.make_model.as_deref(), v["make_model"].as_str(), "{name}");
        let cpus: Vec<String> = v["cpu_model"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().into()).collect();
        assert_eq!(facts.cpu_models, cpus, "{name}");
        assert_eq!(facts.serial_number.as_deref(), Some("5B94E13675"), "{name}");
    }
    let err = parse::agent_detail_from_slice(b"[1, 2]").unwrap_err();
    assert!(err.to_string().contains("expected an agent object"), "{err}");
}

/// Real agents send far more WMI than the recording: more sections, dozens of properties per
/// object, adapters without addresses, more disks. None of it changes what is read, and none of
/// it is kept.
#[test]
fn large_wmi_detail_reads_like_the_recorded_one() {
    let filler = |n: usize| -> Value {
        (0..n).map(|i| (format!("Property{i}"), Value::from("x".repeat(40)))).collect::<serde_json::Map<_, _>>().into()
    };
    let records = fixture("beta_agents_p1000.json")["results"].as_array().unwrap().clone();
    for v in records {
        let recorded = Agent::from_value(v.clone()).unwrap();
        let mut big = v.clone();
        let wmi = big["wmi_detail"].as_object_mut().unwrap();
        if recorded.is_posix() {
            let disks = wmi["disks"].as_array_mut().unwrap();
            disks.extend((0..2000).map(|i| Value::from(format!("LIO-ORG lun{i:04} iSCSI HDD sdx 100.0 GB"))));
        } else {
            // More properties on every object the mapping reads, after the ones it reads.
            for section in ["cpu", "bios", "comp_sys", "comp_sys_prod", "base_board", "network_config"] {
                for instance in wmi[section].as_array_mut().unwrap() {
                    for obj in instance.as_array_mut().unwrap() {
                        obj.as_object_mut().unwrap().extend(filler(40).as_object().unwrap().clone());
                    }
                }
            }
            // Adapters without an address (Tactical lists every WAN miniport).
            let adapters = wmi["network_config"].as_array_mut().unwrap();
            for i in 0..20 {
                let mut obj = filler(30);
                obj["IPAddress"] = Value::Null;
                obj["Description"] = Value::from(format!("WAN Miniport {i}"));
                adapters.insert(0, json!([obj]));
            }
            for section in ["os", "mem", "usb", "network_adapter", "desktop_monitor"] {
                wmi.insert(section.into(), Value::Array((0..60).map(|_| json!([filler(30)])).collect()));
            }
        }
        big["services"] = Value::Array((0..200).map(|_| filler(8)).collect());
        let bytes = serde_json::to_vec(&big).unwrap();
        assert!(bytes.len() > 60_000, "{} bytes", bytes.len());
        let read = parse::agent_detail_from_slice(&bytes).unwrap();
        assert_eq!(read.wmi, recorded.wmi, "{:?}", recorded.agent_id);
        assert_eq!(read.raw(), recorded.raw());
        assert_eq!(read.wmi, Some(WmiFacts::from_wmi_detail(&big["wmi_detail"], read.is_posix())));
    }
}

// ---- simulator fidelity --------------------------------------------------------------------------

#[tokio::test]
async fn simulator_serves_the_recorded_shapes() {
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(3, 3, 3, 4))).await.unwrap();
    let (status, clients) = raw_get(&sim, "/beta/v1/client/?page=1&page_size=1000").await;
    assert_eq!(status, 200);
    assert!(clients.is_array(), "bare array");
    assert_same_shape("client", &fixture("beta_clients.json")[0], &clients[0]);
    let (_, one) = raw_get(&sim, "/beta/v1/client/1/").await;
    assert_same_shape("client detail", &fixture("beta_client_1.json"), &one);

    let (_, sites) = raw_get(&sim, "/beta/v1/site/?page_size=2").await;
    let real_sites = fixture("beta_sites.json");
    assert_same_shape("site page", &real_sites, &sites);
    assert_same_shape("site", &real_sites["results"][0], &sites["results"][0]);
    assert!(sites["next"].as_str().unwrap().starts_with(sim.base_url()));

    let (_, agents) = raw_get(&sim, "/beta/v1/agent/?page_size=2").await;
    let real = fixture("beta_agents.json");
    assert_same_shape("agent page", &real, &agents);
    let linux = sim.agents().into_iter().find(|a| a.plat == rmm_tests::sim::tactical::Plat::Linux).unwrap();
    let windows = sim.agents().into_iter().find(|a| a.plat == rmm_tests::sim::tactical::Plat::Windows).unwrap();
    let real_rows = fixture("beta_agents_p1000.json")["results"].as_array().unwrap().clone();
    let real_linux = real_rows.iter().find(|r| r["plat"] == "linux").unwrap();
    let real_windows = real_rows.iter().find(|r| r["plat"] == "windows").unwrap();
    for (sim_agent, real_row) in [(&linux, real_linux), (&windows, real_windows)] {
        let (_, page) = raw_get(&sim, &format!("/beta/v1/agent/?id={}", sim_agent.id)).await;
        let row = &page["results"][0];
        assert_same_shape("agent row", real_row, row);
        assert_same_shape("wmi_detail", &real_row["wmi_detail"], &row["wmi_detail"]);
        assert_same_shape("disk", &real_row["disks"][0], &row["disks"][0]);
    }
    let (_, beta_detail) = raw_get(&sim, &format!("/beta/v1/agent/{}/", linux.id)).await;
    assert_same_shape("beta detail", &fixture("beta_agent_1.json"), &beta_detail);
    let (_, detail) = raw_get(&sim, &format!("/agents/{}/", linux.agent_id)).await;
    assert_same_shape("agent detail", &fixture("agent_detail.json"), &detail);
    let (_, table) = raw_get(&sim, "/agents/").await;
    assert_same_shape("table row", &fixture("agents.json")[0], &table[0]);
    let (_, nodetail) = raw_get(&sim, "/agents/?detail=false").await;
    assert_same_shape("nodetail row", &fixture("agents_nodetail.json")[0], &nodetail[0]);
    let (_, software) = raw_get(&sim, "/software/").await;
    let real_sw = fixture("software.json");
    assert_same_shape("software row", &real_sw[0], &software[0]);
    assert_same_shape("software item", &real_sw[0]["software"][0], &software[0]["software"][0]);
    let (_, index) = raw_get(&sim, "/beta/v1/").await;
    assert_same_shape("beta index", &fixture("beta_index.json"), &index);

    // Alerts (PATCH) and auth endpoints.
    let http = HttpClient::new(fast_http()).unwrap();
    let key = SecretString::from(DEFAULT_API_KEY.to_owned());
    let patch = |body: Value| {
        let url = url::Url::parse(&format!("{}/alerts/", sim.base_url())).unwrap();
        UpstreamRequest::patch(url).secret_header("x-api-key", &key).unwrap().json(&body).unwrap()
    };
    let all: Value = serde_json::from_slice(&http.send(patch(serde_json::json!({}))).await.unwrap().body).unwrap();
    assert_same_shape("alert", &fixture("alerts_all.json")[0], &all[0]);
    let top: Value =
        serde_json::from_slice(&http.send(patch(serde_json::json!({"top": 10}))).await.unwrap().body).unwrap();
    assert_same_shape("top alerts", &fixture("alerts_top.json"), &top);

    let (status, body) =
        raw_post(&sim, "/v2/checkcreds/", &serde_json::json!({"username": TOTP_USERNAME, "password": TOTP_PASSWORD}))
            .await;
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()), (200, fixture("checkcreds.json")));
    let (status, body) = raw_post(
        &sim,
        "/v2/login/",
        &serde_json::json!({"username": TOTP_USERNAME, "password": TOTP_PASSWORD, "twofactor": TOTP_CODE}),
    )
    .await;
    assert_eq!(status, 200);
    assert_same_shape("login", &fixture("login.json"), &serde_json::from_str(&body).unwrap());
}

#[tokio::test]
async fn simulator_reproduces_the_real_quirks() {
    let sim = TacticalSim::start_default().await.unwrap();
    let agent = sim.agents()[0].clone();
    // The beta detail takes the integer pk only.
    assert_eq!(raw_get(&sim, &format!("/beta/v1/agent/{}/", agent.agent_id)).await.0, 404);
    assert_eq!(raw_get(&sim, &format!("/beta/v1/agent/{}/", agent.id)).await.0, 200);
    // Past the end: 404 Invalid page.
    let (status, body) = raw_get(&sim, "/beta/v1/agent/?page=99").await;
    assert_eq!((status, body), (404, serde_json::json!({"detail": "Invalid page."})));
    // page_size is capped at 1000; the default is 100.
    let (_, page) = raw_get(&sim, "/beta/v1/site/").await;
    assert_eq!(page["results"].as_array().unwrap().len(), 9);
    // Login without twofactor is a server error; checkcreds hands non-TOTP users a token.
    let creds = serde_json::json!({"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD});
    assert_eq!(raw_post(&sim, "/v2/login/", &creds).await.0, 500);
    let (status, body) = raw_post(&sim, "/v2/checkcreds/", &creds).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, v["totp"].clone()), (200, Value::Bool(false)));
    assert_eq!(v["token"].as_str().unwrap().len(), 64);
    let bad = serde_json::json!({"username": DEFAULT_USERNAME, "password": "nope"});
    assert_eq!(raw_post(&sim, "/v2/checkcreds/", &bad).await, (400, "\"Bad credentials\"".to_owned()));
    // Auth errors as the real server words them.
    let client = api_key_client(&sim, "wrong");
    let err = client.list_clients().await.unwrap_err();
    assert!(err.diagnostic().contains("401"));
    assert_eq!(raw_get(&sim, "/agents/").await.0, 200);
    assert_eq!(sim.hits("GET /agents/"), 1);
}

// ---- paging ---------------------------------------------------------------------------------------

#[tokio::test]
async fn paging_over_more_than_1000_agents() {
    // 1 client × 3 sites × 400 agents = 1200 agents: pages of 1000 and 200.
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec { alerts: 0, ..FleetSpec::new(11, 1, 3, 400) }))
        .await
        .unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    let agents = client.list_agents(&AgentQuery::for_client(1)).await.unwrap();
    assert_eq!(agents.len(), 1200);
    let ids: HashSet<i64> = agents.iter().filter_map(|a| a.id).collect();
    assert_eq!(ids.len(), 1200, "no duplicates, nothing missing");
    assert_eq!(sim.hits("GET /beta/v1/agent/"), 2, "the walk ends when next is null");
    let queries: Vec<String> = sim.requests().iter().filter_map(|r| r.query.clone()).collect();
    assert!(queries.iter().all(|q| q.contains("page_size=1000") && q.contains("client_id=1")), "{queries:?}");

    // Agents removed while walking: `next` promised page 2, which no longer exists → 404
    // "Invalid page." ends the walk without an error.
    sim.reset_counters();
    let mut pager = client.agent_pages(&AgentQuery::for_client(1));
    let first = pager.next_page().await.unwrap().unwrap();
    assert_eq!(first.len(), 1000);
    for a in sim.agents().iter().skip(900) {
        sim.remove_agent(a.id);
    }
    assert!(pager.next_page().await.unwrap().is_none());
    assert!(pager.next_page().await.unwrap().is_none());
    assert_eq!(sim.hits("GET /beta/v1/agent/"), 2);
    assert_eq!(sim.requests().last().unwrap().status, 404);

    // The client list is a bare array: one request, whatever the page parameters.
    sim.reset_counters();
    assert_eq!(client.list_clients().await.unwrap().len(), 1);
    assert_eq!(sim.hits("GET /beta/v1/client/"), 1);
}

#[tokio::test]
async fn page_guard_stops_runaway_walks() {
    let sim = TacticalSim::start_default().await.unwrap();
    let mut config = TacticalConfig::new(sim.base_url(), TacticalAuth::ApiKey(DEFAULT_API_KEY.to_owned().into()));
    config.http = fast_http();
    config.page_size = 5;
    config.max_pages = 3;
    let client = TacticalClient::new(config).unwrap();
    let err = client.list_agents(&AgentQuery::default()).await.unwrap_err();
    assert!(matches!(err, TacticalError::TooManyPages { max_pages: 3, .. }), "{err:?}");
    assert_eq!(sim.hits("GET /beta/v1/agent/"), 3);
}

#[tokio::test]
async fn last_seen_filter_is_server_side() {
    let sim = TacticalSim::start_default().await.unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    let since = sim.now() - chrono::Duration::minutes(10);
    let never = sim.agents()[0].id;
    sim.set_last_seen(never, None);
    let recent =
        client.list_agents(&AgentQuery { last_seen_after: Some(since), ..AgentQuery::default() }).await.unwrap();
    let expected: HashSet<i64> =
        sim.agents().iter().filter(|a| a.last_seen.is_some_and(|s| s >= since)).map(|a| a.id).collect();
    assert_eq!(recent.iter().filter_map(|a| a.id).collect::<HashSet<_>>(), expected);
    assert!(!recent.iter().any(|a| a.id == Some(never)), "the server filter drops null last_seen");
    assert!(expected.len() < sim.agent_count());
    let all = client.list_agents(&AgentQuery::default()).await.unwrap();
    let kept: Vec<&Agent> = all.iter().filter(|a| mapping::changed_since(a, Some(since))).collect();
    assert_eq!(kept.len(), expected.len() + 1, "AlgaPSA's client-side filter keeps null last_seen");
}

// ---- auth -----------------------------------------------------------------------------------------

#[tokio::test]
async fn api_key_ok_and_wrong_key() {
    let sim = TacticalSim::start_default().await.unwrap();
    let ok = api_key_client(&sim, DEFAULT_API_KEY);
    assert_eq!(ok.test_connection().await.unwrap(), 3);
    assert_eq!(sim.requests()[0].auth, SeenAuth::ApiKey(DEFAULT_API_KEY.into()));

    let wrong_key = "wrong-key-0123456789";
    let bad = api_key_client(&sim, wrong_key);
    let err = bad.list_clients().await.unwrap_err();
    assert_eq!(err.to_string(), MSG_401);
    assert_eq!(err.status(), Some(401));
    assert!(err.is_auth());
    assert_no_secret(&err, &[wrong_key, DEFAULT_API_KEY]);

    sim.expire_api_key(DEFAULT_API_KEY);
    let err = ok.list_clients().await.unwrap_err();
    assert_eq!(err.to_string(), MSG_401);
    assert_no_secret(&err, &[DEFAULT_API_KEY]);
}

#[tokio::test]
async fn knox_without_totp_uses_the_checkcreds_token() {
    let sim = TacticalSim::start_default().await.unwrap();
    let (sink, seen) = recording_sink();
    let client = knox_client(&sim, DEFAULT_USERNAME, DEFAULT_PASSWORD, None).with_token_sink(sink);
    assert_eq!(client.list_clients().await.unwrap().len(), 3);
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 1);
    assert_eq!(sim.hits("POST /v2/login/"), 0, "login without twofactor would be a 500");
    let tokens = seen.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1);
    let last = sim.requests().into_iter().last().unwrap();
    assert_eq!(last.auth, SeenAuth::Token(tokens[0].clone()));
    // The token is reused.
    client.list_sites().await.unwrap();
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 1);
    assert_eq!(client.token_refresh_count(), 1);
}

#[tokio::test]
async fn knox_with_totp_needs_a_code() {
    let sim = TacticalSim::start_default().await.unwrap();
    let (sink, seen) = recording_sink();
    let client = knox_client(&sim, TOTP_USERNAME, TOTP_PASSWORD, None).with_token_sink(sink);
    assert!(matches!(client.check_creds().await.unwrap(), CheckCreds::TotpRequired));
    let err = client.list_clients().await.unwrap_err();
    assert!(matches!(err, TacticalError::TotpRequired));
    assert!(err.to_string().starts_with("TOTP required"));
    assert_eq!(sim.hits("POST /v2/login/"), 0);

    let err = client.login_with_totp("000000").await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_no_secret(&err, &[TOTP_PASSWORD]);

    client.login_with_totp(TOTP_CODE).await.unwrap();
    let login = sim.requests().into_iter().rfind(|r| r.route == "POST /v2/login/").unwrap();
    assert_eq!(login.body.unwrap()["twofactor"], TOTP_CODE);
    assert_eq!(client.list_clients().await.unwrap().len(), 3);
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A TOTP account cannot be refreshed without a person.
    sim.expire_tokens();
    let err = client.list_clients().await.unwrap_err();
    assert!(matches!(err, TacticalError::TotpRequired), "{err:?}");
}

#[tokio::test]
async fn knox_refresh_on_401_calls_the_hook_once() {
    let sim = TacticalSim::start_default().await.unwrap();
    let (sink, seen) = recording_sink();
    let client = knox_client(&sim, DEFAULT_USERNAME, DEFAULT_PASSWORD, Some("stale-token")).with_token_sink(sink);
    assert_eq!(client.list_clients().await.unwrap().len(), 3);
    let tokens = seen.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1, "one refresh, one hook call");
    let auths: Vec<SeenAuth> =
        sim.requests().into_iter().filter(|r| r.route == "GET /beta/v1/client/").map(|r| r.auth).collect();
    assert_eq!(auths, vec![SeenAuth::Token("stale-token".into()), SeenAuth::Token(tokens[0].clone())]);

    // An expired token (180 s TTL) is refreshed the same way.
    sim.expire_tokens();
    client.list_sites().await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 2);

    // At most one refresh per request: a second 401 is returned.
    sim.inject(Fault::status(401).times(2).on("GET /beta/v1/client/"));
    let err = client.list_clients().await.unwrap_err();
    assert_eq!(err.to_string(), MSG_401);
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 3);
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_no_secret(&err, &[DEFAULT_PASSWORD]);

    // Concurrent 401s share one refresh.
    sim.expire_tokens();
    let client = Arc::new(client);
    let before = sim.hits("POST /v2/checkcreds/");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.list_clients().await.map(|v| v.len()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 3);
    }
    assert_eq!(sim.hits("POST /v2/checkcreds/") - before, 1);
}

#[tokio::test]
async fn knox_bad_password_never_leaks() {
    let sim = TacticalSim::start_default().await.unwrap();
    let password = "s3cret-Wrong-Passw0rd";
    let client = knox_client(&sim, DEFAULT_USERNAME, password, None);
    let err = client.list_clients().await.unwrap_err();
    assert_eq!(err.status(), Some(400), "checkcreds answers 400 \"Bad credentials\"");
    assert_no_secret(&err, &[password]);
    assert!(!format!("{client:?}").contains(password));
}

// ---- Knox login throttle (Tactical 1.5.0+) -------------------------------------------------------

/// A token store shared by clients, as the tenant secret is shared by jobs and processes.
#[derive(Default)]
struct MemoryTokens {
    token: std::sync::Mutex<Option<String>>,
    writes: std::sync::atomic::AtomicUsize,
}

impl TokenSink for MemoryTokens {
    fn on_token_refreshed<'a>(&'a self, token: &'a SecretString) -> futures::future::BoxFuture<'a, ()> {
        *self.token.lock().unwrap() = Some(token.expose_secret().to_owned());
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async {})
    }

    fn stored_token(&self) -> futures::future::BoxFuture<'_, Option<SecretString>> {
        let t = self.token.lock().unwrap().clone().map(SecretString::from);
        Box::pin(async move { t })
    }
}

impl MemoryTokens {
    fn get(&self) -> Option<String> {
        self.token.lock().unwrap().clone()
    }
    fn writes(&self) -> usize {
        self.writes.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One answer of the simulator, headers included.
async fn post_raw(sim: &TacticalSim, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let resp = reqwest::Client::new().post(format!("{}{path}", sim.base_url())).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn simulator_throttles_logins_like_tactical() {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 7, 0, 0).unwrap();
    let config = SimConfig {
        now: Some(t0),
        login_throttle: Some(LoginThrottle { per_minute: 3, per_day: 5 }),
        ..SimConfig::default()
    };
    let sim = TacticalSim::start(config).await.unwrap();
    let good = json!({"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD});
    let bad = json!({"username": DEFAULT_USERNAME, "password": "wrong"});
    // Counted before the credentials are looked at: a bad password uses the budget too.
    assert_eq!(post_raw(&sim, "/v2/checkcreds/", &bad).await.0, 400);
    assert_eq!(post_raw(&sim, "/v2/checkcreds/", &good).await.0, 200);
    assert_eq!(post_raw(&sim, "/v2/checkcreds/", &good).await.0, 200);
    sim.set_now(Some(t0 + chrono::Duration::seconds(20)));
    let (status, retry_after, body) = post_raw(&sim, "/v2/checkcreds/", &good).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("40")));
    assert_eq!(body, json!({"detail": "Request was throttled. Expected available in 40 seconds."}));
    // The login endpoint has counts of its own.
    let totp = json!({"username": TOTP_USERNAME, "password": TOTP_PASSWORD, "twofactor": TOTP_CODE});
    assert_eq!(post_raw(&sim, "/v2/login/", &totp).await.0, 200);
    // A new minute. The request the minute refused still counted in the day (DRF records a request
    // in every scope that allowed it): one more login, and the day's five are used.
    sim.set_now(Some(t0 + chrono::Duration::seconds(61)));
    assert_eq!(post_raw(&sim, "/v2/checkcreds/", &good).await.0, 200);
    let (status, retry_after, body) = post_raw(&sim, "/v2/checkcreds/", &good).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("86339")), "{body}");
    assert_eq!(body["detail"], "Request was throttled. Expected available in 86339 seconds.");
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 6);
    // Off: every login is answered again.
    sim.set_login_throttle(None);
    assert_eq!(post_raw(&sim, "/v2/checkcreds/", &good).await.0, 200);
}

#[tokio::test]
async fn a_throttled_login_is_one_clear_error_and_the_gate_waits_it_out() {
    let sim = TacticalSim::start_default().await.unwrap();
    // Tactical asks for a 1-second wait: the HTTP layer would wait that out and ask again for any
    // other call; a login is not repeated.
    sim.inject(Fault::rate_limited("1").times(1).on("POST /v2/checkcreds/"));
    let tokens = Arc::new(MemoryTokens::default());
    let client = knox_client(&sim, DEFAULT_USERNAME, DEFAULT_PASSWORD, None).with_token_sink(tokens.clone());
    let started = Instant::now();
    let err = client.list_clients().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(900), "no wait in place: {:?}", started.elapsed());
    let TacticalError::LoginThrottled { endpoint, retry_after } = &err else { panic!("{err:?}") };
    assert_eq!((endpoint.as_str(), *retry_after), ("POST /v2/checkcreds/", Some(Duration::from_secs(1))));
    let message = err.to_string();
    assert!(message.contains("throttling logins") && message.contains("did not retry"), "{message}");
    assert!(message.contains("again in 1 second."), "{message}");
    assert!(!err.is_transient() && err.retry_after().is_none(), "a job must not retry it");
    assert_no_secret(&err, &[DEFAULT_PASSWORD]);
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 1);
    assert_eq!(sim.hits("GET /beta/v1/client/"), 0);

    // While the wait lasts, no login is tried.
    let err = client.list_sites().await.unwrap_err();
    assert!(matches!(err, TacticalError::LoginThrottled { .. }), "{err:?}");
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 1);

    // After it, one login, and the token is saved.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(client.list_clients().await.unwrap().len(), 3);
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 2);
    assert_eq!(tokens.writes(), 1);
}

#[tokio::test]
async fn knox_clients_of_one_account_log_in_once_and_reuse_the_stored_token() {
    let sim = TacticalSim::start(SimConfig { login_throttle: Some(LoginThrottle::TACTICAL), ..SimConfig::default() })
        .await
        .unwrap();
    sim.set_latency(Duration::from_millis(100));
    let tokens = Arc::new(MemoryTokens::default());
    let gate = LoginGate::new();
    let clients: Vec<Arc<TacticalClient>> = (0..4)
        .map(|_| {
            Arc::new(
                knox_client(&sim, DEFAULT_USERNAME, DEFAULT_PASSWORD, None)
                    .with_token_sink(tokens.clone())
                    .with_login_gate(gate.clone()),
            )
        })
        .collect();
    let all_list_clients = |clients: Vec<Arc<TacticalClient>>| async move {
        let tasks: Vec<_> =
            clients.into_iter().map(|c| tokio::spawn(async move { c.list_clients().await.map(|v| v.len()) })).collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 3);
        }
    };

    // Four clients (four jobs of one worker) without a token: one login.
    all_list_clients(clients.clone()).await;
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 1);
    assert_eq!(tokens.writes(), 1);
    let first = tokens.get().unwrap();

    // A client of another process (its own gate), built without a token: the stored one is used.
    let other = knox_client(&sim, DEFAULT_USERNAME, DEFAULT_PASSWORD, None).with_token_sink(tokens.clone());
    assert_eq!(other.list_sites().await.unwrap().len(), 9);
    // One built with an old token that Tactical refuses: the stored one is tried before a login.
    let stale =
        knox_client(&sim, DEFAULT_USERNAME, DEFAULT_PASSWORD, Some("stale-token")).with_token_sink(tokens.clone());
    assert_eq!(stale.list_clients().await.unwrap().len(), 3);
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 1);
    assert_eq!(other.token_refresh_count() + stale.token_refresh_count(), 0);
    let last = sim.requests().into_iter().last().unwrap();
    assert_eq!(last.auth, SeenAuth::Token(first.clone()));

    // Tactical refuses the token (it expired): exactly one login, every client takes its token,
    // the other process's clients too (through the store).
    sim.expire_tokens();
    all_list_clients(clients.clone()).await;
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 2, "one re-login for four clients");
    let second = tokens.get().unwrap();
    assert_ne!(second, first);
    assert_eq!(other.list_clients().await.unwrap().len(), 3);
    assert_eq!(stale.list_clients().await.unwrap().len(), 3);
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 2);
    assert_eq!(other.token_refresh_count() + stale.token_refresh_count(), 0);
    // And nobody logs in again while it is accepted.
    let mut everyone = clients.clone();
    everyone.push(Arc::new(other));
    everyone.push(Arc::new(stale));
    all_list_clients(everyone).await;
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 2);
    let statuses: Vec<u16> =
        sim.requests().iter().filter(|r| r.route == "POST /v2/checkcreds/").map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200], "the throttle was never reached");
}

#[tokio::test]
async fn an_exhausted_login_throttle_stops_every_client_of_the_account() {
    let sim = TacticalSim::start(SimConfig {
        login_throttle: Some(LoginThrottle { per_minute: 1, per_day: 300 }),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let tokens = Arc::new(MemoryTokens::default());
    let gate = LoginGate::new();
    let client = || {
        Arc::new(
            knox_client(&sim, DEFAULT_USERNAME, DEFAULT_PASSWORD, None)
                .with_token_sink(tokens.clone())
                .with_login_gate(gate.clone()),
        )
    };
    assert_eq!(client().list_clients().await.unwrap().len(), 3);
    assert_eq!(sim.hits("POST /v2/checkcreds/"), 1);
    // The token is refused and the minute's only login is used: one 429, then no more logins.
    sim.expire_tokens();
    let clients: Vec<_> = (0..3).map(|_| client()).collect();
    let tasks: Vec<_> = clients.iter().cloned().map(|c| tokio::spawn(async move { c.list_clients().await })).collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        let TacticalError::LoginThrottled { retry_after, .. } = &err else { panic!("{err:?}") };
        let wait = retry_after.unwrap();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
        assert!(err.to_string().contains("throttling logins"), "{err}");
    }
    for c in &clients {
        assert!(matches!(c.list_sites().await.unwrap_err(), TacticalError::LoginThrottled { .. }));
    }
    let checkcreds: Vec<u16> =
        sim.requests().iter().filter(|r| r.route == "POST /v2/checkcreds/").map(|r| r.status).collect();
    assert_eq!(checkcreds, [200, 429], "one refused login, never retried, never tried again");
}

// ---- retries, rate limits, timeouts, broken answers ---------------------------------------------

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let sim = TacticalSim::start_default().await.unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    sim.inject(Fault::status(503).times(2).on("GET /beta/v1/client/"));
    assert_eq!(client.list_clients().await.unwrap().len(), 3);
    assert_eq!(sim.hits("GET /beta/v1/client/"), 3);
}

#[tokio::test]
async fn server_errors_exhausted_give_the_5xx_message() {
    let sim = TacticalSim::start_default().await.unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    sim.inject(Fault::status(502));
    let err = client.list_sites().await.unwrap_err();
    assert_eq!(err.to_string(), MSG_5XX);
    assert!(err.is_transient());
    assert_eq!(sim.hits("GET /beta/v1/site/"), 3, "max_attempts");
    assert_no_secret(&err, &[DEFAULT_API_KEY]);
    // A 404 is not retried.
    sim.clear_faults();
    sim.inject(Fault::status(404).on("GET /beta/v1/client/"));
    let err = client.list_clients().await.unwrap_err();
    assert_eq!(err.to_string(), MSG_404);
    assert_eq!(sim.hits("GET /beta/v1/client/"), 1);
}

#[tokio::test]
async fn short_retry_after_is_waited() {
    let sim = TacticalSim::start_default().await.unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    sim.inject(Fault::rate_limited("1").times(1).on("GET /beta/v1/client/"));
    let started = Instant::now();
    assert_eq!(client.list_clients().await.unwrap().len(), 3);
    assert!(started.elapsed() >= Duration::from_millis(950), "waited {:?}", started.elapsed());
    assert_eq!(sim.hits("GET /beta/v1/client/"), 2);
}

#[tokio::test]
async fn long_retry_after_is_returned_typed() {
    let sim = TacticalSim::start_default().await.unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    sim.inject(Fault::rate_limited("120").on("GET /beta/v1/client/"));
    let started = Instant::now();
    let err = client.list_clients().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(err.to_string(), MSG_429);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert!(matches!(&err, TacticalError::Http(rmm_shared::http::HttpError::RateLimited { .. })));
    assert_eq!(sim.hits("GET /beta/v1/client/"), 1);

    // An HTTP-date works the same way.
    sim.clear_faults();
    let at = (Utc::now() + chrono::Duration::seconds(600)).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    sim.inject(Fault::rate_limited(at).on("GET /beta/v1/client/"));
    let err = client.list_clients().await.unwrap_err();
    let wait = err.retry_after().unwrap();
    assert!(wait > Duration::from_secs(590) && wait <= Duration::from_secs(600), "{wait:?}");
}

#[tokio::test]
async fn dashboard_host_is_reported() {
    let sim = TacticalSim::start_default().await.unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    sim.set_html_mode(true);
    for err in [
        client.list_clients().await.unwrap_err(),
        client.list_agents(&AgentQuery::default()).await.unwrap_err(),
        client.list_active_alerts().await.unwrap_err(),
        client.software().await.err().unwrap(),
    ] {
        assert_eq!(err.to_string(), MSG_DASHBOARD_HOST);
        assert!(err.to_string().contains("api."));
    }
    let knox = knox_client(&sim, DEFAULT_USERNAME, DEFAULT_PASSWORD, None);
    assert_eq!(knox.list_clients().await.unwrap_err().to_string(), MSG_DASHBOARD_HOST);
}

#[tokio::test]
async fn truncated_json_is_a_clear_error() {
    let sim = TacticalSim::start_default().await.unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    sim.inject(Fault::truncate().times(1).on("GET /beta/v1/agent/"));
    let err = client.list_agents(&AgentQuery::default()).await.unwrap_err();
    assert_eq!(err.to_string(), MSG_INVALID_RESPONSE);
    assert!(err.diagnostic().contains("ended early"), "{}", err.diagnostic());

    sim.inject(Fault::truncate().times(1).on("GET /software/"));
    let mut stream = client.software().await.unwrap();
    let mut rows = 0;
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(_) => rows += 1,
            Err(e) => failure = Some(e),
        }
    }
    let err = failure.expect("a truncated stream ends with an error");
    assert_eq!(err.to_string(), MSG_INVALID_RESPONSE);
    let windows = sim.agents().iter().filter(|a| !a.software.is_empty()).count();
    assert!(rows < windows);
}

#[tokio::test]
async fn timeouts_are_bounded() {
    let sim = TacticalSim::start_default().await.unwrap();
    let mut config = TacticalConfig::new(sim.base_url(), TacticalAuth::ApiKey(DEFAULT_API_KEY.to_owned().into()));
    config.http = HttpConfig { request_timeout: Duration::from_millis(300), ..fast_http() };
    config.http.retry.max_attempts = 2;
    let client = TacticalClient::new(config).unwrap();
    sim.inject(Fault::hang().on("GET /beta/v1/client/"));
    let started = Instant::now();
    let err = client.list_clients().await.unwrap_err();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(600) && took < Duration::from_secs(3), "{took:?}");
    assert_eq!(err.to_string(), MSG_UNREACHABLE);
    assert!(matches!(&err, TacticalError::Http(rmm_shared::http::HttpError::Timeout { attempts: 2, .. })), "{err:?}");
    assert_eq!(sim.hits("GET /beta/v1/client/"), 2);
    assert_no_secret(&err, &[DEFAULT_API_KEY]);

    // Nothing listening: unreachable, quickly.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut config =
        TacticalConfig::new(format!("http://{dead}"), TacticalAuth::ApiKey(DEFAULT_API_KEY.to_owned().into()));
    config.http = fast_http();
    let err = TacticalClient::new(config).unwrap().list_clients().await.unwrap_err();
    assert_eq!(err.to_string(), MSG_UNREACHABLE);
    assert!(matches!(&err, TacticalError::Http(rmm_shared::http::HttpError::Connect { attempts: 3, .. })), "{err:?}");
}

/// A 2xx answer over the body limit is refused once its length is known (declared, or counted
/// while a chunked body arrives), without reading the rest and without a retry. Agent pages are
/// streamed, never held whole: the body limit does not apply to them, their own page limit does.
#[tokio::test]
async fn answers_over_the_body_limit_are_refused_unread() {
    use rmm_shared::http::HttpError;
    let sim = TacticalSim::start_default().await.unwrap();
    let mut config = TacticalConfig::new(sim.base_url(), TacticalAuth::ApiKey(DEFAULT_API_KEY.to_owned().into()));
    config.http = HttpConfig { max_body_bytes: 1024, ..fast_http() };
    let client = TacticalClient::new(config.clone()).unwrap();
    client.list_clients().await.expect("a small answer passes");
    let agents = client.list_agents(&AgentQuery::default()).await.expect("a streamed page passes");
    assert_eq!(agents.len(), sim.agent_count());
    let err = client.get_agent(&agents[0].agent_id.clone().unwrap()).await.unwrap_err();
    assert!(matches!(&err, TacticalError::Http(HttpError::TooLarge { limit: 1024, .. })), "{err:?}");
    assert!(err.to_string().starts_with("Tactical RMM sent an answer larger than"), "{err}");
    assert_eq!(sim.hits("GET /agents/{agent_id}/"), 1, "not retried");
    assert_no_secret(&err, &[DEFAULT_API_KEY]);

    sim.reset_counters();
    config.max_page_bytes = 4096;
    let client = TacticalClient::new(config).unwrap();
    let err = client.list_agents(&AgentQuery::default()).await.unwrap_err();
    assert!(matches!(&err, TacticalError::Http(HttpError::TooLarge { limit: 4096, .. })), "{err:?}");
    assert_eq!(sim.hits("GET /beta/v1/agent/"), 1, "not retried");

    // Chunked, no Content-Length: cut off at the first chunk past the limit; the server is still
    // sending when the client gives up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("{:x}\r\n{}\r\n", 1024, " ".repeat(1024));
        for _ in 0..100_000 {
            if sock.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
            counter.fetch_add(1024, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let http = rmm_shared::http::HttpClient::new(HttpConfig { max_body_bytes: 64 * 1024, ..fast_http() }).unwrap();
    let url = reqwest::Url::parse(&format!("http://{addr}/beta/v1/client/")).unwrap();
    let err = http.send(rmm_shared::http::UpstreamRequest::get(url)).await.unwrap_err();
    assert!(matches!(&err, HttpError::TooLarge { limit: 65536, .. }), "{err:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let total = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(total < 100_000 * 1024, "the client stopped reading ({total} bytes sent)");
}

/// A streamed page (chunked, no `Content-Length`) is cut off at the chunk past the page limit,
/// without a retry; within the limit, pages of agents with 100 KB of `wmi_detail` each read
/// like the recorded sizes.
#[tokio::test]
async fn large_agent_pages_stream_within_the_page_limit() {
    use rmm_shared::http::HttpError;
    let fleet = FleetSpec { wmi_detail_kb: 100, ..FleetSpec::new(9, 1, 1, 30) };
    let sim = TacticalSim::start(SimConfig::with_fleet(fleet)).await.unwrap();
    let mut config = TacticalConfig::new(sim.base_url(), TacticalAuth::ApiKey(DEFAULT_API_KEY.to_owned().into()));
    config.http = fast_http();
    config.max_page_bytes = 1 << 20;
    let err = TacticalClient::new(config.clone()).unwrap().list_agents(&AgentQuery::default()).await.unwrap_err();
    assert!(matches!(&err, TacticalError::Http(HttpError::TooLarge { limit: 1_048_576, .. })), "{err:?}");
    assert_eq!(sim.hits("GET /beta/v1/agent/"), 1, "not retried");

    config.max_page_bytes = rmm_shared::providers::tactical::client::DEFAULT_MAX_PAGE_BYTES;
    config.page_size = 7;
    let agents = TacticalClient::new(config).unwrap().list_agents(&AgentQuery::default()).await.unwrap();
    let expected = sim.agents();
    assert_eq!(agents.len(), expected.len());
    for (agent, a) in agents.iter().zip(&expected) {
        assert_eq!(agent.serial_number().as_deref(), Some(a.hardware.serial.as_str()));
        assert_eq!(agent.make_model(), Some(a.make_model()));
        assert_eq!(agent.local_ips().join(", "), a.local_ips());
        assert!(agent.raw().get("wmi_detail").is_none());
    }
}

/// A page that breaks off while it arrives is asked for again (as a body read whole is), and the
/// walk goes on.
#[tokio::test]
async fn a_page_broken_off_mid_body_is_asked_again() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = serde_json::to_vec(&json!({"count": 1, "next": null, "previous": null, "results": [
        {"id": 1, "agent_id": "a1", "plat": "linux", "wmi_detail": {"serialnumber": "S-1", "local_ips": ["10.1.2.3/24"]}}
    ]}))
    .unwrap();
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                // The first answer stops halfway and the connection closes.
                let upto = if n == 0 { body.len() / 2 } else { body.len() };
                let _ = sock.write_all(&body[..upto]).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    let mut config =
        TacticalConfig::new(format!("http://{addr}"), TacticalAuth::ApiKey(DEFAULT_API_KEY.to_owned().into()));
    config.http = fast_http();
    let agents = TacticalClient::new(config).unwrap().list_agents(&AgentQuery::default()).await.unwrap();
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2, "asked twice");
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].serial_number().as_deref(), Some("S-1"));
    assert_eq!(agents[0].local_ips(), ["10.1.2.3/24"]);
}

#[tokio::test]
async fn rate_limit_is_shared_per_upstream() {
    let sim = TacticalSim::start_default().await.unwrap();
    let mut config = TacticalConfig::new(sim.base_url(), TacticalAuth::ApiKey(DEFAULT_API_KEY.to_owned().into()));
    config.http = HttpConfig { rate_limit: rmm_shared::http::RateLimit::per_second(20, 1), ..fast_http() };
    let a = TacticalClient::new(config.clone()).unwrap();
    let b = TacticalClient::new(config).unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        a.list_clients().await.unwrap();
        b.list_clients().await.unwrap();
    }
    // 6 requests at 20/s with a burst of 1 through one bucket: at least 5 × 50 ms.
    assert!(started.elapsed() >= Duration::from_millis(240), "{:?}", started.elapsed());
}

// ---- endpoints --------------------------------------------------------------------------------

#[tokio::test]
async fn single_agent_by_string_id_and_pk() {
    let sim = TacticalSim::start_default().await.unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    let target = sim.agents()[4].clone();
    let detail = client.get_agent(&target.agent_id).await.unwrap().unwrap();
    assert_eq!(detail.hostname.as_deref(), Some(target.hostname.as_str()));
    assert_eq!(detail.status.as_deref(), Some(target.tactical_status(sim.now())));
    assert!(detail.client_name().is_some());
    assert_eq!(sim.hits("GET /agents/{agent_id}/"), 1);
    assert!(client.get_agent("no-such-agent").await.unwrap().is_none());
    let beta = client.get_beta_agent(target.id).await.unwrap().unwrap();
    assert_eq!(beta.agent_id.as_deref(), Some(target.agent_id.as_str()));
    assert_eq!(beta.local_ips(), target.local_ips().split(", ").map(str::to_owned).collect::<Vec<_>>());
    assert!(client.get_beta_agent(999_999).await.unwrap().is_none());
}

#[tokio::test]
async fn active_alerts_use_the_real_filter() {
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec { alerts: 0, ..FleetSpec::default() })).await.unwrap();
    let pk = sim.agents()[0].id;
    let active = sim.add_alert(pk, NewAlert::default()).unwrap();
    let hidden = sim.add_alert(pk, NewAlert { hidden: true, ..NewAlert::default() }).unwrap();
    sim.add_alert(pk, NewAlert { resolved: true, ..NewAlert::default() }).unwrap();
    sim.add_alert(pk, NewAlert { snoozed: true, ..NewAlert::default() }).unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    let alerts = client.list_active_alerts().await.unwrap();
    let ids: BTreeMap<i64, &Alert> = alerts.iter().map(|a| (a.id, a)).collect();
    assert_eq!(ids.keys().copied().collect::<Vec<_>>(), vec![active, hidden]);
    let body = sim.requests().last().unwrap().body.clone().unwrap();
    assert_eq!(body, serde_json::json!({"resolvedFilter": false, "snoozedFilter": false}));
    let a = ids[&active];
    assert_eq!(a.agent, Some(pk));
    assert_eq!(a.agent_id.as_deref(), Some(sim.agents()[0].agent_id.as_str()));
    assert_eq!(a.severity.as_deref(), Some("error"));
    sim.resolve_alert(active);
    assert_eq!(client.list_active_alerts().await.unwrap().len(), 1);
}

#[tokio::test]
async fn software_streams_one_row_per_agent() {
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(5, 2, 2, 30))).await.unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    let rows = client.software_all().await.unwrap();
    let expected: HashMap<i64, usize> =
        sim.agents().iter().filter(|a| !a.software.is_empty()).map(|a| (a.id, a.software.len())).collect();
    assert_eq!(rows.len(), expected.len());
    for r in &rows {
        assert_eq!(expected[&r.agent], r.software.len(), "keyed by the integer agent pk");
        assert!(r.software.iter().all(|i| i.name.is_some()));
    }
    // Dropping a stream early is fine.
    let mut s = client.software().await.unwrap();
    assert!(s.next().await.unwrap().is_ok());
    drop(s);
    let one = sim.agents().into_iter().find(|a| !a.software.is_empty()).unwrap();
    let row = client.agent_software(&one.agent_id).await.unwrap().unwrap();
    assert_eq!(row.agent, one.id);
    let linux = sim.agents().into_iter().find(|a| a.software.is_empty()).unwrap();
    assert!(client.agent_software(&linux.agent_id).await.unwrap().is_none());
}

#[tokio::test]
async fn fleet_maps_end_to_end() {
    let sim = TacticalSim::start(SimConfig::with_fleet(FleetSpec::new(21, 3, 2, 20))).await.unwrap();
    let client = api_key_client(&sim, DEFAULT_API_KEY);
    let sites = SiteIndex::new(client.list_sites().await.unwrap());
    let ctx = MappingContext { integration_id: Uuid::new_v4(), now: sim.now() };
    let by_pk: HashMap<i64, _> = sim.agents().into_iter().map(|a| (a.id, a)).collect();
    let mut statuses = HashSet::new();
    let mut count = 0;
    for c in client.list_clients().await.unwrap() {
        for agent in client.list_agents(&AgentQuery::for_client(c.id)).await.unwrap() {
            let scope = sites.scope_for(&agent, Some(&c.id.to_string())).unwrap();
            let snap = mapping::agent_snapshot(&agent, &scope, &ctx).unwrap();
            let sim_agent = &by_pk[&agent.id.unwrap()];
            assert_eq!(snap.external_scope_id, c.id.to_string());
            assert_eq!(snap.agent_status.unwrap().slug(), sim_agent.tactical_status(ctx.now), "{}", sim_agent.hostname);
            assert_eq!(snap.asset_type.slug(), sim_agent.monitoring_type);
            assert_eq!(snap.serial_number.as_deref(), Some(sim_agent.hardware.serial.as_str()));
            let ext = snap.extension.unwrap();
            assert_eq!(ext.lan_ip.as_deref(), Some(sim_agent.ipv4.as_str()));
            let user = (sim_agent.logged_in_username != "None").then_some(sim_agent.logged_in_username.as_str());
            assert_eq!(ext.current_user.as_deref(), user);
            assert!(ext.uptime_seconds.is_some_and(|u| u >= 3600));
            assert_eq!(snap.location.as_deref(), sites.get(sim_agent.site).map(|s| s.name.as_str()));
            statuses.insert(snap.agent_status.unwrap());
            count += 1;
        }
    }
    assert_eq!(count, 120);
    assert_eq!(statuses.len(), 3, "online, offline and overdue all present");

    // A moved agent maps to its new client through its site.
    let moved = sim.agents()[0].clone();
    let other_site = sim.sites().into_iter().find(|s| Some(s.client) != sim.client_of(moved.id)).unwrap();
    sim.move_agent(moved.id, other_site.id);
    let agent = client
        .list_agents(&AgentQuery { agent_id: Some(moved.agent_id.clone()), ..AgentQuery::default() })
        .await
        .unwrap();
    let scope = sites.scope_for(&agent[0], Some("1")).unwrap();
    assert_eq!(scope.client_id, other_site.client.to_string());

    // A new agent shows up, a removed one disappears.
    let added = sim.add_agent(other_site.id).unwrap();
    sim.remove_agent(moved.id);
    let all = client.list_agents(&AgentQuery::default()).await.unwrap();
    assert!(all.iter().any(|a| a.id == Some(added.id)));
    assert!(!all.iter().any(|a| a.id == Some(moved.id)));
}
