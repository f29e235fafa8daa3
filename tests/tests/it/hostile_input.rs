//! Property tests: the parsers that take outside input never panic, whatever they are given —
//! the webhook body and query, and every Tactical answer the client reads (agent pages and
//! details, clients, sites, active alerts, the software stream), generated in the shapes Tactical
//! sends, as arbitrary JSON and bytes, and as the recorded answers cut short or corrupted. The
//! cargo-fuzz targets in `fuzz/` run the same entry points for longer.

use chrono::Utc;
use proptest::prelude::*;
use rmm_shared::providers::tactical::alerts::{parse_alert_time, parse_webhook, polled_alert};
use rmm_shared::providers::tactical::mapping::{MappingContext, SiteIndex, agent_snapshot};
use rmm_shared::providers::tactical::model::{Agent, Alert, Client, NOT_KEPT, RawRecord, Site, SoftwareRow, WmiFacts};
use rmm_shared::providers::tactical::parse;
use rmm_shared::providers::tactical::sync::software_items;
use rmm_shared::providers::webhook_tenant;
use rmm_shared::software::normalize_name;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Arbitrary JSON, a few levels deep, with the keys Tactical bodies use mixed in.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("agent_id".to_owned()),
        Just("alert_id".to_owned()),
        Just("event".to_owned()),
        Just("severity".to_owned()),
        Just("alert_time".to_owned()),
        Just("last_seen".to_owned()),
        Just("boot_time".to_owned()),
        Just("wmi_detail".to_owned()),
        Just("monitoring_type".to_owned()),
        Just("local_ips".to_owned()),
        Just("id".to_owned()),
        "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("None".into())),
        Just(Value::String("2026-02-13 18:25:43.511000+00:00".into())),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn webhook_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_webhook(&body);
    }

    #[test]
    fn webhook_json_never_panics_and_normalizes_within_limits(v in json_value(), wrap in any::<bool>()) {
        let body = if wrap { serde_json::to_vec(&Value::String(v.to_string())).unwrap() } else { serde_json::to_vec(&v).unwrap() };
        if let Ok(parsed) = parse_webhook(&body) {
            prop_assert!(!parsed.agent_id.is_empty());
            let alert = parsed.to_alert(Uuid::nil(), Utc::now());
            prop_assert!(!alert.external_alert_id.is_empty());
            prop_assert!(alert.dedup_key().chars().count() <= 255);
            prop_assert!(["critical", "major", "moderate", "minor", "none"].contains(&alert.severity.as_str()));
        }
    }

    #[test]
    fn alert_times_never_panic(s in ".{0,64}") {
        let _ = parse_alert_time(&s);
    }

    #[test]
    fn agents_and_alerts_never_panic(v in json_value()) {
        if let Ok(agent) = Agent::from_value(v.clone()) {
            let sites = SiteIndex::default();
            if let Some(scope) = sites.scope_for(&agent, Some("1")) {
                let _ = agent_snapshot(&agent, &scope, &MappingContext { integration_id: Uuid::nil(), now: Utc::now() });
            }
        }
        let _ = Alert::from_value(v);
    }
}

// ---- Tactical answers ---------------------------------------------------------------------------

/// Leaves as Tactical sends them, and edge values.
fn tactical_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(0.0), Just(-1.0), Just(1e300), Just(-1e300), Just(1_793_320_045.689_898), any::<f64>()]
            .prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        prop_oneof![
            Just("None"),
            Just(""),
            Just("-"),
            Just("linux"),
            Just("windows"),
            Just("darwin"),
            Just("server"),
            Just("workstation"),
            Just("online"),
            Just("10.0.0.11/24"),
            Just("fd00::10:0:0:11/64"),
            Just("60.5 GB"),
            Just("237.9G"),
            Just("0 B"),
            Just("9.9e999 PB"),
            Just("2026-11-22T07:27:20.689898Z"),
            Just("2026-02-13 18:25:43.511000+00:00"),
            Just("2019-06-09 00:00:00 +0000 UTC"),
            Just("+262143-12-31T23:59:59Z"),
            Just("To be filled by O.E.M."),
            Just("Error getting serial"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        ".{0,24}".prop_map(Value::String),
    ]
}

/// A leaf, or a small array or object of leaves.
fn tactical_value() -> impl Strategy<Value = Value> {
    tactical_leaf().prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[A-Za-z_]{1,8}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An object with some of `keys`, each a Tactical-like value, plus `extra` fields.
fn object_of(keys: &'static [&'static str], extra: Vec<(String, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let fields = prop::collection::vec((prop::sample::select(keys), tactical_value()), 0..keys.len().min(10));
    let extra: Vec<_> = extra.into_iter().map(|(k, v)| prop::option::of(v).prop_map(move |v| (k.clone(), v))).collect();
    (fields, extra)
        .prop_map(|(fields, extra)| {
            let mut m: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            for (k, v) in extra {
                if let Some(v) = v {
                    m.insert(k, v);
                }
            }
            Value::Object(m)
        })
        .boxed()
}

/// A WMI section: a list of lists of objects.
fn wmi_section(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    let ips = prop::collection::vec(tactical_leaf(), 0..3).prop_map(Value::Array);
    let obj = object_of(keys, vec![("IPAddress".into(), ips.boxed())]);
    prop::collection::vec(prop::collection::vec(obj, 0..3).prop_map(Value::Array), 0..3).prop_map(Value::Array).boxed()
}

/// `wmi_detail` as Windows agents send it, as Linux and macOS agents send it, or anything.
fn wmi_detail() -> BoxedStrategy<Value> {
    const WMI_KEYS: &[&str] = &[
        "SerialNumber",
        "Vendor",
        "Model",
        "Manufacturer",
        "Product",
        "SystemFamily",
        "Version",
        "Name",
        "NumberOfCores",
        "NumberOfLogicalProcessors",
    ];
    let windows = (
        wmi_section(WMI_KEYS),
        wmi_section(WMI_KEYS),
        wmi_section(WMI_KEYS),
        wmi_section(WMI_KEYS),
        wmi_section(WMI_KEYS),
        wmi_section(WMI_KEYS),
    )
        .prop_map(|(bios, cs, csp, bb, cpu, net)| {
            json!({"bios": bios, "comp_sys": cs, "comp_sys_prod": csp, "base_board": bb, "cpu": cpu, "network_config": net})
        });
    let list = || prop::collection::vec(tactical_leaf(), 0..4).prop_map(Value::Array);
    let posix = (list(), tactical_leaf(), tactical_leaf(), list()).prop_map(
        |(ips, serial, mm, cpus)| json!({"local_ips": ips, "serialnumber": serial, "make_model": mm, "cpus": cpus}),
    );
    prop_oneof![windows, posix, tactical_value()].boxed()
}

fn agent_record() -> BoxedStrategy<Value> {
    const KEYS: &[&str] = &[
        "id",
        "agent_id",
        "hostname",
        "version",
        "operating_system",
        "plat",
        "goarch",
        "last_seen",
        "public_ip",
        "total_ram",
        "boot_time",
        "logged_in_username",
        "logged_username",
        "italic",
        "monitoring_type",
        "offline_time",
        "overdue_time",
        "site",
        "site_name",
        "client",
        "client_name",
        "status",
        "local_ips",
        "make_model",
        "serial_number",
        "cpu_model",
        "time_zone",
        "needs_reboot",
    ];
    let disk = object_of(&["device", "fstype", "total", "used", "free", "percent"], Vec::new());
    let disks = prop::collection::vec(disk, 0..3).prop_map(Value::Array).boxed();
    let plat = prop::sample::select(&["windows", "linux", "darwin"][..]).prop_map(Value::from).boxed();
    object_of(KEYS, vec![("wmi_detail".into(), wmi_detail()), ("disks".into(), disks), ("plat".into(), plat)])
}

fn client_record() -> BoxedStrategy<Value> {
    object_of(
        &[
            "id",
            "name",
            "block_policy_inheritance",
            "failing_checks",
            "workstation_policy",
            "alert_template",
            "created_time",
        ],
        vec![("id".into(), any::<i64>().prop_map(Value::from).boxed())],
    )
}

fn site_record() -> BoxedStrategy<Value> {
    object_of(
        &["id", "client", "name", "failing_checks", "server_policy"],
        vec![
            ("id".into(), (0i64..20).prop_map(Value::from).boxed()),
            ("client".into(), (0i64..5).prop_map(Value::from).boxed()),
        ],
    )
}

fn alert_record() -> BoxedStrategy<Value> {
    object_of(
        &[
            "id",
            "agent",
            "agent_id",
            "hostname",
            "client",
            "site",
            "alert_type",
            "message",
            "alert_time",
            "snoozed",
            "resolved",
            "severity",
            "hidden",
            "assigned_check",
            "assigned_task",
        ],
        vec![("id".into(), any::<i64>().prop_map(Value::from).boxed())],
    )
}

fn software_row() -> BoxedStrategy<Value> {
    let item = object_of(
        &["name", "version", "publisher", "size", "source", "location", "uninstall", "install_date"],
        vec![("name".into(), ".{0,30}".prop_map(Value::String).boxed())],
    );
    object_of(
        &["id", "agent", "software"],
        vec![
            ("id".into(), any::<i64>().prop_map(Value::from).boxed()),
            ("agent".into(), any::<i64>().prop_map(Value::from).boxed()),
            ("software".into(), prop::collection::vec(item, 0..4).prop_map(Value::Array).boxed()),
        ],
    )
}

/// The answer of a list endpoint: a bare array, a DRF page, or something else entirely.
fn list_answer(record: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    let records = prop::collection::vec(record, 0..5).prop_map(Value::Array);
    let next = prop_oneof![Just(Value::Null), Just(json!("")), Just(json!("http://x/?page=2")), tactical_leaf()];
    prop_oneof![
        records.clone(),
        (any::<u64>(), next, records.clone()).prop_map(|(count, next, results)| {
            json!({"count": count, "next": next, "previous": null, "results": results})
        }),
        records.clone().prop_map(|a| json!({"alerts": a, "alerts_count": 1})),
        tactical_value(),
    ]
}

/// An agent record as [`Agent::raw`] keeps it.
fn without_blobs(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        for k in NOT_KEPT {
            m.remove(k);
        }
    }
    v
}

fn derive_agent(agent: &Agent) {
    let _ = (agent.local_ips(), agent.serial_number(), agent.make_model(), agent.cpu_models());
    let _ = (agent.cpu_cores(), agent.disks(), agent.last_seen_at(), agent.boot_time_at());
    let ctx = MappingContext { integration_id: Uuid::nil(), now: Utc::now() };
    if let Some(scope) = SiteIndex::default().scope_for(agent, Some("1")) {
        let _ = agent_snapshot(agent, &scope, &ctx);
    }
}

fn every_parser(v: &Value) {
    if let Ok((agents, _)) = parse::records::<Agent>(v.clone()) {
        agents.iter().for_each(derive_agent);
    }
    if let Ok(agent) = parse::agent_detail(v.clone()) {
        derive_agent(&agent);
    }
    let _ = parse::records::<Client>(v.clone());
    if let Ok((sites, _)) = parse::records::<Site>(v.clone()) {
        let _ = SiteIndex::new(sites);
    }
    if let Ok(alerts) = parse::active_alerts(v.clone()) {
        for a in &alerts {
            let _ = polled_alert(a, Uuid::nil(), Utc::now()).dedup_key();
        }
    }
    if let Ok(Some(row)) = parse::agent_software(v.clone()) {
        let _ = software_items(row.software);
    }
}

fn read_fixture(name: &str) -> Vec<u8> {
    rmm_tests::tactical_fixture(name)
}

const FIXTURES: &[&str] = &[
    "beta_agents.json",
    "beta_agent_1.json",
    "agents.json",
    "agents_nodetail.json",
    "agent_detail.json",
    "beta_clients.json",
    "beta_sites.json",
    "alerts_filtered.json",
    "alerts_top.json",
    "software.json",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn webhook_queries_never_panic(q in ".{0,64}", t in "[0-9a-f%+-]{0,40}") {
        let _ = webhook_tenant(Some(&q));
        if let Some(tenant) = webhook_tenant(Some(&format!("x=1&tenant={t}"))) {
            prop_assert!(!tenant.is_empty() && tenant == tenant.trim());
        }
    }

}

proptest! {
    // Agent records are the largest generated inputs: fewer cases keep these to a few seconds.
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn agent_pages_never_panic(v in list_answer(agent_record())) {
        if let Ok((agents, has_next)) = parse::records::<Agent>(v.clone()) {
            // A page object says whether another follows; a bare array is the whole list.
            prop_assert!(!has_next || v.get("results").is_some());
            agents.iter().for_each(derive_agent);
        }
        if let Ok(agent) = parse::agent_detail(v) {
            derive_agent(&agent);
        }
    }

    #[test]
    fn single_agents_never_panic(v in agent_record()) {
        let agent = parse::agent_detail(v.clone()).expect("every field is read leniently");
        prop_assert_eq!(agent.raw(), &without_blobs(&v));
        derive_agent(&agent);
    }

    /// An agent page read from its bytes as they arrive gives the agents a parse of the whole
    /// answer gives, and fails exactly when it fails; what each agent keeps of `wmi_detail` gives
    /// what its whole tree gives.
    #[test]
    fn agent_pages_read_as_a_stream_match_a_whole_parse(v in list_answer(agent_record())) {
        let bytes = serde_json::to_vec(&v).unwrap();
        // The same bytes parsed whole (a float read back may differ from the generated one).
        let whole: Value = serde_json::from_slice(&bytes).unwrap();
        let streamed = parse::read_agent_page(&bytes[..]);
        match parse::records::<Agent>(whole.clone()) {
            Ok((agents, has_next)) => {
                let page = streamed.expect("the stream reads what the whole parse reads");
                prop_assert_eq!(page.has_next, has_next);
                prop_assert_eq!(page.items.len(), agents.len());
                let records = match &whole {
                    Value::Array(a) => a.clone(),
                    o => o["results"].as_array().cloned().unwrap_or_default(),
                };
                for ((s, w), record) in page.items.iter().zip(&agents).zip(&records) {
                    prop_assert_eq!(format!("{s:?}"), format!("{w:?}"));
                    prop_assert_eq!(s.raw(), &without_blobs(record));
                    let tree = record.get("wmi_detail").filter(|w| w.is_object());
                    prop_assert_eq!(&s.wmi, &tree.map(|t| WmiFacts::from_wmi_detail(t, s.is_posix())));
                }
            }
            Err(_) => prop_assert!(streamed.is_err()),
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn clients_and_sites_never_panic(clients in list_answer(client_record()), sites in list_answer(site_record())) {
        let _ = parse::records::<Client>(clients);
        if let Ok((sites, _)) = parse::records::<Site>(sites) {
            let ids: Vec<i64> = sites.iter().map(|s| s.id).collect();
            let index = SiteIndex::new(sites);
            for id in ids {
                let agent = Agent::from_value(json!({"agent_id": "a", "site": id})).unwrap();
                prop_assert!(index.scope_for(&agent, None).is_some());
            }
        }
    }

    #[test]
    fn alert_lists_never_panic(v in list_answer(alert_record())) {
        if let Ok(alerts) = parse::active_alerts(v) {
            for a in &alerts {
                let n = polled_alert(a, Uuid::nil(), Utc::now());
                prop_assert_eq!(&n.external_alert_id, &a.id.to_string());
                prop_assert!(n.dedup_key().chars().count() <= 255);
            }
        }
    }

    /// The streaming reader gives exactly the rows a whole-body parse gives, and fails exactly
    /// when it fails.
    #[test]
    fn software_stream_matches_a_whole_parse(v in list_answer(software_row())) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let mut streamed = Vec::new();
        let result = parse::read_software_rows(&bytes[..], |row| {
            streamed.push(row);
            true
        });
        match serde_json::from_value::<Vec<SoftwareRow>>(v) {
            Ok(rows) => {
                prop_assert!(result.is_ok(), "{:?}", result);
                prop_assert_eq!(&streamed, &rows);
            }
            Err(_) => prop_assert!(result.is_err()),
        }
        for row in streamed {
            for item in software_items(row.software) {
                let _ = normalize_name(&item.name);
            }
        }
    }

    #[test]
    fn software_stream_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse::read_software_rows(&body[..], |_| true);
    }

    #[test]
    fn agent_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse::read_agent_page(&body[..]);
        let _ = parse::agent_detail_from_slice(&body);
    }

    /// The recorded answers, cut short and with bytes changed, through every parser.
    #[test]
    fn damaged_recorded_answers_never_panic(
        which in prop::sample::select(FIXTURES),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let mut bytes = read_fixture(which);
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = parse::read_software_rows(&bytes[..], |_| true);
        if let Ok(page) = parse::read_agent_page(&bytes[..]) {
            page.items.iter().for_each(derive_agent);
        }
        if let Ok(agent) = parse::agent_detail_from_slice(&bytes) {
            derive_agent(&agent);
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            every_parser(&v);
        }
    }

    #[test]
    fn arbitrary_json_through_every_parser(v in json_value()) {
        every_parser(&v);
    }
}

#[test]
fn recorded_answers_parse_whole() {
    for name in FIXTURES {
        let bytes = read_fixture(name);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        every_parser(&v);
    }
    let (agents, has_next) =
        parse::records::<Agent>(serde_json::from_slice(&read_fixture("beta_agents.json")).unwrap()).unwrap();
    assert_eq!((agents.len(), has_next), (2, true));
    let mut rows = 0;
    parse::read_software_rows(&read_fixture("software.json")[..], |_| {
        rows += 1;
        true
    })
    .unwrap();
    assert!(rows > 0);
}
