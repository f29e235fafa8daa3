//! Upstream call counts: every attempt of every [`HttpClient`](crate::http::HttpClient) is
//! recorded once, through a [`CallCounter`], and serves two readers:
//!
//! - the process totals by provider and answer ([`process_totals`]), which `/metrics` renders as
//!   `rmm_sync_upstream_calls_total{provider,status}`;
//! - durable per-minute counts per tenant (`rmm_sync.upstream_calls`) for the status page, when
//!   the counter belongs to a [`CallLog`] ([`CallLog::counter`]).
//!
//! Workers and the ingress are separate processes, so a counter in one process cannot show what
//! the others did. Every process counts its calls in memory per (minute, tenant, provider) and
//! writes the counts every [`FLUSH_INTERVAL`] in one statement that adds them to the stored row
//! (`INSERT … ON CONFLICT DO UPDATE SET calls = calls + …`): one write per interval whatever the
//! number of calls, and any number of processes can add to the same minute. Calls not made for a
//! tenant are stored under the nil UUID. The retention job deletes rows older than [`KEEP`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::db::sql::{ColType, fmt_ts};
use crate::db::{Db, DbError};

/// How often the counts of a process are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// How long the per-minute rows are kept (the status page shows the last hour).
pub const KEEP: Duration = Duration::from_secs(24 * 3600);

/// Unwritten minutes older than this are dropped when the store stays unreachable, so memory
/// stays bounded.
const MAX_PENDING_AGE_MINUTES: i64 = 120;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// Minutes since the Unix epoch.
    minute: i64,
    tenant: Uuid,
    provider: &'static str,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    calls: u64,
    errors: u64,
}

struct Inner {
    db: Db,
    pending: Mutex<HashMap<Key, Counts>>,
}

/// The call log of one store. Cheap to clone. [`CallLog::start`] begins writing in the background;
/// the background task ends when the last clone (and the last [`CallCounter`]) is dropped.
#[derive(Clone)]
pub struct CallLog {
    inner: Arc<Inner>,
}

impl fmt::Debug for CallLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallLog").field("pending", &self.pending_len()).finish()
    }
}

/// What one call (one attempt) got: an HTTP status, or no answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallOutcome {
    Status(u16),
    /// No HTTP answer: connection failure, timeout, broken transport.
    NoAnswer,
}

impl CallOutcome {
    /// No answer, or HTTP ≥ 400.
    pub fn is_error(self) -> bool {
        match self {
            CallOutcome::Status(status) => status >= 400,
            CallOutcome::NoAnswer => true,
        }
    }
}

/// The `status` label of `/metrics`: the status code (`200`, `429`), or `error` without an answer.
impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallOutcome::Status(status) => write!(f, "{status}"),
            CallOutcome::NoAnswer => f.write_str("error"),
        }
    }
}

/// Calls made by this process since it started, by provider and outcome.
static PROCESS_TOTALS: Mutex<BTreeMap<(&'static str, CallOutcome), u64>> = Mutex::new(BTreeMap::new());

/// Upstream calls made by this process, by provider and outcome, in that order (status codes
/// before [`CallOutcome::NoAnswer`]).
pub fn process_totals() -> Vec<((&'static str, CallOutcome), u64)> {
    let totals = PROCESS_TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    totals.iter().map(|(k, v)| (*k, *v)).collect()
}

/// What an HTTP client counts its calls into: always the process totals, and the per-minute
/// counts of a [`CallLog`] for one tenant when it comes from [`CallLog::counter`].
#[derive(Clone, Default)]
pub struct CallCounter {
    log: Option<(Arc<Inner>, Uuid)>,
}

impl fmt::Debug for CallCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallCounter").field("tenant", &self.log.as_ref().map(|(_, tenant)| tenant)).finish()
    }
}

impl CallCounter {
    /// A counter of the process totals only (not written to any store).
    pub fn process() -> CallCounter {
        CallCounter { log: None }
    }

    /// Counts one call (one attempt): in the process totals, and at the current minute of the log.
    pub fn record(&self, provider: &'static str, outcome: CallOutcome) {
        {
            let mut totals = PROCESS_TOTALS.lock().unwrap_or_else(|e| e.into_inner());
            *totals.entry((provider, outcome)).or_default() += 1;
        }
        let Some((inner, tenant)) = &self.log else { return };
        let key = Key { minute: Utc::now().timestamp().div_euclid(60), tenant: *tenant, provider };
        let mut pending = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        let c = pending.entry(key).or_default();
        c.calls += 1;
        c.errors += u64::from(outcome.is_error());
    }
}

impl CallLog {
    /// A log on `db` that is written only by [`CallLog::flush`].
    pub fn new(db: Db) -> CallLog {
        CallLog { inner: Arc::new(Inner { db, pending: Mutex::new(HashMap::new()) }) }
    }

    /// A log on `db` written every [`FLUSH_INTERVAL`] by a background task (needs a Tokio runtime).
    pub fn start(db: Db) -> CallLog {
        let log = CallLog::new(db);
        let weak: Weak<Inner> = Arc::downgrade(&log.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = (CallLog { inner }).flush().await {
                    tracing::warn!(error = %e, "could not write the upstream call counts; retrying at the next flush");
                }
            }
        });
        log
    }

    /// The counter for calls made for `tenant` (`None`: not for a tenant).
    pub fn counter(&self, tenant: Option<Uuid>) -> CallCounter {
        CallCounter { log: Some((self.inner.clone(), tenant.unwrap_or(Uuid::nil()))) }
    }

    fn pending_len(&self) -> usize {
        self.inner.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Writes the counts gathered since the last flush in one statement. On failure they are kept
    /// for the next flush (up to two hours' worth).
    pub async fn flush(&self) -> Result<(), DbError> {
        let taken: Vec<(Key, Counts)> = {
            let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        if taken.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = taken
            .iter()
            .map(|(k, c)| {
                json!({
                    "minute": fmt_ts(minute_start(k.minute)),
                    "tenant": k.tenant.to_string(),
                    "provider": k.provider,
                    "calls": c.calls,
                    "errors": c.errors,
                })
            })
            .collect();
        let db = &self.inner.db;
        let d = db.dialect();
        let set = d.recordset(
            1,
            &[
                ("minute", ColType::Timestamp),
                ("tenant", ColType::Uuid),
                ("provider", ColType::Text),
                ("calls", ColType::BigInt),
                ("errors", ColType::BigInt),
            ],
        );
        // `WHERE true`: SQLite needs it to read ON CONFLICT as the upsert clause, not a join's ON.
        let sql = format!(
            "INSERT INTO {} AS u (minute, tenant, provider, calls, errors) \
             SELECT r.minute, r.tenant, r.provider, r.calls, r.errors FROM {set} WHERE true \
             ON CONFLICT (minute, tenant, provider) DO UPDATE \
             SET calls = u.calls + excluded.calls, errors = u.errors + excluded.errors",
            db.ours("upstream_calls")
        );
        let body = serde_json::Value::Array(rows).to_string();
        if let Err(e) = db.execute(&sql, &[&body]).await {
            let oldest = Utc::now().timestamp().div_euclid(60) - MAX_PENDING_AGE_MINUTES;
            let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (k, c) in taken.into_iter().filter(|(k, _)| k.minute >= oldest) {
                let p = pending.entry(k).or_default();
                p.calls += c.calls;
                p.errors += c.errors;
            }
            return Err(e);
        }
        Ok(())
    }
}

fn minute_start(minute: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(minute * 60, 0).single().unwrap_or_else(Utc::now)
}

/// Upstream calls and errors in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MinuteCalls {
    pub calls: i64,
    pub errors: i64,
}

/// Calls per minute since `since` (all tenants, or one), by the minute's start as
/// `YYYY-MM-DDTHH:MM`.
pub async fn per_minute(
    db: &Db,
    since: DateTime<Utc>,
    tenant: Option<Uuid>,
) -> Result<Vec<(String, MinuteCalls)>, DbError> {
    let d = db.dialect();
    let minute = match d {
        crate::db::Dialect::Postgres => "to_char(minute AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI')",
        crate::db::Dialect::Sqlite => "substr(minute, 1, 16)",
    };
    let tenant_filter = match tenant {
        Some(_) => format!(" AND tenant = {}", d.param(2, ColType::Uuid)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT {minute}, CAST(SUM(calls) AS BIGINT), CAST(SUM(errors) AS BIGINT) FROM {} \
         WHERE minute >= {}{tenant_filter} GROUP BY 1",
        db.ours("upstream_calls"),
        d.param(1, ColType::Timestamp)
    );
    let since = fmt_ts(since);
    let t = tenant.map(|t| t.to_string()).unwrap_or_default();
    let binds: Vec<&str> = if tenant.is_some() { vec![&since, &t] } else { vec![&since] };
    let rows: Vec<(String, i64, i64)> = db.fetch(&sql, &binds).await?;
    Ok(rows.into_iter().map(|(m, calls, errors)| (m, MinuteCalls { calls, errors })).collect())
}

/// Deletes rows older than `before`. Returns how many.
pub async fn prune(db: &Db, before: DateTime<Utc>) -> Result<u64, DbError> {
    let sql = format!(
        "DELETE FROM {} WHERE minute < {}",
        db.ours("upstream_calls"),
        db.dialect().param(1, ColType::Timestamp)
    );
    db.execute(&sql, &[&fmt_ts(before)]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_labelled_and_ordered_as_metrics_shows_them() {
        let mut outcomes =
            [CallOutcome::NoAnswer, CallOutcome::Status(503), CallOutcome::Status(200), CallOutcome::Status(429)];
        outcomes.sort();
        let labels: Vec<String> = outcomes.iter().map(|o| o.to_string()).collect();
        assert_eq!(labels, ["200", "429", "503", "error"]);
        let mut sorted = labels.clone();
        sorted.sort();
        assert_eq!(labels, sorted, "the same order as the labels' own");
        assert!(!CallOutcome::Status(399).is_error());
        assert!(CallOutcome::Status(400).is_error());
        assert!(CallOutcome::NoAnswer.is_error());
    }

    #[test]
    fn every_counter_adds_to_the_process_totals() {
        let provider = "process-totals-test";
        let counter = CallCounter::process();
        counter.record(provider, CallOutcome::Status(200));
        counter.clone().record(provider, CallOutcome::NoAnswer);
        counter.record(provider, CallOutcome::Status(200));
        let mine: Vec<_> = process_totals().into_iter().filter(|((p, _), _)| *p == provider).collect();
        assert_eq!(mine, [((provider, CallOutcome::Status(200)), 2), ((provider, CallOutcome::NoAnswer), 1)]);
    }
}
