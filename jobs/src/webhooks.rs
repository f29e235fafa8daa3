//! Accepting RMM webhooks (today Tactical's alert actions): the delivery is stored and its device
//! refresh job (the provider's [`crate::providers::ProviderJobs::webhook_refresh_kind`], e.g.
//! `sync-agent`) enqueued in one transaction, so a delivery the ingress answered 200 for is never
//! lost. The job records the alert and refreshes the device.
//!
//! Coalescing: a burst of webhooks for one agent rides on at most two refreshes per window — the
//! first delivery starts a refresh now, later ones attach to a trailing refresh due at the end of
//! the window (which records all their alerts). On PostgreSQL with the PostgreSQL queue the whole
//! accept is one statement deciding on a per-agent row ([`accept_postgres`]); elsewhere (SQLite,
//! or the Redis queue) it is a write transaction deciding from the agent's recent deliveries.

use std::time::Duration;

use chrono::Utc;
use rmm_shared::db::Dialect;
use rmm_shared::providers::Provider;
use serde_json::{Map, Value};
use ulid::Ulid;
use uuid::Uuid;

use crate::envelope::{JobRequest, Trigger};
use crate::error::RuntimeError;
use crate::webhook_batch::{Batcher, Decided, Row};
use crate::{JobError, Runtime};
use rmm_shared::db::sql::{Exec, P, fmt_ts, parse_ts, ts_out};

/// One webhook delivery that passed authentication and parsing.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub provider: Provider,
    /// The device it is about (Tactical's `agent_id`).
    pub device_id: &'a str,
    /// The body as received, stored with the delivery.
    pub fields: &'a Map<String, Value>,
}

/// The job kind that refreshes the device of a `provider` webhook.
fn refresh_kind(provider: Provider) -> Result<&'static str, RuntimeError> {
    crate::providers::get(provider)
        .and_then(|p| p.webhook_refresh_kind())
        .ok_or_else(|| RuntimeError::Invalid(format!("rmm-sync takes no webhooks from {provider}")))
}

/// What happened to a webhook that passed authentication and parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored; `job_id` will record its alert and refresh the agent.
    Recorded { delivery_id: String, job_id: String, integration_id: Uuid, coalesced: bool },
    /// Not stored, for this reason (`tenant_suspended`, `integration_not_configured`,
    /// `integration_inactive`).
    NotRecorded(&'static str),
}

/// Stores a webhook delivery and enqueues (or joins) its device refresh job.
pub async fn accept(
    rt: &Runtime,
    tenant: Uuid,
    body: &Delivery<'_>,
    window: Duration,
) -> Result<Accepted, RuntimeError> {
    let kind = refresh_kind(body.provider)?;
    if let Some(batcher) = &rt.webhook_batcher {
        return accept_postgres(rt, batcher, tenant, body, kind, window).await;
    }
    let db = &rt.db;
    let p = P(db.dialect());
    let d = db.dialect();
    let mut tx = db.begin_write().await?;
    let t = tenant.to_string();
    let integration_id = match check_integration(&mut tx, tenant, body.provider).await? {
        Ok(id) => id,
        Err(reason) => {
            tx.rollback().await?;
            return Ok(Accepted::NotRecorded(reason));
        }
    };
    let integration = integration_id.to_string();
    if d == Dialect::Postgres {
        // One decision at a time per agent (SQLite's write transaction already serialises).
        let key = format!("webhook:{tenant}:{}", body.device_id);
        tx.exec("SELECT CAST(pg_advisory_xact_lock(hashtext($1)) AS TEXT)", &[&key]).await?;
    }
    let now = Utc::now();
    let cutoff = now - chrono::Duration::from_std(window).unwrap_or_default();
    let recent: Vec<(String, String, String)> = tx
        .rows(
            &format!(
                "SELECT w.job_id, j.status, {} FROM {} w JOIN {} j ON j.job_id = w.job_id \
                 WHERE w.tenant = {} AND w.integration_id = {} AND w.agent_id = {} AND w.received_at >= {} \
                 ORDER BY w.received_at",
                ts_out(d, "w.received_at"),
                p.t("webhook_deliveries"),
                p.t("job_runs"),
                p.uuid(1),
                p.uuid(2),
                p.text(3),
                p.ts(4)
            ),
            &[&t, &integration, body.device_id, &fmt_ts(cutoff)],
        )
        .await?;
    let mut pending = recent.iter().rev().find(|(_, status, _)| status == "pending").map(|(j, _, _)| j.clone());
    if d == Dialect::Postgres
        && let Some(job) = pending.take()
    {
        // Join it only if it is still pending once locked: a worker that starts it (an UPDATE of
        // this row) then waits for our commit and so sees this delivery; a job that started
        // meanwhile is not joined, and a new one is enqueued. (SQLite's write lock already orders
        // the two.)
        let locked: Vec<(String,)> = tx
            .rows(
                &format!(
                    "SELECT job_id FROM {} WHERE job_id = {} AND status = 'pending' FOR UPDATE",
                    p.t("job_runs"),
                    p.text(1)
                ),
                &[&job],
            )
            .await?;
        pending = locked.into_iter().next().map(|(j,)| j);
    }
    let delivery_id = Ulid::generate().to_string();
    let (job_id, coalesced) = match pending {
        Some(job) => (job, true),
        None => {
            let mut jobs: Vec<&str> = recent.iter().map(|(j, _, _)| j.as_str()).collect();
            jobs.dedup();
            let delay = match recent.first().and_then(|(_, _, at)| parse_ts(at)) {
                // A refresh already ran in this window: the next one waits for its end.
                Some(first) if !jobs.is_empty() => {
                    let due = first + chrono::Duration::from_std(window).unwrap_or_default();
                    let ms = (due - now).num_milliseconds().max(0) as u64;
                    ms.div_ceil(1000)
                }
                _ => 0,
            };
            let req = JobRequest::for_integration(kind, tenant, body.provider.slug(), integration_id, Trigger::Webhook)
                .args(serde_json::json!({ "agent_id": body.device_id }))
                .correlation_id(delivery_id.clone())
                .delay_secs(delay);
            (rt.queue.enqueue_in_tx(&mut tx, req).await?, false)
        }
    };
    let raw = Value::Object(body.fields.clone()).to_string();
    tx.exec(
        &format!(
            "INSERT INTO {} (delivery_id, tenant, integration_id, provider, agent_id, body, received_at, job_id) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {})",
            p.t("webhook_deliveries"),
            p.text(1),
            p.uuid(2),
            p.uuid(3),
            p.text(4),
            p.text(5),
            p.json(6),
            p.ts(7),
            p.text(8)
        ),
        &[&delivery_id, &t, &integration, body.provider.slug(), body.device_id, &raw, &fmt_ts(now), &job_id],
    )
    .await?;
    tx.commit().await?;
    if !coalesced && let Err(e) = rt.queue.relay_outbox().await {
        tracing::warn!(error = %e, "could not hand the job to Redis yet; the relay will retry");
    }
    Ok(Accepted::Recorded { delivery_id, job_id, integration_id, coalesced })
}

/// The tenant's integration with `provider`, or why a delivery is not recorded
/// (`tenant_suspended`, `integration_not_configured`, `integration_inactive`). One round trip.
async fn check_integration(
    ex: &mut impl Exec,
    tenant: Uuid,
    provider: Provider,
) -> Result<Result<Uuid, &'static str>, RuntimeError> {
    let d = ex.dialect();
    let p = P(d);
    let found: Vec<(i64, Option<String>, Option<i64>)> = ex
        .rows(
            &format!(
                "SELECT CAST(CASE WHEN t.suspended_at IS NULL THEN 0 ELSE 1 END AS BIGINT), {}, \
                 CAST(CASE WHEN i.is_active THEN 1 ELSE 0 END AS BIGINT) \
                 FROM (SELECT 1 AS one) x \
                 LEFT JOIN tenants t ON t.tenant = {} \
                 LEFT JOIN rmm_integrations i ON i.tenant = {} AND i.provider = {}",
                d.text("i.integration_id"),
                p.uuid(1),
                p.uuid(1),
                p.text(2)
            ),
            &[&tenant.to_string(), provider.slug()],
        )
        .await?;
    Ok(match found.into_iter().next().unwrap_or((0, None, None)) {
        (1, _, _) => Err("tenant_suspended"),
        (_, None, _) => Err("integration_not_configured"),
        (_, Some(_), a) if a != Some(1) => Err("integration_inactive"),
        (_, Some(id), _) => {
            Ok(id.parse().map_err(|_| RuntimeError::Invalid(format!("integration id {id} is not a UUID")))?)
        }
    })
}

/// The PostgreSQL path: one data-modifying statement, no explicit transaction, shared with the
/// accepts that arrive at the same time ([`crate::webhook_batch`]). It checks the tenant and
/// integration, takes the agent's coalescing row (`webhook_agents`, INSERT … ON CONFLICT DO
/// UPDATE: one decision at a time per agent, on the row's latest version), stores the delivery
/// and, when no refresh is pending, writes the new job's status row and its apalis task. A pending
/// job is joined only while its status row says `pending`; the job clears the agent's row when it
/// starts ([`release_agent`]), which waits for a statement holding the row, so a delivery that
/// joined it is always seen by it. The integration id is learnt inside the statement: the task's
/// envelope is serialised with a one-off placeholder UUID that the statement replaces.
async fn accept_postgres(
    rt: &Runtime,
    batcher: &Batcher,
    tenant: Uuid,
    body: &Delivery<'_>,
    kind: &'static str,
    window: Duration,
) -> Result<Accepted, RuntimeError> {
    let delivery_id = Ulid::generate().to_string();
    let placeholder = Uuid::new_v4();
    let req = JobRequest::for_integration(kind, tenant, body.provider.slug(), placeholder, Trigger::Webhook)
        .args(serde_json::json!({ "agent_id": body.device_id }))
        .correlation_id(delivery_id.clone());
    let (env, policy) = rt.queue.prepare(&req)?;
    let task = serde_json::to_string(&env).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
    let row = Row {
        tenant,
        placeholder: placeholder.to_string(),
        agent_id: body.device_id.to_owned(),
        delivery_id: delivery_id.clone(),
        received_at: Utc::now(),
        body: Value::Object(body.fields.clone()).to_string(),
        job_id: env.job_id.clone(),
        args: env.args.to_string(),
        max_attempts: policy.max_attempts as i32,
        task,
        priority: policy.priority as i32,
        correlation_id: env.correlation_id.clone(),
        traceparent: env.traceparent.clone(),
        window_secs: window.as_secs_f64(),
        provider: body.provider.slug(),
        kind,
    };
    match batcher.accept(row).await? {
        Decided::Refused(reason) => Ok(Accepted::NotRecorded(reason)),
        Decided::Stored { integration_id, job_id, is_new } => {
            if is_new {
                tracing::info!(job_id = %job_id, kind = %env.kind, tenant = %tenant, provider = body.provider.slug(),
                    trigger = "webhook", correlation_id = %env.correlation_id, "job enqueued");
            }
            Ok(Accepted::Recorded { delivery_id, job_id, integration_id, coalesced: !is_new })
        }
    }
}

/// Called by a `sync-agent` job when it starts: later deliveries for the agent no longer join it
/// (see [`accept_postgres`]). Waits for an accept that holds the agent's row.
pub async fn release_agent(
    rt: &Runtime,
    tenant: Uuid,
    integration_id: Uuid,
    agent_id: &str,
    job_id: &str,
) -> Result<(), JobError> {
    let p = P(rt.db.dialect());
    rt.db
        .execute(
            &format!(
                "UPDATE {} SET pending_job_id = NULL WHERE tenant = {} AND integration_id = {} AND agent_id = {} \
                 AND pending_job_id = {}",
                p.t("webhook_agents"),
                p.uuid(1),
                p.uuid(2),
                p.text(3),
                p.text(4)
            ),
            &[&tenant.to_string(), &integration_id.to_string(), agent_id, job_id],
        )
        .await?;
    Ok(())
}
