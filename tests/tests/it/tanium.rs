//! Tanium end to end against the Gateway simulator: the client (transport, classification,
//! paging, the exact variables AlgaPSA sends), scope and device syncs on PostgreSQL and SQLite
//! (ownership of endpoints in two groups, group isolation, tombstones, the incremental delta,
//! criticality facts, the Asset API fallback), and the jobs through the admin API.

use rmm_shared::ingest::IngestRun;
use std::time::Duration;

use rmm_shared::db::Db;
use rmm_shared::db::sql::ColType;
use rmm_shared::providers::tanium::client::{TaniumClient, TaniumConfig, group_filter};
use rmm_shared::providers::tanium::error::TaniumError;
use rmm_shared::providers::tanium::sync::{SyncMode, SyncOptions, sync_devices, sync_scopes};
use rmm_tests::sim::tanium::{DEFAULT_TOKEN, TaniumFault, TaniumFleetSpec, TaniumSim, TaniumSimConfig};
use rmm_tests::stores::{self, count, rows, scalar};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

fn client_with(url: &str, token: &str) -> TaniumClient {
    let mut config = TaniumConfig::new(url, SecretString::from(token.to_owned()));
    config.http.retry.base_delay = Duration::from_millis(5);
    config.http.retry.max_delay = Duration::from_millis(20);
    config.http.rate_limit = None;
    TaniumClient::new(config).unwrap()
}

fn client_for(sim: &TaniumSim) -> TaniumClient {
    // The bare host: the client adds /plugin/products/gateway.
    client_with(sim.base_url(), DEFAULT_TOKEN)
}

async fn sim(spec: TaniumFleetSpec) -> TaniumSim {
    TaniumSim::start(TaniumSimConfig { fleet: spec, ..TaniumSimConfig::default() }).await.unwrap()
}

/// A tenant with a Tanium integration whose computer groups are synced and each mapped to a
/// client of its own; returns (tenant, integration, (group id, client) per group).
async fn mapped_tenant(db: &Db, c: &TaniumClient) -> (Uuid, Uuid, Vec<(String, Uuid)>) {
    let tenant = stores::tenant(db).await.unwrap();
    let integration = stores::integration(db, tenant, "tanium").await.unwrap();
    sync_scopes(db, tenant, integration, c).await.unwrap();
    let mapped = stores::map_each_scope(db, tenant, usize::MAX).await;
    (tenant, integration, mapped)
}

// ---- client -------------------------------------------------------------------------------

#[tokio::test]
async fn groups_page_with_algapsas_exact_variables_and_the_session_header() {
    let sim = sim(TaniumFleetSpec { groups: 3, ..Default::default() }).await;
    let c = client_for(&sim);
    assert_eq!(c.graphql_url().path(), "/plugin/products/gateway/graphql");
    let groups = c.list_computer_groups().await.unwrap();
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[0].name, "Customer 01");
    let log = sim.requests();
    assert_eq!(log[0].operation.as_deref(), Some("TaniumComputerGroups"));
    assert_eq!(log[0].variables, json!({"first": 250, "after": null}));
    assert!(log[0].query.contains("$after: Cursor"));
    // A wrong token is refused by the simulator (the header is what authenticates).
    let bad = client_with(sim.base_url(), "token-wrong");
    let e = bad.list_computer_groups().await.unwrap_err();
    assert!(e.to_string().starts_with("Tanium Gateway rejected the configured API token."), "{e}");
}

#[tokio::test]
async fn endpoints_carry_every_enrichment_field_and_the_member_of_filter() {
    let sim = sim(TaniumFleetSpec { groups: 2, endpoints: 6, in_two_groups: 0, ..Default::default() }).await;
    let c = client_for(&sim);
    let group = sim.fleet().groups[0].id.clone();
    let filter = group_filter(Some(&group));
    let mut pager = c.endpoint_pages(filter.clone(), Some(group.clone()));
    let page = pager.next_page().await.unwrap().unwrap();
    assert_eq!(page.len(), 3);
    assert!(pager.next_page().await.unwrap().is_none());
    let log = sim.requests();
    assert_eq!(
        log[0].variables,
        json!({"first": 250, "after": null, "filter": {"memberOf": {"id": group}, "op": "EQ", "negated": false, "any": false}})
    );
    for field in ["manufacturer", "installedApplications", "discover", "reportingConsoleURL", "wirelessAdapters"] {
        assert!(log[0].query.contains(field), "query lacks {field}");
    }
    let r = &page[0];
    let ep = sim.fleet().endpoints.into_iter().find(|e| e.id == r.id).unwrap();
    assert_eq!(r.computer_group_id.as_deref(), Some(group.as_str()));
    assert_eq!(r.serial_number.as_deref(), Some(ep.serial.as_str()));
    // primaryUser "Error: …" falls back to lastLoggedInUser.
    assert_eq!(r.current_user.as_deref(), Some(ep.last_logged_in_user.as_str()));
    assert_eq!(r.wan_ip_address.as_deref(), Some(ep.nat_ip.as_str()));
    assert_eq!(r.memory_total_gb, Some(8.0));
    assert_eq!(r.disk_usage.len(), 1, "the null disk is dropped");
    assert_eq!(r.installed_applications.len(), 3);
    assert_eq!(r.metadata["ipAddresses"].as_array().unwrap().len(), 2, "blank entries dropped");
    assert_eq!(r.metadata["dnsServers"], json!(["127.0.2.2"]));
    assert_eq!(r.metadata["networkAdapters"][0]["type"], "Ethernet 802.3");
    assert_eq!(r.metadata["networkAdapters"].as_array().unwrap().len(), 1);
    assert!(r.metadata["reportingConsoleURL"].as_str().unwrap().contains(&r.id));

    let reboot = c.last_reboot(&filter).await.unwrap();
    assert_eq!(reboot.len(), 3);
    assert!(sim.requests().last().unwrap().query.contains("Last Reboot"));
    let crit = c.criticality_readings(&filter).await.unwrap();
    let reading = &crit[&ep.id];
    assert_eq!(reading.label.as_deref(), ep.criticality.as_deref());
    assert!(reading.is_available);
}

#[tokio::test]
async fn failures_are_classified_like_algapsa_with_the_real_graphql_text() {
    let sim = sim(TaniumFleetSpec::default()).await;
    let c = client_for(&sim);
    sim.inject(TaniumFault::RedirectToLogin, Some(1));
    let e = c.test_connection().await.unwrap_err();
    assert!(matches!(e, TaniumError::Redirected), "{e}");
    assert!(e.to_string().contains("redirected to authentication"));
    sim.inject(TaniumFault::HtmlLogin, Some(1));
    let e = c.test_connection().await.unwrap_err();
    assert!(e.to_string().contains("non-GraphQL response (text/html)"), "{e}");
    sim.inject(TaniumFault::Status(401), Some(1));
    assert!(matches!(c.test_connection().await.unwrap_err(), TaniumError::Unauthorized));
    sim.inject(TaniumFault::Status(403), Some(1));
    assert!(matches!(c.test_connection().await.unwrap_err(), TaniumError::Forbidden));
    // 5xx is retried with backoff; the second attempt succeeds.
    sim.reset_log();
    sim.inject(TaniumFault::Status(502), Some(1));
    assert_eq!(c.test_connection().await.unwrap(), 1);
    // A lasting 5xx ends as a status error after bounded attempts.
    sim.inject(TaniumFault::Status(503), None);
    let e = c.test_connection().await.unwrap_err();
    assert!(matches!(e, TaniumError::Status { status: 503, .. }) && e.is_transient(), "{e}");
    sim.clear_faults();
    // GraphQL errors: the real text, not a generic fallback.
    let group = sim.fleet().groups[1].id.clone();
    sim.fail_group(&group);
    let e = c.endpoint_ids(&group_filter(Some(&group))).await.unwrap_err();
    assert!(e.to_string().contains(&format!("Permission denied: computer group {group}")), "{e}");
    sim.clear_faults();
    // Partial data (an endpoint field errors) is an error: the page is not trusted.
    let ep = sim.fleet().endpoints[0].clone();
    sim.partial_data(Some(&ep.id));
    let mut pager = c.endpoint_pages(group_filter(Some(&ep.groups[0])), None);
    let e = pager.next_page().await.unwrap_err();
    assert!(e.to_string().contains("Installed Applications sensor timed out"), "{e}");
    sim.clear_faults();
    // Token checks happen before any request.
    assert!(matches!(
        TaniumClient::new(TaniumConfig::new(sim.base_url(), SecretString::from("not-a-token"))),
        Err(TaniumError::TokenPrefix)
    ));
}

#[tokio::test]
async fn a_null_cursor_with_more_pages_ends_the_walk() {
    let sim = sim(TaniumFleetSpec {
        groups: 1,
        endpoints: 600,
        in_two_groups: 0,
        apps_per_endpoint: 0,
        ..Default::default()
    })
    .await;
    let c = client_for(&sim);
    assert_eq!(c.endpoint_ids(&Value::Null).await.unwrap().len(), 600);
    sim.null_cursor_after(Some(1));
    assert_eq!(c.endpoint_ids(&Value::Null).await.unwrap().len(), 250);
}

#[tokio::test]
async fn the_probe_needs_computer_groups() {
    // A Gateway answering `{"data": {}}`.
    let app = poem::Route::new().at(
        "/plugin/products/gateway/graphql",
        poem::post(poem::endpoint::make_sync(|_| {
            poem::Response::builder().content_type("application/json").body("{\"data\":{}}")
        })),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    let c = client_with(&format!("http://{addr}"), DEFAULT_TOKEN);
    let e = c.test_connection().await.unwrap_err();
    assert!(e.to_string().contains("failed to return computer groups"), "{e}");
}

#[test]
fn the_simulator_serves_every_type_and_field_of_our_schema() {
    use async_graphql::parser::parse_schema;
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    use std::collections::{BTreeMap, BTreeSet};
    fn fields(sdl: &str) -> BTreeMap<String, BTreeSet<String>> {
        let doc = parse_schema(sdl).expect("SDL parses");
        let mut out = BTreeMap::new();
        for def in doc.definitions {
            if let TypeSystemDefinition::Type(t) = def {
                let name = t.node.name.node.to_string();
                let set: BTreeSet<String> = match &t.node.kind {
                    TypeKind::Object(o) => o
                        .fields
                        .iter()
                        .map(|f| {
                            let args: Vec<String> =
                                f.node.arguments.iter().map(|a| a.node.name.node.to_string()).collect();
                            format!("{}({}): {}", f.node.name.node, args.join(","), f.node.ty.node)
                        })
                        .collect(),
                    TypeKind::InputObject(o) => {
                        o.fields.iter().map(|f| format!("{}: {}", f.node.name.node, f.node.ty.node)).collect()
                    }
                    TypeKind::Enum(e) => e.values.iter().map(|v| v.node.value.node.to_string()).collect(),
                    _ => BTreeSet::new(),
                };
                out.insert(name, set);
            }
        }
        out
    }
    let ours = fields(include_str!("../../../shared/graphql/tanium/gateway.graphql"));
    let served = fields(&rmm_tests::sim::tanium::schema_sdl());
    assert!(ours.len() > 20);
    for (ty, set) in &ours {
        let Some(theirs) = served.get(ty) else { panic!("the simulator does not serve type {ty}") };
        for f in set {
            assert!(theirs.contains(f), "the simulator's {ty} lacks {f}; it has {theirs:?}");
        }
    }
}

// ---- syncs --------------------------------------------------------------------------------

async fn asset_row(db: &Db, tenant: Uuid, device: &str) -> Vec<Option<String>> {
    let d = db.dialect();
    rows(
        db,
        &format!(
            "SELECT CAST(client_id AS TEXT), status, agent_status, asset_type, rmm_organization_id FROM assets \
             WHERE tenant = {} AND rmm_provider = 'tanium' AND rmm_device_id = {}",
            d.param(1, ColType::Uuid),
            d.param(2, ColType::Text)
        ),
        &[&tenant.to_string(), device],
    )
    .await
    .unwrap()
    .into_iter()
    .next()
    .unwrap_or_else(|| panic!("no asset for {device}"))
}

#[tokio::test]
async fn scope_sync_keeps_assignments_and_flags() {
    stores::each_store(|store| async move {
        let sim = sim(TaniumFleetSpec { groups: 3, ..Default::default() }).await;
        let c = client_for(&sim);
        let db = &store.db;
        let tenant = stores::tenant(db).await.unwrap();
        let integration = stores::integration(db, tenant, "tanium").await.unwrap();
        let r = sync_scopes(db, tenant, integration, &c).await.unwrap();
        assert_eq!((r.processed, r.created, r.updated), (3, 3, 0));
        assert_eq!(count(db, tenant, "rmm_organization_mappings WHERE client_id IS NULL").await, 3);
        let mapped = stores::map_each_scope(db, tenant, usize::MAX).await;
        let d = db.dialect();
        db.execute(
            &format!(
                "UPDATE rmm_organization_mappings SET auto_sync_assets = {}, auto_create_tickets = {} WHERE tenant = {} AND external_organization_id = {}",
                rmm_shared::db::sql::P(d).bool(false),
                rmm_shared::db::sql::P(d).bool(true),
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &mapped[0].0],
        )
        .await
        .unwrap();
        let r = sync_scopes(db, tenant, integration, &c).await.unwrap();
        assert_eq!((r.processed, r.created, r.updated), (3, 0, 3));
        assert_eq!(count(db, tenant, "rmm_organization_mappings WHERE client_id IS NOT NULL").await, 3);
        let flags = rows(
            db,
            &format!(
                "SELECT CAST(auto_sync_assets AS TEXT), CAST(auto_create_tickets AS TEXT), CAST(client_id AS TEXT), \
                 CAST(last_synced_at AS TEXT), CAST(metadata AS TEXT) FROM rmm_organization_mappings \
                 WHERE tenant = {} AND external_organization_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &mapped[0].0],
        )
        .await
        .unwrap();
        assert!(!stores::truthy(&flags[0][0]) && stores::truthy(&flags[0][1]));
        assert_eq!(flags[0][2].as_deref(), Some(mapped[0].1.to_string().as_str()));
        assert!(flags[0][3].is_some());
        assert!(flags[0][4].as_deref().unwrap().contains("computer_group"));
        store
    })
    .await;
}

#[tokio::test]
async fn full_sync_ingests_each_endpoint_once_with_one_owner_and_is_idempotent() {
    stores::each_store(|store| async move {
        let spec = TaniumFleetSpec { groups: 3, endpoints: 30, in_two_groups: 4, apps_per_endpoint: 2, seed: 11 };
        let sim = sim(spec).await;
        let c = client_for(&sim);
        let db = &store.db;
        let (tenant, integration, mapped) = mapped_tenant(db, &c).await;
        // A dry run first: every endpoint planned once, under its owner group; nothing written.
        let dry = IngestRun::dry();
        let r = sync_devices(db, tenant, &dry, integration, &c, SyncMode::Full, SyncOptions::default()).await.unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!((r.counts.created, r.duplicates_skipped, r.facts_written), (30, 4, 0));
        let plan = dry.take_dry_run().expect("a plan");
        assert_eq!(plan.organizations.values().map(|o| o.create).sum::<u64>(), 30, "{plan:?}");
        assert!(plan.organizations.keys().all(|g| mapped.iter().any(|(m, _)| m == g)), "{plan:?}");
        assert_eq!(count(db, tenant, "assets WHERE rmm_provider = 'tanium'").await, 0);
        assert_eq!(count(db, tenant, "asset_facts WHERE provider = 'tanium'").await, 0);
        let r = sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, SyncOptions::default()).await.unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!((r.counts.processed, r.counts.created, r.counts.failed), (30, 30, 0));
        assert_eq!(r.duplicates_skipped, 4, "each endpoint in two groups is skipped once");
        assert!(r.tombstone_pass);
        assert_eq!(r.facts_written, 30);
        assert_eq!(count(db, tenant, "assets WHERE rmm_provider = 'tanium'").await, 30);
        assert_eq!(count(db, tenant, "tenant_external_entity_mappings WHERE integration_type = 'tanium'").await, 30);

        // Endpoints in two groups belong to the smaller group (fewer members), ties to the lower id.
        let fleet = sim.fleet();
        let size = |g: &str| fleet.endpoints.iter().filter(|e| e.groups.iter().any(|x| x == g)).count();
        for ep in fleet.endpoints.iter().filter(|e| e.groups.len() == 2) {
            let (a, b) = (&ep.groups[0], &ep.groups[1]);
            let key = |g: &String| (size(g), g.parse::<u64>().unwrap());
            let owner = if key(a) <= key(b) { a } else { b };
            let client = mapped.iter().find(|(g, _)| g == owner).unwrap().1;
            let row = asset_row(db, tenant, &ep.id).await;
            assert_eq!(row[0].as_deref(), Some(client.to_string().as_str()), "endpoint {} owner", ep.id);
            assert_eq!(row[4].as_deref(), Some(owner.as_str()));
        }
        // Classification and the extension row.
        let server = fleet.endpoints.iter().find(|e| e.os_name.contains("Server")).unwrap();
        assert_eq!(asset_row(db, tenant, &server.id).await[3].as_deref(), Some("server"));
        let ws = fleet.endpoints.iter().find(|e| e.os_platform == "Mac").unwrap();
        assert_eq!(asset_row(db, tenant, &ws.id).await[3].as_deref(), Some("workstation"));
        let d = db.dialect();
        let ext = rows(
            db,
            &format!(
                "SELECT CAST(w.cpu_cores AS TEXT), CAST(w.ram_gb AS TEXT), w.current_user_ext, CAST(w.uptime_seconds AS TEXT), \
                 CAST(w.installed_software AS TEXT), CAST(w.disk_usage AS TEXT) FROM (SELECT cpu_cores, ram_gb, \"current_user\" AS current_user_ext, \
                 uptime_seconds, installed_software, disk_usage, asset_id, tenant FROM workstation_assets) w \
                 JOIN assets a ON a.asset_id = w.asset_id AND a.tenant = w.tenant WHERE a.tenant = {} AND a.rmm_device_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &ws.id],
        )
        .await
        .unwrap();
        let e = &ext[0];
        assert_eq!(e[0].as_deref().map(|s| s.trim_end_matches(".0")), Some(ws.logical_processors.to_string().as_str()));
        assert!(e[1].is_some() && e[3].is_some());
        assert!(e[4].as_deref().unwrap().contains("App 0"));
        assert!(e[5].as_deref().unwrap().contains("utilization_percent"));
        // Criticality facts.
        assert_eq!(count(db, tenant, "asset_facts WHERE provider = 'tanium' AND fact_key = 'criticality' AND is_available").await, 30);

        // A rerun: the same rows, all updated.
        let r = sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, SyncOptions::default()).await.unwrap();
        assert_eq!((r.counts.processed, r.counts.created, r.counts.updated), (30, 0, 30), "{:?}", r.errors);
        assert_eq!(count(db, tenant, "assets WHERE rmm_provider = 'tanium'").await, 30);
        assert_eq!(count(db, tenant, "tenant_external_entity_mappings WHERE integration_type = 'tanium'").await, 30);
        assert_eq!(count(db, tenant, "asset_facts WHERE provider = 'tanium'").await, 30);
        store
    })
    .await;
}

#[tokio::test]
async fn a_failing_group_does_not_stop_the_others_and_blocks_tombstones() {
    stores::each_store(|store| async move {
        let sim = sim(TaniumFleetSpec { groups: 3, endpoints: 12, in_two_groups: 0, ..Default::default() }).await;
        let c = client_for(&sim);
        let db = &store.db;
        let (tenant, integration, _) = mapped_tenant(db, &c).await;
        sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, SyncOptions::default())
            .await
            .unwrap();
        let bad = sim.fleet().groups[1].id.clone();
        // An endpoint leaves Tanium while a group is failing: nothing is tombstoned yet.
        let gone = sim.fleet().endpoints[0].id.clone();
        sim.remove_endpoint(&gone);
        sim.fail_group(&bad);
        let r =
            sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, SyncOptions::default())
                .await
                .unwrap();
        assert_eq!((r.groups, r.groups_failed), (3, 1));
        assert_eq!(r.counts.updated, 7, "the two healthy groups: 8 endpoints minus the removed one");
        assert!(r.errors[0].starts_with(&format!("Tanium group {bad}: ")), "{:?}", r.errors);
        assert!(r.errors[0].contains("Permission denied"));
        assert!(!r.tombstone_pass);
        assert_eq!(asset_row(db, tenant, &gone).await[1].as_deref(), Some("active"));
        // Incremental runs never tombstone either.
        sim.clear_faults();
        let since = chrono::Utc::now() - chrono::Duration::days(30);
        let r = sync_devices(
            db,
            tenant,
            &IngestRun::default(),
            integration,
            &c,
            SyncMode::Incremental { since },
            SyncOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.counts.deleted, 0);
        assert_eq!(asset_row(db, tenant, &gone).await[1].as_deref(), Some("active"));
        // A complete full pass does.
        let r =
            sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, SyncOptions::default())
                .await
                .unwrap();
        assert_eq!((r.counts.deleted, r.counts.updated), (1, 11), "{:?}", r.errors);
        let row = asset_row(db, tenant, &gone).await;
        assert_eq!((row[1].as_deref(), row[2].as_deref()), (Some("inactive"), Some("offline")));
        let d = db.dialect();
        let status = scalar(
            db,
            &format!(
                "SELECT sync_status FROM tenant_external_entity_mappings WHERE tenant = {} AND external_entity_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &gone],
        )
        .await
        .unwrap();
        assert_eq!(status.as_deref(), Some("error"));
        // Already tombstoned: not counted again.
        let r =
            sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, SyncOptions::default())
                .await
                .unwrap();
        assert_eq!(r.counts.deleted, 0);
        store
    })
    .await;
}

#[tokio::test]
async fn incremental_runs_ask_the_gateway_for_the_delta_and_fall_back_when_refused() {
    stores::each_store(|store| async move {
        let sim = sim(TaniumFleetSpec { groups: 2, endpoints: 20, in_two_groups: 0, ..Default::default() }).await;
        let c = client_for(&sim);
        let db = &store.db;
        let (tenant, integration, _) = mapped_tenant(db, &c).await;
        sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, SyncOptions::default())
            .await
            .unwrap();
        let since = chrono::Utc::now() - chrono::Duration::days(2);
        let fresh = sim.fleet().endpoints.iter().filter(|e| e.last_seen >= since).count() as u64;
        assert!(fresh > 0 && fresh < 20);
        sim.reset_log();
        let r = sync_devices(
            db,
            tenant,
            &IngestRun::default(),
            integration,
            &c,
            SyncMode::Incremental { since },
            SyncOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!((r.delta_server, r.delta_client), (2, 0));
        assert_eq!((r.counts.processed, r.counts.updated, r.unchanged), (fresh, fresh, 0));
        let inventory: Vec<_> =
            sim.requests().into_iter().filter(|q| q.operation.as_deref() == Some("TaniumEndpoints")).collect();
        assert!(inventory.iter().all(|q| q.variables["filter"]["filters"][1]["path"] == "eidLastSeen"));
        // A Gateway that refuses the filter: the whole group is read and the window applied here.
        sim.refuse_last_seen_filter(true);
        let r = sync_devices(
            db,
            tenant,
            &IngestRun::default(),
            integration,
            &c,
            SyncMode::Incremental { since },
            SyncOptions::default(),
        )
        .await
        .unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!((r.delta_server, r.delta_client), (0, 2));
        assert_eq!((r.counts.processed, r.unchanged), (fresh, 20 - fresh));
        store
    })
    .await;
}

#[tokio::test]
async fn criticality_failures_leave_facts_alone_and_missing_readings_are_unavailable() {
    stores::each_store(|store| async move {
        let sim = sim(TaniumFleetSpec { groups: 1, endpoints: 4, in_two_groups: 0, ..Default::default() }).await;
        let c = client_for(&sim);
        let db = &store.db;
        let (tenant, integration, _) = mapped_tenant(db, &c).await;
        sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, SyncOptions::default()).await.unwrap();
        let first = sim.fleet().endpoints[0].clone();
        let fact = |id: String| {
            let db = db.clone();
            async move {
                let d = db.dialect();
                rows(
                    &db,
                    &format!(
                        "SELECT f.value_text, CAST(f.is_available AS TEXT), CAST(f.value_json AS TEXT) FROM asset_facts f \
                         JOIN assets a ON a.asset_id = f.asset_id AND a.tenant = f.tenant \
                         WHERE f.tenant = {} AND a.rmm_device_id = {}",
                        d.param(1, ColType::Uuid),
                        d.param(2, ColType::Text)
                    ),
                    &[&tenant.to_string(), &id],
                )
                .await
                .unwrap()
                .remove(0)
            }
        };
        assert_eq!(fact(first.id.clone()).await[0], first.criticality);
        // The sensor disappears (the metadata probe finds nothing): facts stay as they were.
        sim.set_criticality_visible(false);
        sim.update_endpoint(&first.id, |e| e.criticality = Some("Low".into()));
        let r = sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, SyncOptions::default()).await.unwrap();
        assert!(r.errors.is_empty());
        assert_eq!(r.facts_written, 0);
        assert_eq!(fact(first.id.clone()).await[0], first.criticality);
        // Back, but this endpoint's reading is empty: an unavailable fact with no value.
        sim.set_criticality_visible(true);
        sim.update_endpoint(&first.id, |e| e.criticality = None);
        sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, SyncOptions::default()).await.unwrap();
        let f = fact(first.id.clone()).await;
        assert_eq!(f[0], None);
        assert!(!stores::truthy(&f[1]));
        assert!(f[2].as_deref().unwrap().contains("Endpoint Criticality with Level"), "{f:?}");
        store
    })
    .await;
}

#[tokio::test]
async fn the_asset_api_fallback_refreshes_status_only_and_pages() {
    stores::each_store(|store| async move {
        let sim = sim(TaniumFleetSpec { groups: 1, endpoints: 3, in_two_groups: 0, ..Default::default() }).await;
        let mut config = TaniumConfig::new(sim.base_url(), SecretString::from(DEFAULT_TOKEN));
        config.asset_api_url = Some(sim.base_url().to_owned());
        config.http.rate_limit = None;
        let c = TaniumClient::new(config).unwrap();
        let db = &store.db;
        let (tenant, integration, _) = mapped_tenant(db, &c).await;
        let opts = SyncOptions { use_asset_api_fallback: true };
        sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, opts).await.unwrap();
        let fleet = sim.fleet();
        // The group empties in the Gateway (endpoints aged out); the Asset API still knows two
        // of them (one offline), plus 1200 unrelated assets that must not be created.
        let mut assets: Vec<Value> = (0..1200).map(|i| json!({"id": 900_000 + i, "name": format!("other-{i}")})).collect();
        assets.push(json!({"id": fleet.endpoints[0].id.parse::<i64>().unwrap(), "name": "renamed", "online": false, "lastSeen": "2026-11-01T00:00:00Z"}));
        assets.push(json!({"id": fleet.endpoints[1].id.parse::<i64>().unwrap(), "online": true}));
        sim.set_asset_rows(assets);
        for ep in &fleet.endpoints {
            sim.remove_endpoint(&ep.id);
        }
        // A dry run reads the fallback: two refreshed, one tombstone planned, nothing written.
        let dry = IngestRun::dry();
        let r = sync_devices(db, tenant, &dry, integration, &c, SyncMode::Full, opts).await.unwrap();
        assert_eq!((r.fallback_refreshed, r.counts.deleted), (2, 1), "{:?}", r.errors);
        let plan = dry.take_dry_run().expect("a plan");
        assert_eq!(plan.organizations.values().map(|o| o.tombstone).sum::<u64>(), 1, "{plan:?}");
        assert_eq!(asset_row(db, tenant, &fleet.endpoints[0].id).await[1].as_deref(), Some("active"));
        assert_eq!(asset_row(db, tenant, &fleet.endpoints[2].id).await[1].as_deref(), Some("active"));
        let r = sync_devices(db, tenant, &IngestRun::default(), integration, &c, SyncMode::Full, opts).await.unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.fallback_refreshed, 2);
        assert!(sim.asset_requests().len() >= 3, "the listing is paged: {:?}", sim.asset_requests());
        assert_eq!(count(db, tenant, "assets WHERE rmm_provider = 'tanium'").await, 3, "nothing created");
        let row = asset_row(db, tenant, &fleet.endpoints[0].id).await;
        assert_eq!((row[1].as_deref(), row[2].as_deref()), (Some("inactive"), Some("offline")));
        // Hardware and software from the Gateway are untouched.
        let d = db.dialect();
        let hw = rows(
            db,
            &format!(
                "SELECT CAST(e.cpu_cores AS TEXT), CAST(e.installed_software AS TEXT), CAST(e.os_type AS TEXT) FROM assets a \
                 JOIN (SELECT asset_id, tenant, cpu_cores, installed_software, os_type FROM workstation_assets \
                 UNION ALL SELECT asset_id, tenant, cpu_cores, installed_software, os_type FROM server_assets) e \
                 ON e.asset_id = a.asset_id AND e.tenant = a.tenant WHERE a.tenant = {} AND a.rmm_device_id = {}",
                d.param(1, ColType::Uuid),
                d.param(2, ColType::Text)
            ),
            &[&tenant.to_string(), &fleet.endpoints[0].id],
        )
        .await
        .unwrap();
        assert!(hw[0][0].is_some() && hw[0][2].is_some());
        assert!(hw[0][1].as_deref().unwrap().contains("App 0"));
        // The third endpoint is in neither the Gateway nor the Asset API: tombstoned.
        assert_eq!(asset_row(db, tenant, &fleet.endpoints[2].id).await[1].as_deref(), Some("inactive"));
        assert_eq!(r.counts.deleted, 1);
        store
    })
    .await;
}

// ---- jobs through the admin API ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_configures_tests_and_runs_the_tanium_jobs() {
    use reqwest::Method;
    use rmm_jobs::JobStatus;
    use rmm_shared::config::QueueBackend;
    use rmm_tests::runtime::{Ingress, Workers, fast_settings, runtime, wait_finished};
    const KEY: &str = "tanium-admin-bootstrap-key-0123456789";
    stores::each_store(|store| async move {
        let db = &store.db;
        let dir = tempfile::tempdir().unwrap();
        let sim = sim(TaniumFleetSpec { groups: 2, endpoints: 8, in_two_groups: 1, ..Default::default() }).await;
        let mut settings = fast_settings(QueueBackend::Database);
        settings.upstream.tanium_requests_per_second = 0;
        let rt = runtime(db, settings, dir.path()).await.unwrap();
        let ing = Ingress::start(&rt, Some(KEY)).await;
        let tenant = stores::tenant(db).await.unwrap();
        let base = format!("/tenants/{tenant}/integrations/tanium");

        // Bad input is refused with a clear message.
        let (s, b) = ing.api(Method::PUT, &base, KEY, Some(json!({"instance_url": sim.base_url(), "api_token": "abc"}))).await;
        assert_eq!(s, 400, "{b}");
        assert!(b.to_string().contains("token- prefix"), "{b}");
        let (s, b) = ing.api(Method::PUT, &base, KEY, Some(json!({"api_key": "x"}))).await;
        assert_eq!(s, 400, "{b}");
        // Save: the Gateway path is added to the bare host; settings are merged, not replaced.
        let (s, b) = ing
            .api(
                Method::PUT,
                &base,
                KEY,
                Some(json!({"instance_url": sim.base_url(), "api_token": DEFAULT_TOKEN,
                            "settings": {"deviceSync": {"enabled": true, "intervalMinutes": 60}}})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["config"]["instanceUrl"], json!(sim.gateway_url()));
        assert_eq!(b["credentials"]["hasApiToken"], json!(true));
        assert!(!b.to_string().contains(DEFAULT_TOKEN), "the token is never returned");
        let (s, b) = ing.api(Method::PUT, &base, KEY, Some(json!({"use_asset_api_fallback": true}))).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["settings"]["deviceSync"]["enabled"], json!(true), "{b}");
        assert_eq!(b["settings"]["provider_settings"]["tanium"]["use_asset_api_fallback"], json!(true), "{b}");

        // Connection test: a failure deactivates with the reason; success activates.
        sim.inject(TaniumFault::Status(401), Some(1));
        let (s, b) = ing.api(Method::POST, &format!("{base}/test"), KEY, Some(json!({}))).await;
        assert_eq!((s, &b["success"]), (200, &json!(false)), "{b}");
        assert!(b["error"].as_str().unwrap().contains("401 Unauthorized"));
        let (_, b) = ing.api(Method::POST, &format!("{base}/test"), KEY, Some(json!({}))).await;
        assert_eq!(b["success"], json!(true), "{b}");

        // A Tactical-only kind is refused for Tanium, naming the kinds that apply.
        let (s, b) = ing.api(Method::POST, &format!("{base}/jobs/sync-devices"), KEY, Some(json!({}))).await;
        assert_eq!(s, 400, "{b}");
        assert!(b.to_string().contains("tanium-full-sync"), "{b}");

        let workers = Workers::start(&rt);
        let (s, b) = ing.api(Method::POST, &format!("{base}/jobs/sync-org"), KEY, Some(json!({}))).await;
        assert_eq!(s, 202, "{b}");
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(count(db, tenant, "rmm_organization_mappings WHERE true").await, 2);
        stores::map_each_scope(db, tenant, usize::MAX).await;
        let (s, b) = ing.api(Method::POST, &format!("{base}/jobs/tanium-full-sync"), KEY, Some(json!({}))).await;
        assert_eq!(s, 202, "{b}");
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let counts = &job.result.as_ref().unwrap()["counts"];
        assert_eq!((counts["created"].as_u64(), counts["duplicates_skipped"].as_u64()), (Some(8), Some(1)), "{job:?}");
        let d = db.dialect();
        let state = rows(
            db,
            &format!(
                "SELECT sync_status, CAST(last_full_sync_at AS TEXT), sync_error, CAST(settings AS TEXT) FROM rmm_integrations \
                 WHERE tenant = {} AND provider = 'tanium'",
                d.param(1, ColType::Uuid)
            ),
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
        assert_eq!(state[0][0].as_deref(), Some("completed"));
        assert!(state[0][1].is_some() && state[0][2].is_none());
        assert!(state[0][3].as_deref().unwrap().contains("deviceSync"), "settings kept");

        // AlgaPSA's sync route enqueues tanium-full-sync; an incremental run after a full one.
        let (s, b) = ing.api(Method::POST, &format!("{base}/jobs/tanium-full-sync"), KEY, Some(json!({"args": {"mode": "incremental"}}))).await;
        assert_eq!(s, 202, "{b}");
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(job.result.as_ref().unwrap()["detail"]["mode"], json!("incremental"), "{job:?}");
        // A failing Gateway: the run records the error and the integration shows it.
        sim.inject(TaniumFault::Status(403), None);
        let (_, b) = ing.api(Method::POST, &format!("{base}/jobs/tanium-full-sync"), KEY, Some(json!({}))).await;
        let job = wait_finished(&rt, b["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "group failures are reported by the run, not retried: {job:?}");
        let err = scalar(
            db,
            &format!("SELECT sync_error FROM rmm_integrations WHERE tenant = {} AND provider = 'tanium'", d.param(1, ColType::Uuid)),
            &[&tenant.to_string()],
        )
        .await
        .unwrap()
        .unwrap();
        assert!(err.contains("rejected the configured API token"), "{err}");
        sim.clear_faults();
        workers.stop().await;
        drop(ing);
        store
    })
    .await;
}

/// Every kind of Gateway fault, for a whole run: bounded retries (at most the client's 4 attempts
/// per request, once for answers a retry cannot fix), the run ends in error with the admin's
/// message for that fault, and no device is written.
#[tokio::test]
async fn each_gateway_fault_ends_the_run_in_error_with_bounded_retries_and_no_device_written() {
    use rmm_shared::runs::{Run, RunKind, RunOutcome};
    let store = stores::sqlite().await.unwrap();
    let db = &store.db;
    let faults: [(&str, Option<TaniumFault>, &str, u64); 6] = [
        ("5xx", Some(TaniumFault::Status(502)), "request failed with status 502", 4),
        ("429 with Retry-After", Some(TaniumFault::RateLimited("1".into())), "HTTP 429", 4),
        ("timeout", None, "did not answer within", 4),
        ("HTML login page with 200", Some(TaniumFault::HtmlLogin), "non-GraphQL response (text/html)", 1),
        ("redirect to login", Some(TaniumFault::RedirectToLogin), "redirected to authentication", 1),
        ("truncated JSON", Some(TaniumFault::Truncated), "non-GraphQL response (application/json)", 1),
    ];
    for (label, fault, message, attempts) in faults {
        let sim = sim(TaniumFleetSpec::default()).await;
        let mut config = TaniumConfig::new(sim.base_url(), SecretString::from(DEFAULT_TOKEN.to_owned()));
        config.http.retry.base_delay = Duration::from_millis(5);
        config.http.retry.max_delay = Duration::from_millis(20);
        config.http.rate_limit = None;
        config.http.request_timeout = Duration::from_millis(300);
        let c = TaniumClient::new(config).unwrap();
        let (tenant, integration, _) = mapped_tenant(db, &c).await;
        sim.reset_log();
        match fault {
            Some(f) => sim.inject(f, None),
            None => sim.set_latency(Duration::from_secs(2)),
        }

        let started = std::time::Instant::now();
        let run =
            Run::start(db, tenant, integration, "tanium", "tanium-full-sync", RunKind::Full, "admin").await.unwrap();
        // As the job records it: a run that could not start its walk fails with that error.
        let outcome = match sync_devices(
            db,
            tenant,
            &IngestRun::default(),
            integration,
            &c,
            SyncMode::Full,
            SyncOptions::default(),
        )
        .await
        {
            Ok(r) => RunOutcome { counts: r.counts, errors: r.errors, cursor: None },
            Err(e) => RunOutcome { errors: vec![e.to_string()], ..Default::default() },
        };
        run.finish(db, &outcome).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(30), "{label}: took {:?}", started.elapsed());
        // The membership walk fails at its first request of each of the 3 groups (one failing group
        // does not stop the others), and at most the criticality probe is asked besides: each
        // request tried `attempts` times.
        let n = sim.http_requests();
        assert!((3 * attempts..=4 * attempts).contains(&n), "{label}: {n} requests");
        assert!(!outcome.errors.is_empty(), "{label}");
        stores::assert_failed_run(db, tenant, "tanium", message, DEFAULT_TOKEN, label).await;
    }
    store.cleanup().await;
}
