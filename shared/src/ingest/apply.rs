//! Applying a page plan: set-based statements in one transaction per page.
//!
//! Concurrency: on Postgres each page first takes a transaction-scoped advisory lock per device
//! `(tenant, provider, external id)`, in a fixed order, so two ingests of the same device never
//! interleave (and never deadlock); on SQLite the transaction holds the write lock from its start.
//! The state is read after the locks are held, so the second ingest sees the first one's rows.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::IngestRun;
use super::changes::{ASSET_FIELDS, AssetChange, EXTENSION_FIELDS, TrackedValues, asset_changes};
use super::plan::{AssetRow, AssetWrite, CurrentState, Item, MappingRow, MappingWrite, PagePlan, limits, truncate};
use super::snapshot::ExtensionSnapshot;
use crate::db::sql::{ColType, P, Tx, fmt_ts};
use crate::db::{Db, DbError, Dialect};

use ColType::{Bool, Int, Json, Text, Timestamp, Uuid as U};

/// A stable 64-bit key for a device, the same in every process and build (FNV-1a).
pub fn device_lock_key(tenant: Uuid, provider: &str, device_id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tenant
        .as_bytes()
        .iter()
        .chain([0u8].iter())
        .chain(provider.as_bytes())
        .chain([0u8].iter())
        .chain(device_id.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Loads the rows a page touches, plans it and writes it, in one transaction; the assets' changes
/// are recorded in `rmm_sync.asset_history` under `run` in the same transaction.
pub(super) async fn apply_page(
    db: &Db,
    tenant: Uuid,
    run: &IngestRun,
    items: &[Item<'_>],
    now: DateTime<Utc>,
) -> Result<PagePlan, DbError> {
    db.in_write_tx(async |tx| {
        lock_devices(tx, tenant, items).await?;
        let (state, extensions, before) = load_state(tx, tenant, items).await?;
        let plan = super::plan::plan_page(items, &state, now);
        write_plan(tx, tenant, &plan, &extensions, now).await?;
        write_history(tx, tenant, run, &asset_changes(&plan, &before), now).await?;
        Ok(plan)
    })
    .await
}

/// Loads and plans a page in a read-only transaction (a dry run): the plan and its changes.
pub(super) async fn plan_only(
    db: &Db,
    tenant: Uuid,
    items: &[Item<'_>],
    now: DateTime<Utc>,
) -> Result<(PagePlan, Vec<AssetChange>), DbError> {
    db.in_read_tx(async |tx| {
        let (state, _, before) = load_state(tx, tenant, items).await?;
        let plan = super::plan::plan_page(items, &state, now);
        let changes = asset_changes(&plan, &before);
        Ok((plan, changes))
    })
    .await
}

/// Records a page's asset changes, one statement for the page.
async fn write_history(
    tx: &mut Tx,
    tenant: Uuid,
    run: &IngestRun,
    changes: &[AssetChange],
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    if changes.is_empty() {
        return Ok(());
    }
    let d = tx.dialect();
    let rows: Vec<Value> = changes
        .iter()
        .map(|c| {
            json!({
                "asset_id": c.asset_id, "external_device_id": c.external_device_id,
                "external_organization_id": c.external_organization_id, "action": c.action.as_str(),
                "changes": c.changes,
            })
        })
        .collect();
    let cols = [
        ("asset_id", U),
        ("external_device_id", Text),
        ("external_organization_id", Text),
        ("action", Text),
        ("changes", Json),
    ];
    let sql = format!(
        "INSERT INTO {table} (tenant, asset_id, run_id, job_id, external_device_id, external_organization_id, \
         action, changes, recorded_at) \
         SELECT {t}, r.asset_id, {run}, {job}, r.external_device_id, r.external_organization_id, r.action, r.changes, {n} \
         FROM {rs}",
        table = crate::db::ours(d, "asset_history"),
        t = d.param(1, U),
        run = P(d).nullable(2, "uuid"),
        job = P(d).nullable(3, "text"),
        n = d.param(4, Timestamp),
        rs = d.recordset(5, &cols),
    );
    let run_id = run.run_id().map(|r| r.to_string()).unwrap_or_default();
    tx.execute(
        &sql,
        &[&tenant.to_string(), &run_id, run.job_id().unwrap_or(""), &fmt_ts(now), &Value::Array(rows).to_string()],
    )
    .await?;
    Ok(())
}

async fn lock_devices(tx: &mut Tx, tenant: Uuid, items: &[Item<'_>]) -> Result<(), DbError> {
    if tx.dialect() != Dialect::Postgres {
        return Ok(());
    }
    let keys: BTreeSet<i64> = items
        .iter()
        .map(|i| {
            let id = truncate(&i.snapshot.external_device_id, limits::EXTERNAL_ID);
            device_lock_key(tenant, i.snapshot.provider.slug(), &id)
        })
        .collect();
    let keys: Vec<String> = keys.into_iter().map(|k| k.to_string()).collect();
    let keys = serde_json::to_string(&keys).expect("json");
    tx.execute(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT json_array_elements_text($1::json)::bigint AS k) s ORDER BY k",
        &[&keys],
    )
    .await?;
    Ok(())
}

type MappingTuple = (String, String, String, String, Option<String>);
type AssetTuple = (String, String, Option<String>, Option<String>, Option<String>, bool, bool, String);

/// The extension rows that exist, as `(asset_id, table)`.
type Extensions = HashSet<(Uuid, &'static str)>;

const EXTENSION_TABLES: [&str; 2] = ["workstation_assets", "server_assets"];

/// The tracked values of each loaded asset, before the page.
type Before = HashMap<Uuid, TrackedValues>;

/// The tracked values of an asset row `a` and its extension row (`w`, else `s`) as one JSON array
/// ([`TrackedValues::from_json`]).
fn tracked_json(d: Dialect) -> String {
    let mut exprs: Vec<String> = ASSET_FIELDS.iter().map(|c| format!("a.{c}")).collect();
    exprs.extend(
        EXTENSION_FIELDS.iter().map(|c| format!("CASE WHEN w.asset_id IS NOT NULL THEN w.\"{c}\" ELSE s.\"{c}\" END")),
    );
    match d {
        Dialect::Postgres => format!("CAST(json_build_array({}) AS TEXT)", exprs.join(", ")),
        Dialect::Sqlite => format!("json_array({})", exprs.join(", ")),
    }
}

async fn load_state(
    tx: &mut Tx,
    tenant: Uuid,
    items: &[Item<'_>],
) -> Result<(CurrentState, Extensions, Before), DbError> {
    let d = tx.dialect();
    let tenant_s = tenant.to_string();
    let providers: BTreeSet<&str> = items.iter().map(|i| i.snapshot.provider.slug()).collect();
    let device_ids: BTreeSet<String> =
        items.iter().map(|i| truncate(&i.snapshot.external_device_id, limits::EXTERNAL_ID)).collect();
    let providers_j = serde_json::to_string(&providers).expect("json");
    let devices_j = serde_json::to_string(&device_ids).expect("json");

    let mapping_cols =
        format!("{}, integration_type, alga_entity_id, external_entity_id, external_realm_id", d.text("id"));
    let mut mappings: Vec<MappingTuple> = tx
        .fetch(
            &format!(
                "SELECT {mapping_cols} FROM tenant_external_entity_mappings \
                 WHERE tenant = {t} AND alga_entity_type = 'asset' AND integration_type {p} \
                 AND external_entity_id {e} ORDER BY created_at, id",
                t = d.param(1, U),
                p = d.in_json(2, Text),
                e = d.in_json(3, Text),
            ),
            &[&tenant_s, &providers_j, &devices_j],
        )
        .await?;

    let mapped_asset_ids: BTreeSet<String> =
        mappings.iter().map(|m| m.2.clone()).filter(|id| Uuid::parse_str(id).is_ok()).collect();
    let mapped_j = serde_json::to_string(&mapped_asset_ids).expect("json");
    let assets: Vec<AssetTuple> = tx
        .fetch(
            &format!(
                "SELECT {id}, a.asset_type, {client}, a.rmm_provider, a.rmm_device_id, \
                 w.asset_id IS NOT NULL, s.asset_id IS NOT NULL, {tracked} \
                 FROM assets a \
                 LEFT JOIN workstation_assets w ON w.tenant = a.tenant AND w.asset_id = a.asset_id \
                 LEFT JOIN server_assets s ON s.tenant = a.tenant AND s.asset_id = a.asset_id \
                 WHERE a.tenant = {t} AND (a.asset_id {m} OR (a.rmm_provider {p} AND a.rmm_device_id {e})) \
                 ORDER BY a.created_at, a.asset_id",
                id = d.text("a.asset_id"),
                client = d.text("a.client_id"),
                tracked = tracked_json(d),
                t = d.param(1, U),
                m = d.in_json(2, U),
                p = d.in_json(3, Text),
                e = d.in_json(4, Text),
            ),
            &[&tenant_s, &mapped_j, &providers_j, &devices_j],
        )
        .await?;

    // Mappings that point at assets found by (rmm_provider, rmm_device_id) but were not found by
    // external id.
    let unmapped: BTreeSet<String> =
        assets.iter().map(|a| a.0.clone()).filter(|id| !mapped_asset_ids.contains(id)).collect();
    if !unmapped.is_empty() {
        let unmapped_j = serde_json::to_string(&unmapped).expect("json");
        let extra: Vec<MappingTuple> = tx
            .fetch(
                &format!(
                    "SELECT {mapping_cols} FROM tenant_external_entity_mappings \
                     WHERE tenant = {t} AND alga_entity_type = 'asset' AND integration_type {p} \
                     AND alga_entity_id {a} ORDER BY created_at, id",
                    t = d.param(1, U),
                    p = d.in_json(2, Text),
                    a = d.in_json(3, Text),
                ),
                &[&tenant_s, &providers_j, &unmapped_j],
            )
            .await?;
        for m in extra {
            if !mappings.iter().any(|x| x.0 == m.0) {
                mappings.push(m);
            }
        }
    }

    let integrations: BTreeSet<String> = items.iter().map(|i| i.snapshot.integration_id.to_string()).collect();
    let scopes: BTreeSet<String> =
        items.iter().map(|i| truncate(&i.snapshot.external_scope_id, limits::EXTERNAL_ID)).collect();
    let orgs: Vec<(String, String, String)> = tx
        .fetch(
            &format!(
                "SELECT {i}, external_organization_id, {c} FROM rmm_organization_mappings \
                 WHERE tenant = {t} AND integration_id {ii} AND external_organization_id {s} AND client_id IS NOT NULL",
                i = d.text("integration_id"),
                c = d.text("client_id"),
                t = d.param(1, U),
                ii = d.in_json(2, U),
                s = d.in_json(3, Text),
            ),
            &[
                &tenant_s,
                &serde_json::to_string(&integrations).expect("json"),
                &serde_json::to_string(&scopes).expect("json"),
            ],
        )
        .await?;

    let parse = |s: &str| Uuid::parse_str(s).ok();
    let mut extensions = Extensions::new();
    let mut before = Before::new();
    for (id, _, client, _, device, workstation, server, tracked) in &assets {
        let Some(id) = parse(id) else { continue };
        for (table, exists) in EXTENSION_TABLES.into_iter().zip([*workstation, *server]) {
            if exists {
                extensions.insert((id, table));
            }
        }
        let values = serde_json::from_str(tracked).unwrap_or(Value::Null);
        let client = client.as_deref().and_then(parse);
        before.insert(id, TrackedValues::from_json(client, device.clone(), &values, *workstation || *server));
    }
    let state = CurrentState {
        mappings: mappings
            .into_iter()
            .filter_map(|(id, integration_type, alga_entity_id, external_entity_id, external_realm_id)| {
                Some(MappingRow {
                    id: parse(&id)?,
                    integration_type,
                    alga_entity_id,
                    external_entity_id,
                    external_realm_id,
                })
            })
            .collect(),
        assets: assets
            .into_iter()
            .filter_map(|(id, asset_type, client, rmm_provider, rmm_device_id, ..)| {
                Some(AssetRow {
                    asset_id: parse(&id)?,
                    asset_type,
                    client_id: client.as_deref().and_then(parse),
                    rmm_provider,
                    rmm_device_id,
                })
            })
            .collect(),
        org_clients: orgs
            .into_iter()
            .filter_map(|(i, org, c)| Some(((parse(&i)?, org), parse(&c)?)))
            .collect::<HashMap<_, _>>(),
    };
    Ok((state, extensions, before))
}

const ASSET_VALUE_COLS: [(&str, ColType); 10] = [
    ("asset_type", Text),
    ("name", Text),
    ("serial_number", Text),
    ("status", Text),
    ("location", Text),
    ("rmm_provider", Text),
    ("rmm_device_id", Text),
    ("rmm_organization_id", Text),
    ("agent_status", Text),
    ("last_seen_at", Timestamp),
];

/// The always-written extension columns and their types.
const EXT_ALWAYS: [(&str, ColType); 11] = [
    ("os_type", Text),
    ("os_version", Text),
    ("agent_version", Text),
    ("current_user", Text),
    ("uptime_seconds", ColType::BigInt),
    ("lan_ip", Text),
    ("wan_ip", Text),
    ("antivirus_status", Text),
    ("antivirus_product", Text),
    ("last_reboot_at", Timestamp),
    ("system_info", Json),
];

/// The patch columns: written like the always-written ones unless the snapshot leaves them
/// untouched (bit 5 of the presence signature says they are written).
const EXT_PATCHES: [(&str, ColType); 5] = [
    ("pending_patches", Int),
    ("pending_os_patches", Int),
    ("pending_software_patches", Int),
    ("failed_patches", Int),
    ("last_patch_scan_at", Timestamp),
];
const PATCHES_BIT: u8 = 1 << 5;

/// The present-only extension columns, in a fixed order (a bit each in the presence signature).
const EXT_PRESENT: [(&str, ColType); 5] =
    [("cpu_model", Text), ("cpu_cores", Int), ("ram_gb", Int), ("disk_usage", Json), ("installed_software", Json)];

fn ts(v: Option<DateTime<Utc>>) -> Value {
    v.map(|t| Value::String(fmt_ts(t))).unwrap_or(Value::Null)
}

async fn write_plan(
    tx: &mut Tx,
    tenant: Uuid,
    plan: &PagePlan,
    existing: &Extensions,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let d = tx.dialect();
    let tenant_s = tenant.to_string();
    let now_s = fmt_ts(now);
    let t = d.param(1, U);
    let n = d.param(2, Timestamp);

    // Mappings removed first, so the rows that replace them never meet them in a unique index.
    let removed: Vec<String> =
        plan.mappings.iter().filter(|(_, w)| matches!(w, MappingWrite::Remove)).map(|(id, _)| id.to_string()).collect();
    if !removed.is_empty() {
        tx.execute(
            &format!("DELETE FROM tenant_external_entity_mappings WHERE tenant = {t} AND id {}", d.in_json(2, U)),
            &[&tenant_s, &serde_json::to_string(&removed).expect("json")],
        )
        .await?;
    }

    // Assets.
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    let mut tombstones = Vec::new();
    for (id, w) in &plan.assets {
        match w {
            AssetWrite::Insert { values, client_id, asset_tag } => {
                let mut row = asset_values_json(values);
                row.insert("asset_id".into(), json!(id));
                row.insert("client_id".into(), json!(client_id));
                row.insert("asset_tag".into(), json!(asset_tag));
                inserts.push(Value::Object(row));
            }
            AssetWrite::Update { values, client_id } => {
                let mut row = asset_values_json(values);
                row.insert("asset_id".into(), json!(id));
                row.insert("client_id".into(), json!(client_id));
                updates.push(Value::Object(row));
            }
            AssetWrite::Tombstone => tombstones.push(json!({ "asset_id": id })),
        }
    }
    let value_names: Vec<&str> = ASSET_VALUE_COLS.iter().map(|(c, _)| *c).collect();
    if !inserts.is_empty() {
        let mut cols: Vec<(&str, ColType)> = vec![("asset_id", U), ("client_id", U), ("asset_tag", Text)];
        cols.extend(ASSET_VALUE_COLS);
        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let select: Vec<String> = names.iter().map(|c| format!("r.{c}")).collect();
        let sql = format!(
            "INSERT INTO assets (tenant, {names}, last_rmm_sync_at, created_at, updated_at) \
             SELECT {t}, {select}, {n}, {n}, {n} FROM {rs}",
            names = names.join(", "),
            select = select.join(", "),
            rs = d.recordset(3, &cols),
        );
        tx.execute(&sql, &[&tenant_s, &now_s, &Value::Array(inserts).to_string()]).await?;
    }
    // One statement for every update. A device whose values are unchanged gets each column's own
    // value back: the row ends exactly as a refresh of `last_rmm_sync_at` alone would leave it (and,
    // with no indexed value changed, can be a heap-only update).
    if !updates.is_empty() {
        let mut cols: Vec<(&str, ColType)> = vec![("asset_id", U), ("client_id", U)];
        cols.extend(ASSET_VALUE_COLS);
        let sets: Vec<String> = value_names.iter().map(|c| format!("{c} = r.{c}")).collect();
        let sql = format!(
            "UPDATE assets SET {sets}, last_rmm_sync_at = {n}, client_id = COALESCE(r.client_id, assets.client_id) \
             FROM {rs} WHERE assets.tenant = {t} AND assets.asset_id = r.asset_id",
            sets = sets.join(", "),
            rs = d.recordset(3, &cols),
        );
        tx.execute(&sql, &[&tenant_s, &now_s, &Value::Array(updates).to_string()]).await?;
    }
    if !tombstones.is_empty() {
        let sql = format!(
            "UPDATE assets SET status = 'inactive', agent_status = 'offline', last_rmm_sync_at = {n}, updated_at = {n} \
             WHERE tenant = {t} AND asset_id IN (SELECT r.asset_id FROM {rs})",
            rs = d.recordset(3, &[("asset_id", U)]),
        );
        tx.execute(&sql, &[&tenant_s, &now_s, &Value::Array(tombstones).to_string()]).await?;
    }

    // Extension rows, one statement per (table, set of present-only columns, row exists). An
    // existing row that already holds every value of its patch is not written: the `WHERE` compares
    // in the database, so the current rows are never read back (and, unlike an upsert, an unchanged
    // row is not even locked).
    let mut groups: HashMap<(&'static str, u8, bool), Vec<Value>> = HashMap::new();
    for (asset_id, table, ext) in &plan.extensions {
        let (sig, row) = extension_json(*asset_id, ext);
        groups.entry((table, sig, existing.contains(&(*asset_id, *table)))).or_default().push(row);
    }
    let mut keys: Vec<_> = groups.keys().copied().collect();
    keys.sort();
    for key @ (table, sig, exists) in keys {
        let rows = groups.remove(&key).unwrap_or_default();
        let mut cols: Vec<(&str, ColType)> = vec![("asset_id", U)];
        cols.extend(EXT_ALWAYS);
        if sig & PATCHES_BIT != 0 {
            cols.extend(EXT_PATCHES);
        }
        cols.extend(EXT_PRESENT.iter().enumerate().filter(|(i, _)| sig & (1 << i) != 0).map(|(_, c)| *c));
        let sql = if exists {
            let sets: Vec<String> = cols.iter().skip(1).map(|(c, _)| format!("\"{c}\" = r.\"{c}\"")).collect();
            let differs: Vec<String> = cols
                .iter()
                .skip(1)
                .map(|(c, _)| d.distinct(&format!("{table}.\"{c}\""), &format!("r.\"{c}\"")))
                .collect();
            format!(
                "UPDATE {table} SET {sets} FROM {rs} \
                 WHERE {table}.tenant = {t} AND {table}.asset_id = r.asset_id AND ({differs})",
                sets = sets.join(", "),
                differs = differs.join(" OR "),
                rs = d.recordset(2, &cols),
            )
        } else {
            let names: Vec<String> = cols.iter().map(|(c, _)| format!("\"{c}\"")).collect();
            let select: Vec<String> = cols.iter().map(|(c, _)| format!("r.\"{c}\"")).collect();
            format!(
                "INSERT INTO {table} (tenant, {names}) SELECT {t}, {select} FROM {rs}",
                names = names.join(", "),
                select = select.join(", "),
                rs = d.recordset(2, &cols),
            )
        };
        tx.execute(&sql, &[&tenant_s, &Value::Array(rows).to_string()]).await?;
    }

    // Mappings.
    let mut m_inserts = Vec::new();
    let mut m_updates = Vec::new();
    for (id, w) in &plan.mappings {
        match w {
            MappingWrite::Insert {
                integration_type,
                alga_entity_id,
                external_entity_id,
                external_realm_id,
                metadata,
            } => {
                m_inserts.push(json!({
                    "id": id, "integration_type": integration_type, "alga_entity_id": alga_entity_id,
                    "external_entity_id": external_entity_id, "external_realm_id": external_realm_id,
                    "metadata": metadata,
                }));
            }
            MappingWrite::Synced { alga_entity_id, external_realm_id, metadata } => {
                m_updates.push(json!({
                    "id": id, "alga_entity_id": alga_entity_id, "set_realm": true,
                    "external_realm_id": external_realm_id, "sync_status": "synced", "metadata": metadata,
                    "touch": false,
                }));
            }
            MappingWrite::Deleted { metadata } => {
                m_updates.push(json!({
                    "id": id, "alga_entity_id": null, "set_realm": false, "external_realm_id": null,
                    "sync_status": "error", "metadata": metadata, "touch": true,
                }));
            }
            MappingWrite::Remove => {}
        }
    }
    // One statement for every update; a mapping whose values are unchanged ends as a refresh of
    // `last_synced_at` alone would leave it.
    if !m_updates.is_empty() {
        let cols = [
            ("id", U),
            ("alga_entity_id", Text),
            ("set_realm", Bool),
            ("external_realm_id", Text),
            ("sync_status", Text),
            ("metadata", Json),
            ("touch", Bool),
        ];
        let truthy = |c: &str| match d {
            Dialect::Postgres => format!("r.{c}"),
            Dialect::Sqlite => format!("r.{c} = 1"),
        };
        let sql = format!(
            "UPDATE tenant_external_entity_mappings SET \
             alga_entity_id = COALESCE(r.alga_entity_id, tenant_external_entity_mappings.alga_entity_id), \
             external_realm_id = CASE WHEN {sr} THEN r.external_realm_id ELSE tenant_external_entity_mappings.external_realm_id END, \
             sync_status = r.sync_status, last_synced_at = {n}, metadata = r.metadata, \
             updated_at = CASE WHEN {touch} THEN {n} ELSE tenant_external_entity_mappings.updated_at END \
             FROM {rs} WHERE tenant_external_entity_mappings.tenant = {t} AND tenant_external_entity_mappings.id = r.id",
            sr = truthy("set_realm"),
            touch = truthy("touch"),
            rs = d.recordset(3, &cols),
        );
        tx.execute(&sql, &[&tenant_s, &now_s, &Value::Array(m_updates).to_string()]).await?;
    }
    if !m_inserts.is_empty() {
        let cols = [
            ("id", U),
            ("integration_type", Text),
            ("alga_entity_id", Text),
            ("external_entity_id", Text),
            ("external_realm_id", Text),
            ("metadata", Json),
        ];
        let sql = format!(
            "INSERT INTO tenant_external_entity_mappings (id, tenant, integration_type, alga_entity_type, alga_entity_id, \
             external_entity_id, external_realm_id, sync_status, last_synced_at, metadata, created_at, updated_at) \
             SELECT r.id, {t}, r.integration_type, 'asset', r.alga_entity_id, r.external_entity_id, r.external_realm_id, \
             'synced', {n}, r.metadata, {n}, {n} FROM {rs}",
            rs = d.recordset(3, &cols),
        );
        tx.execute(&sql, &[&tenant_s, &now_s, &Value::Array(m_inserts).to_string()]).await?;
    }
    Ok(())
}

fn asset_values_json(v: &super::plan::AssetValues) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("asset_type".into(), json!(v.asset_type));
    m.insert("name".into(), json!(v.name));
    m.insert("serial_number".into(), json!(v.serial_number));
    m.insert("status".into(), json!(v.status));
    m.insert("location".into(), json!(v.location));
    m.insert("rmm_provider".into(), json!(v.rmm_provider));
    m.insert("rmm_device_id".into(), json!(v.rmm_device_id));
    m.insert("rmm_organization_id".into(), json!(v.rmm_organization_id));
    m.insert("agent_status".into(), json!(v.agent_status));
    m.insert("last_seen_at".into(), ts(v.last_seen_at));
    m
}

/// The JSON record of an extension patch and its presence signature.
fn extension_json(asset_id: Uuid, e: &ExtensionSnapshot) -> (u8, Value) {
    let int = |v: Option<f64>| v.map(|f| json!(f as i64)).unwrap_or(Value::Null);
    let mut row = json!({
        "asset_id": asset_id,
        "os_type": e.os_type, "os_version": e.os_version, "agent_version": e.agent_version,
        "current_user": e.current_user, "uptime_seconds": e.uptime_seconds, "lan_ip": e.lan_ip,
        "wan_ip": e.wan_ip, "antivirus_status": e.antivirus_status, "antivirus_product": e.antivirus_product,
        "last_reboot_at": ts(e.last_reboot_at), "system_info": e.system_info,
    });
    let obj = row.as_object_mut().expect("object");
    let mut sig = 0u8;
    if !e.patches_untouched {
        sig |= PATCHES_BIT;
        obj.insert("pending_patches".into(), json!(e.pending_patches));
        obj.insert("pending_os_patches".into(), json!(e.pending_os_patches));
        obj.insert("pending_software_patches".into(), json!(e.pending_software_patches));
        obj.insert("failed_patches".into(), json!(e.failed_patches));
        obj.insert("last_patch_scan_at".into(), ts(e.last_patch_scan_at));
    }
    if let Some(v) = &e.cpu_model {
        sig |= 1;
        obj.insert("cpu_model".into(), json!(v));
    }
    if let Some(v) = e.cpu_cores {
        sig |= 1 << 1;
        obj.insert("cpu_cores".into(), int(v));
    }
    if let Some(v) = e.ram_gb {
        sig |= 1 << 2;
        obj.insert("ram_gb".into(), int(v));
    }
    if let Some(v) = &e.disk_usage {
        sig |= 1 << 3;
        obj.insert("disk_usage".into(), json!(v));
    }
    if let Some(v) = &e.installed_software {
        sig |= 1 << 4;
        // AlgaPSA writes `[]` for a null list.
        obj.insert("installed_software".into(), v.clone().unwrap_or_else(|| json!([])));
    }
    (sig, row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        let t = Uuid::parse_str("00000000-0000-0000-0000-000000000001").unwrap();
        assert_eq!(device_lock_key(t, "tacticalrmm", "a"), device_lock_key(t, "tacticalrmm", "a"));
        assert_ne!(device_lock_key(t, "tacticalrmm", "a"), device_lock_key(t, "tanium", "a"));
        assert_ne!(device_lock_key(t, "tacticalrmm", "ab"), device_lock_key(t, "tacticalrm", "mab"));
    }
}
