//! Property tests: every Tanium answer parser (the Gateway's GraphQL answers and the Asset API
//! listing) never panics, whatever it is given — answers generated in the Gateway's shapes with
//! any field of any type or missing, arbitrary JSON and bytes, and the simulator's real answers
//! cut short or corrupted. The `tanium_answers` target in `fuzz/` runs the same entry points for
//! longer.

use chrono::Utc;
use graphql_client::GraphQLQuery;
use proptest::prelude::*;
use rmm_shared::providers::tanium::asset_api;
use rmm_shared::providers::tanium::mapping::endpoint_snapshot;
use rmm_shared::providers::tanium::ops::*;
use rmm_shared::providers::tanium::parse;
use rmm_shared::providers::tanium::record::EndpointRecord;
use rmm_shared::providers::tanium::sync::criticality_fact;
use rmm_tests::sim::tanium::{TaniumSim, TaniumSimConfig};
use serde_json::{Map, Value, json};
use uuid::Uuid;

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,24}".prop_map(Value::String),
        Just(Value::String("Tue, 13 Aug 2026 09:00:00 +0000".into())),
        Just(Value::String("2026-08-13T09:00:00Z".into())),
        Just(Value::String("512 GB".into())),
        Just(Value::String("37%".into())),
    ]
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,10}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A value for a field of the given shape, or now and then anything else, or nothing (weighted so
/// that most generated nodes are well-formed and pages of several reach the mapping).
fn field(shape: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        200 => shape.prop_map(Some),
        1 => json_value().prop_map(Some),
        1 => Just(None),
    ]
    .boxed()
}

fn text() -> BoxedStrategy<Value> {
    prop_oneof![".{0,20}".prop_map(Value::String), Just(Value::Null)].boxed()
}

fn texts() -> BoxedStrategy<Value> {
    prop::collection::vec(text(), 0..4).prop_map(Value::Array).boxed()
}

fn object(fields: Vec<(&'static str, BoxedStrategy<Option<Value>>)>) -> BoxedStrategy<Value> {
    let (names, strategies): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    strategies
        .prop_map(move |values| {
            let mut m = Map::new();
            for (n, v) in names.iter().zip(values) {
                if let Some(v) = v {
                    m.insert((*n).to_owned(), v);
                }
            }
            Value::Object(m)
        })
        .boxed()
}

/// An endpoint node with every field the inventory query asks for, each of its own shape or not.
fn endpoint_node() -> BoxedStrategy<Value> {
    let named = || {
        object(vec![
            ("name", field(text())),
            ("version", field(text())),
            ("uninstallable", field(any::<bool>().prop_map(Value::Bool).boxed())),
        ])
    };
    let disk = object(vec![
        ("name", field(text())),
        ("free", field(text())),
        ("total", field(text())),
        ("usedPercentage", field(text())),
    ]);
    object(vec![
        ("id", field(prop_oneof!["[0-9]{0,6}".prop_map(Value::String), Just(Value::String(String::new()))].boxed())),
        ("name", field(text())),
        ("serialNumber", field(text())),
        ("eidLastSeen", field(text())),
        ("ipAddress", field(text())),
        ("ipAddresses", field(texts())),
        ("macAddresses", field(texts())),
        ("manufacturer", field(text())),
        ("model", field(text())),
        ("chassisType", field(text())),
        ("domainName", field(text())),
        ("isVirtual", field(any::<bool>().prop_map(Value::Bool).boxed())),
        ("isEncrypted", field(any::<bool>().prop_map(Value::Bool).boxed())),
        ("lastLoggedInUser", field(text())),
        ("primaryUser", field(object(vec![("name", field(text()))]))),
        (
            "os",
            field(object(vec![("name", field(text())), ("generation", field(text())), ("platform", field(text()))])),
        ),
        (
            "processor",
            field(object(vec![
                ("cpu", field(text())),
                ("logicalProcessors", field(any::<i32>().prop_map(Value::from).boxed())),
            ])),
        ),
        ("memory", field(object(vec![("total", field(text()))]))),
        ("disks", field(prop::collection::vec(disk, 0..3).prop_map(Value::Array).boxed())),
        ("installedApplications", field(prop::collection::vec(named(), 0..4).prop_map(Value::Array).boxed())),
        ("discover", field(object(vec![("natIpAddress", field(text()))]))),
        ("networking", field(object(vec![("dnsServers", field(texts()))]))),
        ("sensorReadings", field(json_value().boxed())),
    ])
}

/// `{"data": {"endpoints": {"edges": [{"node": …}], "pageInfo": …}}}`, sometimes with errors.
fn endpoints_answer() -> BoxedStrategy<Value> {
    let edges = prop::collection::vec(
        prop_oneof![30 => endpoint_node().prop_map(|n| json!({"cursor": "c", "node": n})), 1 => json_value()],
        0..6,
    );
    let page_info =
        object(vec![("hasNextPage", field(any::<bool>().prop_map(Value::Bool).boxed())), ("endCursor", field(text()))]);
    let errors = prop_oneof![8 => Just(None), 1 => prop::collection::vec(json_value(), 0..2).prop_map(|e| Some(Value::Array(e)))];
    (edges, page_info, errors)
        .prop_map(|(edges, page_info, errors)| {
            let mut answer = json!({"data": {"endpoints": {"edges": edges, "pageInfo": page_info}}});
            if let Some(e) = errors {
                answer["errors"] = e;
            }
            answer
        })
        .boxed()
}

/// Everything the sync derives from one parsed record.
fn derive(record: &EndpointRecord) {
    let s = endpoint_snapshot(record, Uuid::nil(), "1", Utc::now());
    assert_eq!(s.external_device_id, record.id);
}

/// Every parser on one body; none may panic.
fn every_parser(body: &[u8]) {
    let ct = || Some("application/json".to_owned());
    let _ = parse::probe(body, ct());
    let _ = parse::computer_groups(body, ct());
    let _ = parse::endpoint_ids(body, ct());
    if let Ok(page) = parse::endpoints(body, ct(), Some("7")) {
        page.items.iter().for_each(derive);
    }
    let _ = parse::last_reboot(body, ct());
    if let Ok(page) = parse::criticality(body, ct()) {
        for (_, c) in &page.items {
            let _ = criticality_fact(Uuid::nil(), Uuid::nil(), Some(c), Utc::now());
        }
    }
    let _ = parse::sensors(body, ct());
    let _ = asset_api::parse_page(body);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn generated_inventory_pages_never_panic(v in endpoints_answer()) {
        let body = serde_json::to_vec(&v).unwrap();
        match parse::endpoints(&body, None, Some("7")) {
            Ok(page) => {
                prop_assert!(v.get("errors").and_then(Value::as_array).is_none_or(|e| e.is_empty()));
                let edges = v["data"]["endpoints"]["edges"].as_array().map(Vec::len).unwrap_or(0);
                prop_assert!(page.items.len() <= edges);
                for r in &page.items {
                    prop_assert!(!r.id.is_empty());
                    prop_assert_eq!(r.computer_group_id.as_deref(), Some("7"));
                    derive(r);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        every_parser(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        every_parser(&serde_json::to_vec(&v).unwrap());
        every_parser(&serde_json::to_vec(&json!({"data": v.clone()})).unwrap());
        every_parser(&serde_json::to_vec(&json!({"data": {"endpoints": v.clone(), "computerGroups": v.clone(), "sensors": v}})).unwrap());
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
        every_parser(&b);
    }
}

/// The simulator's answer to one operation, as the client would receive it.
async fn answer_of<Q: GraphQLQuery>(sim: &TaniumSim, vars: Q::Variables) -> Vec<u8> {
    let body = Q::build_query(vars);
    let resp = reqwest::Client::new()
        .post(format!("{}/graphql", sim.gateway_url()))
        .header("session", sim.token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    resp.bytes().await.unwrap().to_vec()
}

/// Real answers: whole, they parse to what the simulator holds; cut short anywhere or with a
/// byte changed, no parser panics, and a cut answer is never taken for a shorter page.
#[tokio::test]
async fn real_answers_cut_short_or_corrupted_never_panic() {
    let sim = TaniumSim::start(TaniumSimConfig::default()).await.unwrap();
    let fleet = sim.fleet();
    let inventory =
        answer_of::<TaniumEndpoints>(&sim, tanium_endpoints::Variables { first: 250, after: None, filter: None }).await;
    let groups =
        answer_of::<TaniumComputerGroups>(&sim, tanium_computer_groups::Variables { first: 250, after: None }).await;
    let reboot = answer_of::<TaniumEndpointLastReboot>(
        &sim,
        tanium_endpoint_last_reboot::Variables { first: 250, after: None, filter: None },
    )
    .await;
    let crit = answer_of::<TaniumEndpointCriticality>(
        &sim,
        tanium_endpoint_criticality::Variables { first: 250, after: None, filter: None },
    )
    .await;
    let sensors =
        answer_of::<TaniumCriticalitySensorMetadata>(&sim, tanium_criticality_sensor_metadata::Variables).await;

    let page = parse::endpoints(&inventory, None, None).unwrap();
    assert_eq!(page.items.len(), fleet.endpoints.len());
    assert!(page.items.iter().all(|r| !r.installed_applications.is_empty()));
    assert_eq!(parse::computer_groups(&groups, None).unwrap().items.len(), fleet.groups.len());
    assert_eq!(parse::last_reboot(&reboot, None).unwrap().items.len(), fleet.endpoints.len());
    assert_eq!(parse::criticality(&crit, None).unwrap().items.len(), fleet.endpoints.len());
    assert!(!parse::sensors(&sensors, None).unwrap().is_empty());

    let mut rng = rand::rng();
    for body in [&inventory, &groups, &reboot, &crit, &sensors] {
        let end = body.iter().rposition(|b| !b.is_ascii_whitespace()).unwrap();
        let step = (end / 400).max(1);
        for cut in (0..end).step_by(step) {
            let short = &body[..cut];
            every_parser(short);
            assert!(parse::endpoints(short, None, None).is_err(), "a cut answer ({cut} of {end} bytes) parsed");
            assert!(parse::computer_groups(short, None).is_err());
        }
        for _ in 0..300 {
            let mut b = body.clone();
            let i = rand::Rng::random_range(&mut rng, 0..b.len());
            b[i] = rand::Rng::random(&mut rng);
            every_parser(&b);
        }
    }
}
