//! The deployment material in `deploy/` checked against the service itself, so that a renamed
//! setting, subcommand, port, probe path or metric breaks this test instead of a deployment:
//!
//! - commands: every command line (Dockerfile, compose, Kubernetes, systemd) is accepted by the
//!   built `rmm-sync` binary (`rmm-sync <args> --help` exits 0) and names a subcommand of its help;
//! - environment: every variable given to an rmm-sync process is documented in
//!   docs/configuration.md and is either a setting (derived from `Settings`) or a name the
//!   service's code reads; each process's whole environment (plus its mounted TOML file) loads as
//!   valid settings, and the ports, probe ports and grace periods are compared with those settings;
//! - probes and health checks hit paths that answer 200 on a running ingress or worker listener;
//! - every metric, label and label value in the Grafana dashboard and the KEDA queries is one the
//!   running ingress exports;
//! - docs/configuration.md lists every setting with its environment name and default, and
//!   deploy/README.md names every file in deploy/.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use poem::listener::{Acceptor, Listener, TcpListener};
use rmm_jobs::{JobRequest, JobStatus, Registry, Trigger};
use rmm_shared::config::{QueueBackend, Settings};
use rmm_tests::runtime::{Ingress, fast_settings, rmm_sync_bin, runtime};
use rmm_tests::stores;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Target labels Prometheus (and its Kubernetes discovery) adds to every scraped series.
const TARGET_LABELS: [&str; 4] = ["instance", "job", "namespace", "pod"];

/// Extra margin between the worker's shutdown timeout and the supervisor's kill: closing the store
/// and the queue consumers after the last job.
const GRACE_MARGIN_SECS: u64 = 10;

fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every document of a YAML file (merge keys applied) as JSON values.
fn yaml_docs(rel: &str) -> Vec<Value> {
    use serde::Deserialize;
    let text = read(rel);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let mut v = serde_yaml_ng::Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}"));
            v.apply_merge().unwrap_or_else(|e| panic!("{rel}: {e}"));
            serde_json::to_value(v).unwrap_or_else(|e| panic!("{rel}: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn port_of(bind: &str) -> u16 {
    bind.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {bind:?}"))
}

fn str_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.as_str().expect("a list of strings").to_owned()).collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Null => Vec::new(),
        other => panic!("expected a list of strings, got {other}"),
    }
}

/// `45s`, `1m30s`, `2m`, `90` (seconds).
fn duration_secs(s: &str) -> u64 {
    let s = s.trim();
    if let Ok(n) = s.parse() {
        return n;
    }
    let (mut total, mut num) = (0u64, String::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let n: u64 = num.parse().unwrap_or_else(|_| panic!("bad duration {s:?}"));
        num.clear();
        total += n * match unit.trim() {
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            u => panic!("unknown unit {u:?} in {s:?}"),
        };
        while chars.peek() == Some(&' ') {
            chars.next();
        }
    }
    assert!(num.is_empty(), "bad duration {s:?}");
    total
}

// --- what the service really is -------------------------------------------------------------

/// The subcommands of the built binary, from its `--help`.
fn cli_commands() -> BTreeSet<String> {
    let out = std::process::Command::new(rmm_sync_bin()).arg("--help").output().unwrap();
    assert!(out.status.success(), "rmm-sync --help failed");
    let help = String::from_utf8(out.stdout).unwrap();
    let mut commands = BTreeSet::new();
    let mut inside = false;
    for line in help.lines() {
        if line.trim_end() == "Commands:" {
            inside = true;
            continue;
        }
        if inside {
            if line.trim().is_empty() || !line.starts_with("  ") {
                break;
            }
            if line[2..].starts_with(char::is_whitespace) {
                continue; // a wrapped description
            }
            let name = line.split_whitespace().next().unwrap();
            commands.insert(name.to_owned());
            if let Some(rest) = line.split("[alias: ").nth(1).or_else(|| line.split("[aliases: ").nth(1)) {
                for alias in rest.trim_end_matches(']').split(", ") {
                    commands.insert(alias.trim().to_owned());
                }
            }
        }
    }
    commands.remove("help");
    for expected in ["serve", "ingress", "worker", "migrate", "api-key"] {
        assert!(commands.contains(expected), "rmm-sync --help lists no {expected}: {help}");
    }
    commands
}

/// Checks one command line of rmm-sync (without the program): the binary accepts it and its first
/// positional argument is a subcommand. Returns the subcommand.
fn check_command_line(where_: &str, args: &[String], commands: &BTreeSet<String>) -> String {
    let mut i = 0;
    let sub = loop {
        let a = args.get(i).unwrap_or_else(|| panic!("{where_}: no subcommand in {args:?}"));
        match a.as_str() {
            "--config" | "-c" => i += 2,
            a if a.starts_with("--config=") => i += 1,
            a => break a.to_owned(),
        }
    };
    assert!(commands.contains(&sub), "{where_}: {sub:?} is not an rmm-sync subcommand ({commands:?})");
    let out = std::process::Command::new(rmm_sync_bin()).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{where_}: rmm-sync refuses {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    sub
}

/// `database_url`, `http.bind`, … with their defaults, from `Settings::default()`.
fn settings_keys() -> BTreeMap<String, Value> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", &serde_json::to_value(Settings::default()).unwrap(), &mut out);
    out
}

fn env_name_of_key(key: &str) -> String {
    format!("RMM_SYNC_{}", key.replace('.', "__").to_ascii_uppercase())
}

/// The non-test source of the service's crates.
fn service_source() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push_str(text.split("#[cfg(test)]").next().unwrap());
            }
        }
    }
    let mut out = String::new();
    for krate in ["shared", "jobs", "ingress", "worker"] {
        walk(&path(&format!("{krate}/src")), &mut out);
    }
    out
}

struct ConfigDocs {
    /// Names in the first two columns of docs/configuration.md's tables.
    env_names: BTreeSet<String>,
    /// Setting rows: key → (environment cell, default cell).
    settings: BTreeMap<String, (String, String)>,
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

fn config_docs() -> ConfigDocs {
    let text = read("docs/configuration.md");
    let mut env_names = BTreeSet::new();
    let mut settings = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 2 {
            continue;
        }
        for cell in &cells[..2] {
            for tok in backticked(cell) {
                if !tok.is_empty() && tok.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
                    env_names.insert(tok);
                }
            }
        }
        if let [key, env, default, ..] = cells[..]
            && let [k] = &backticked(key)[..]
            && k.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
        {
            settings.insert(k.clone(), (env.to_owned(), default.to_owned()));
        }
    }
    ConfigDocs { env_names, settings }
}

/// What a variable name must be to appear in a manifest.
struct EnvTruth {
    documented: BTreeSet<String>,
    settings: BTreeSet<String>,
    source: String,
}

impl EnvTruth {
    fn load() -> EnvTruth {
        EnvTruth {
            documented: config_docs().env_names,
            settings: settings_keys().keys().map(|k| env_name_of_key(k)).collect(),
            source: service_source(),
        }
    }

    fn check(&self, where_: &str, name: &str) {
        assert!(self.documented.contains(name), "{where_}: {name} is not documented in docs/configuration.md");
        assert!(
            self.settings.contains(name) || self.source.contains(&format!("\"{name}\"")),
            "{where_}: {name} is neither a setting nor read by the service's code"
        );
    }
}

/// A process's settings: the image's environment (when it runs in the image) under its own
/// variables; the image's settings file, when `RMM_SYNC_CONFIG` names it, read from the repository.
fn settings_for(where_: &str, image: Option<&Image>, env: &[(String, String)]) -> Settings {
    let mut all: Vec<(String, String)> = image.map(|i| i.env.clone()).unwrap_or_default();
    for (k, v) in env {
        all.retain(|(n, _)| n != k);
        all.push((k.clone(), v.clone()));
    }
    if let Some(img) = image {
        for (k, v) in all.iter_mut() {
            if k == "RMM_SYNC_CONFIG"
                && let Some((_, file)) = img.files.iter().find(|(dest, _)| dest == v)
            {
                *v = file.display().to_string();
            }
        }
    }
    Settings::load_from(None, all).unwrap_or_else(|e| panic!("{where_}: its environment is not valid settings: {e}"))
}

/// The secret provider chain a process builds from its environment (provider names, Vault address
/// and token present).
fn secret_store(where_: &str, image: &Image, env: &[(String, String)]) {
    let mut all = image.env.clone();
    all.extend(env.iter().cloned());
    if let Err(e) = rmm_shared::secrets::SecretStore::from_env(all) {
        panic!("{where_}: the secret settings are refused: {e}");
    }
}

/// A running ingress and worker operations listener on a migrated SQLite store, with one pending
/// job so that the job and queue gauges have samples.
struct Live {
    _store: stores::TestStore,
    _dir: tempfile::TempDir,
    ingress: Ingress,
    ops: String,
    ops_token: CancellationToken,
    http: reqwest::Client,
}

impl Live {
    async fn start() -> Live {
        let store = stores::sqlite().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(&store.db, fast_settings(QueueBackend::Database), dir.path()).await.unwrap();
        rt.queue.enqueue(JobRequest::global("maintenance", Trigger::Admin)).await.unwrap();
        let ingress = Ingress::start(&rt, None).await;
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        let state = rmm_ingress::AppState::new(rt.clone(), None);
        let ops_token = CancellationToken::new();
        let t = ops_token.clone();
        tokio::spawn(async move {
            poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(rmm_ingress::ops_app(state), async move { t.cancelled().await }, None)
                .await
        });
        Live {
            _store: store,
            _dir: dir,
            ingress,
            ops: format!("http://{addr}"),
            ops_token,
            http: reqwest::Client::new(),
        }
    }

    /// Asserts that `path` answers 200 on the ingress (`worker == false`) or the worker listener.
    async fn assert_ok(&self, where_: &str, worker: bool, path: &str) {
        let url = if worker { format!("{}{path}", self.ops) } else { self.ingress.url(path) };
        let status = self.http.get(&url).send().await.unwrap().status();
        assert_eq!(
            status,
            200,
            "{where_}: GET {path} on the {} answers {status}",
            if worker { "worker" } else { "ingress" }
        );
    }

    /// The ingress's `/metrics`: metric name → label names seen in its samples (HELP-only metrics
    /// have none).
    async fn metrics(&self) -> BTreeMap<String, BTreeSet<String>> {
        // One request first, so that the request counter has a sample.
        self.assert_ok("metrics", false, "/healthz").await;
        let text = self.http.get(self.ingress.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                out.entry(rest.split_whitespace().next().unwrap().to_owned()).or_default();
            } else if !line.starts_with('#')
                && let Some((name, rest)) = line.split_once('{')
            {
                let entry = out.entry(name.to_owned()).or_default();
                entry.extend(sample_labels(rest));
            }
        }
        out
    }
}

/// The label names of a sample, from just after its `{`: `a="x",b="y\"z"} 1` → a, b.
fn sample_labels(rest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = rest.chars();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let name = name.trim_start_matches(',').trim().to_owned();
        if name.is_empty() || name.starts_with('}') {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "a sample label {name} without a quoted value: {rest}");
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => escaped = false,
            }
        }
        names.push(name);
    }
    names
}

impl Drop for Live {
    fn drop(&mut self) {
        self.ops_token.cancel();
    }
}

/// Label names of each metric as written by ingress/src/metrics.rs (`name{{label=\"…\",…}}`).
fn metric_labels_in_source() -> BTreeMap<String, BTreeSet<String>> {
    let src = read("ingress/src/metrics.rs");
    let mut out = BTreeMap::new();
    for (i, _) in src.match_indices("\"rmm_sync_") {
        let rest = &src[i + 1..];
        let Some(open) = rest.find("{{") else { continue };
        let name = &rest[..open];
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let body = &rest[open + 2..rest.find("}}").unwrap()];
        let labels = body.split(',').map(|p| p.split('=').next().unwrap().to_owned()).collect();
        out.insert(name.to_owned(), labels);
    }
    assert!(!out.is_empty(), "no labelled metric found in ingress/src/metrics.rs");
    out
}

// --- PromQL ----------------------------------------------------------------------------------

/// A label matcher: label, operator, value.
type Matcher = (String, String, String);

#[derive(Debug, Default)]
struct PromRefs {
    /// Metric selectors: name and matchers.
    selectors: Vec<(String, Vec<Matcher>)>,
    /// Labels of by/without/on/ignoring clauses.
    grouping: BTreeSet<String>,
}

const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

fn promql_refs(expr: &str) -> PromRefs {
    let c: Vec<char> = expr.chars().collect();
    let mut refs = PromRefs::default();
    let mut i = 0;
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < c.len() && (c[*i].is_ascii_alphanumeric() || c[*i] == '_' || c[*i] == ':') {
            *i += 1;
        }
        c[start..*i].iter().collect::<String>()
    };
    let skip_ws = |i: &mut usize| {
        while *i < c.len() && c[*i].is_whitespace() {
            *i += 1;
        }
    };
    let string = |i: &mut usize| {
        let quote = c[*i];
        let mut s = String::new();
        *i += 1;
        while *i < c.len() && c[*i] != quote {
            if c[*i] == '\\' {
                *i += 1;
            }
            s.push(c[*i]);
            *i += 1;
        }
        *i += 1;
        s
    };
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '"' || ch == '\'' || ch == '`' {
            string(&mut i);
        } else if ch == '[' {
            while i < c.len() && c[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let name = ident(&mut i);
            skip_ws(&mut i);
            let next = c.get(i).copied();
            match name.as_str() {
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right" => {
                    if next == Some('(') {
                        i += 1;
                        while i < c.len() && c[i] != ')' {
                            skip_ws(&mut i);
                            let l = ident(&mut i);
                            if !l.is_empty() {
                                refs.grouping.insert(l);
                            }
                            skip_ws(&mut i);
                            if c.get(i) == Some(&',') {
                                i += 1;
                            }
                        }
                        i += 1;
                    }
                }
                "bool" | "and" | "or" | "unless" | "offset" | "atan2" => {}
                n if AGGREGATIONS.contains(&n) || next == Some('(') => {}
                _ => {
                    let mut matchers = Vec::new();
                    if next == Some('{') {
                        i += 1;
                        loop {
                            skip_ws(&mut i);
                            if c.get(i) == Some(&'}') {
                                i += 1;
                                break;
                            }
                            let label = ident(&mut i);
                            skip_ws(&mut i);
                            let mut op = String::new();
                            while i < c.len() && "=!~".contains(c[i]) {
                                op.push(c[i]);
                                i += 1;
                            }
                            skip_ws(&mut i);
                            assert!(!label.is_empty() && !op.is_empty(), "cannot read the matchers of {expr:?}");
                            let value = string(&mut i);
                            matchers.push((label, op, value));
                            skip_ws(&mut i);
                            if c.get(i) == Some(&',') {
                                i += 1;
                            }
                        }
                    }
                    refs.selectors.push((name, matchers));
                }
            }
        } else if ch == '{' {
            panic!("a selector without a metric name in {expr:?}");
        } else {
            i += 1;
        }
    }
    refs
}

/// Checks a PromQL expression against the exported metrics; returns the labels a result may have.
fn check_promql(
    where_: &str,
    expr: &str,
    exported: &BTreeMap<String, BTreeSet<String>>,
    labels: &BTreeMap<String, BTreeSet<String>>,
    kinds: &BTreeSet<String>,
) -> BTreeSet<String> {
    let refs = promql_refs(expr);
    assert!(!refs.selectors.is_empty(), "{where_}: {expr:?} reads no metric");
    let mut available: BTreeSet<String> = TARGET_LABELS.iter().map(|s| s.to_string()).collect();
    for (metric, matchers) in &refs.selectors {
        assert!(exported.contains_key(metric), "{where_}: {metric} is not exported by rmm-sync ({expr:?})");
        let own = labels.get(metric).cloned().unwrap_or_default();
        for (label, op, value) in matchers {
            assert!(
                own.contains(label) || TARGET_LABELS.contains(&label.as_str()),
                "{where_}: {metric} has no label {label} ({expr:?})"
            );
            if op != "=" {
                continue;
            }
            match (metric.as_str(), label.as_str()) {
                (_, "kind") => assert!(kinds.contains(value), "{where_}: no job kind {value:?} ({expr:?})"),
                ("rmm_sync_jobs", "status") => {
                    assert!(JobStatus::parse(value).is_some(), "{where_}: no job status {value:?} ({expr:?})")
                }
                (_, "route") => assert!(
                    value != "other" && rmm_ingress::metrics::route_label(value) == *value,
                    "{where_}: {value:?} is not a route label ({expr:?})"
                ),
                _ => {}
            }
        }
        available.extend(own);
    }
    for l in &refs.grouping {
        assert!(available.contains(l), "{where_}: no metric of {expr:?} has the label {l}");
    }
    available
}

/// Every PromQL expression of the Grafana dashboard: `(where, expr, legendFormat)`.
fn dashboard_exprs(dash: &Value) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dash["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_else(|| panic!("panel {} has a target without expr", p["title"]));
            out.push((
                format!("dashboard panel {}", p["title"]),
                expr.to_owned(),
                t["legendFormat"].as_str().map(str::to_owned),
            ));
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"].as_str().map(str::to_owned).unwrap_or_else(|| v["query"]["query"].to_string());
            out.push((format!("dashboard variable {}", v["name"]), q, None));
        }
    }
    out
}

// --- Dockerfile ------------------------------------------------------------------------------

struct Stage {
    from: String,
    name: Option<String>,
    /// (instruction, arguments), continuation lines joined.
    lines: Vec<(String, String)>,
}

impl Stage {
    fn all(&self, instr: &str) -> Vec<&str> {
        self.lines.iter().filter(|(i, _)| i == instr).map(|(_, a)| a.as_str()).collect()
    }

    fn one(&self, instr: &str) -> &str {
        match self.all(instr)[..] {
            [a] => a,
            ref v => panic!("Dockerfile stage {}: {} {instr} instructions", self.from, v.len()),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for args in self.all("ENV") {
            for pair in args.split_whitespace() {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("ENV {pair:?} is not NAME=value"));
                out.push((k.to_owned(), v.to_owned()));
            }
        }
        out
    }
}

struct Dockerfile {
    stages: Vec<Stage>,
}

fn dockerfile() -> Dockerfile {
    let text = read("deploy/Dockerfile");
    let mut logical: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
        } else {
            cur.push_str(t);
            logical.push(std::mem::take(&mut cur));
        }
    }
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for l in logical {
        let (instr, rest) = l.split_once(' ').unwrap_or((&l, ""));
        let instr = instr.to_ascii_uppercase();
        let mut rest = rest.trim().to_owned();
        for (k, v) in &args {
            rest = rest.replace(&format!("${{{k}}}"), v);
        }
        match (instr.as_str(), stages.last_mut()) {
            ("ARG", None) => {
                let (k, v) = rest.split_once('=').unwrap_or((&rest, ""));
                args.insert(k.to_owned(), v.to_owned());
            }
            ("FROM", _) => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let name = match words[..] {
                    [_, as_, n] if as_.eq_ignore_ascii_case("as") => Some(n.to_owned()),
                    [_] => None,
                    _ => panic!("Dockerfile: cannot read FROM {rest}"),
                };
                stages.push(Stage { from: words[0].to_owned(), name, lines: Vec::new() });
            }
            (_, Some(stage)) => stage.lines.push((instr, rest)),
            (_, None) => panic!("Dockerfile: {instr} before FROM"),
        }
    }
    Dockerfile { stages }
}

fn json_words(where_: &str, s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{where_}: {s} is not the exec (JSON) form: {e}"))
}

/// `http://127.0.0.1:PORT/PATH` URLs in a text (health checks).
fn local_urls(s: &str) -> Vec<(u16, String)> {
    s.match_indices("http://127.0.0.1:")
        .map(|(i, m)| {
            let rest = &s[i + m.len()..];
            let end = rest.find(|c: char| c.is_whitespace() || c == '"' || c == '\'').unwrap_or(rest.len());
            let (port, path) = rest[..end].split_once('/').expect("a URL with a path");
            (port.parse().unwrap(), format!("/{path}"))
        })
        .collect()
}

/// The runtime image: its environment, uid, ports and the repository files copied into it.
struct Image {
    env: Vec<(String, String)>,
    uid: u32,
    exposed: BTreeSet<u16>,
    /// (path in the image, file in the repository).
    files: Vec<(String, PathBuf)>,
}

fn image() -> Image {
    let d = dockerfile();
    let runtime = d.stages.last().unwrap();
    let uid: u32 = runtime.one("USER").split(':').next().unwrap().parse().expect("USER is a numeric uid");
    let exposed = runtime.all("EXPOSE").iter().flat_map(|a| a.split_whitespace()).map(|p| p.parse().unwrap()).collect();
    let files = runtime
        .all("COPY")
        .into_iter()
        .filter(|c| !c.starts_with("--"))
        .map(|c| {
            let w: Vec<&str> = c.split_whitespace().collect();
            let [src, dest] = w[..] else { panic!("COPY {c}: one source expected") };
            let file = path(src);
            assert!(file.is_file(), "COPY {c}: {src} does not exist");
            (dest.to_owned(), file)
        })
        .collect();
    Image { env: runtime.env(), uid, exposed, files }
}

/// Whether `.dockerignore` leaves `rel` out of the build context (`*` and `**` globs, `!`
/// exceptions, the last matching line wins; a path is out when it or a parent directory is).
fn docker_ignored(patterns: &[&str], rel: &str) -> bool {
    fn seg(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => seg(&p[1..], s) || (!s.is_empty() && seg(p, &s[1..])),
            (Some('?'), Some(_)) => seg(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => seg(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn glob(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
            (Some(a), Some(b)) => {
                seg(&a.chars().collect::<Vec<_>>(), &b.chars().collect::<Vec<_>>()) && glob(&p[1..], &s[1..])
            }
            _ => false,
        }
    }
    let parts: Vec<&str> = rel.split('/').collect();
    let mut out = false;
    for pat in patterns {
        let (negate, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, *pat),
        };
        let pat: Vec<&str> = pat.trim_matches('/').split('/').collect();
        if (1..=parts.len()).any(|n| glob(&pat, &parts[..n])) {
            out = !negate;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerfile_builds_the_binary_and_runs_it_unprivileged() {
    let commands = cli_commands();
    let env_truth = EnvTruth::load();
    let live = Live::start().await;
    let d = dockerfile();
    assert!(d.stages.len() >= 2, "the Dockerfile is not multi-stage");

    // The builder: a Rust image no older than the workspace's rust-version, building rmm-sync
    // from Cargo.lock in release mode.
    let builder = d.stages.iter().find(|s| s.from.starts_with("rust:")).expect("a rust:… builder stage");
    let builder_name = builder.name.clone().expect("the builder stage is named");
    let cargo = read("Cargo.toml");
    let needed = cargo.lines().find_map(|l| l.strip_prefix("rust-version = ")).unwrap().trim_matches('"');
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    let tag = builder.from.trim_start_matches("rust:").split('-').next().unwrap();
    assert!(version(tag) >= version(needed), "builder {} is older than rust-version {needed}", builder.from);
    let build = builder.all("RUN").into_iter().find(|r| r.contains("cargo build")).expect("a cargo build");
    // --no-default-features: the image carries no simulators (the `demo` feature).
    for flag in ["--locked", "--release", "--no-default-features", "--bin rmm-sync"] {
        assert!(build.contains(flag), "cargo build without {flag}: {build}");
    }

    // The runtime stage: the binary from the builder, as the entrypoint, unprivileged.
    let rt = d.stages.last().unwrap();
    assert!(!rt.from.starts_with("rust:"), "the runtime image is the Rust toolchain image");
    let entry = json_words("ENTRYPOINT", rt.one("ENTRYPOINT"));
    assert!(entry[0].ends_with("/rmm-sync"), "ENTRYPOINT is not the rmm-sync binary: {entry:?}");
    let copied =
        rt.all("COPY").into_iter().find(|c| c.contains(&format!("--from={builder_name}"))).expect("COPY --from");
    assert!(copied.ends_with(&entry[0]), "the binary is not copied to {}: {copied}", entry[0]);
    let mut cmd = entry[1..].to_vec();
    cmd.extend(json_words("CMD", rt.one("CMD")));
    check_command_line("Dockerfile ENTRYPOINT+CMD", &cmd, &commands);

    let img = image();
    assert_ne!(img.uid, 0, "the image runs as root");
    assert!(
        rt.all("RUN").iter().any(|r| r.contains(&format!("--uid {}", img.uid))),
        "no user with uid {} is created",
        img.uid
    );

    // Environment and ports: the ingress and the worker listener listen on exposed ports.
    for (k, _) in &img.env {
        env_truth.check("Dockerfile ENV", k);
    }
    let s = settings_for("Dockerfile", Some(&img), &[]);
    assert!(s.http.bind.starts_with("0.0.0.0:"), "the ingress would listen on {} only", s.http.bind);
    let http_port = port_of(&s.http.bind);
    let metrics_port = port_of(s.worker.metrics_bind.as_deref().expect("worker.metrics_bind set in the image"));
    for p in [http_port, metrics_port] {
        assert!(img.exposed.contains(&p), "port {p} is not exposed ({:?})", img.exposed);
    }
    let check = rt.one("HEALTHCHECK");
    let urls = local_urls(check);
    assert!(!urls.is_empty(), "the HEALTHCHECK calls no local URL: {check}");
    for (port, path) in urls {
        assert!(port == http_port || port == metrics_port, "the HEALTHCHECK calls port {port}");
        live.assert_ok("HEALTHCHECK", port == metrics_port, &path).await;
    }

    // The default SQLite store lands in a volume owned by the service's user.
    let workdir = rt.one("WORKDIR");
    let default_db = Settings::default().database_url;
    let rel_dir = Path::new(default_db.trim_start_matches("sqlite://")).parent().unwrap().to_owned();
    let data_dir = Path::new(workdir).join(rel_dir.strip_prefix(".").unwrap());
    let data_dir = data_dir.to_str().unwrap();
    assert!(rt.one("VOLUME").contains(data_dir), "{data_dir} is not a VOLUME");
    assert!(
        rt.all("RUN").iter().any(|r| r.contains(&format!("-o {}", img.uid)) && r.contains(data_dir)),
        "{data_dir} is not created for uid {}",
        img.uid
    );
    // So do the default filesystem secrets, in a directory only that user reads.
    let secrets_dir = rmm_shared::secrets::default_fs_base(Path::new(workdir));
    let secrets_dir = secrets_dir.to_str().unwrap();
    assert!(secrets_dir.starts_with(data_dir), "{secrets_dir} is not under {data_dir}");
    assert!(
        rt.all("RUN").iter().any(|r| r.split("&&").any(|c| c.contains(&format!("-o {}", img.uid))
            && c.contains("-m 0700")
            && c.split_whitespace().any(|w| w == secrets_dir))),
        "{secrets_dir} is not created mode 0700 for uid {}",
        img.uid
    );

    // The build context keeps what the build needs and leaves out the rest.
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let members_line = cargo.lines().find(|l| l.starts_with("members = ")).unwrap();
    let members: Vec<String> = members_line.split('"').skip(1).step_by(2).map(str::to_owned).collect();
    let mut needed: Vec<String> = vec!["Cargo.toml".into(), "Cargo.lock".into(), "migrations".into()];
    for m in &members {
        needed.push(format!("{m}/Cargo.toml"));
        needed.push(format!("{m}/src"));
    }
    for (_, file) in &img.files {
        needed.push(file.strip_prefix(path("")).unwrap().display().to_string());
    }
    for n in &needed {
        assert!(!docker_ignored(&patterns, n), ".dockerignore leaves out {n}, which the build needs");
    }
    for p in ["target", ".git", "target/release/rmm-sync", "data/rmm-sync.db", "deploy/compose.yaml"] {
        assert!(docker_ignored(&patterns, p), ".dockerignore does not leave out {p}");
    }
}

// --- compose ---------------------------------------------------------------------------------

/// `${NAME:-default}` / `${NAME-default}` → default; anything else is refused (a deployment must
/// start with no variables set).
fn interpolate(where_: &str, s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').unwrap() + i;
        let inner = &rest[i + 2..end];
        let default = inner
            .split_once(":-")
            .or_else(|| inner.split_once('-'))
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("{where_}: ${{{inner}}} has no default"));
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn compose_env(where_: &str, service: &Value) -> Vec<(String, String)> {
    let scalar = |v: &Value| match v {
        Value::String(s) => interpolate(where_, s),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match &service["environment"] {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
        Value::Array(a) => a
            .iter()
            .map(|e| {
                let (k, v) = e.as_str().unwrap().split_once('=').unwrap();
                (k.to_owned(), interpolate(where_, v))
            })
            .collect(),
        Value::Null => Vec::new(),
        other => panic!("{where_}: environment {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_runs_migrations_once_an_ingress_and_two_workers() {
    let commands = cli_commands();
    let env_truth = EnvTruth::load();
    let live = Live::start().await;
    let img = image();
    let docs = yaml_docs("deploy/compose.yaml");
    let compose = &docs[0];
    let services = compose["services"].as_object().expect("services");
    let is_ours = |s: &Value| {
        s["build"]["dockerfile"].as_str().is_some_and(|d| d.ends_with("deploy/Dockerfile"))
            || s["image"].as_str().is_some_and(|i| i.starts_with("rmm-sync"))
    };
    let mut by_command: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ours = Vec::new();
    for (name, svc) in services.iter().filter(|(_, s)| is_ours(s)) {
        let where_ = format!("compose service {name}");
        let sub = check_command_line(&where_, &str_list(&svc["command"]), &commands);
        by_command.entry(sub.clone()).or_default().push(name.clone());
        ours.push((where_, sub, svc));
    }
    for sub in ["migrate", "ingress", "worker"] {
        assert_eq!(by_command.get(sub).map(Vec::len), Some(1), "compose: one {sub} service ({by_command:?})");
    }
    for (where_, sub, svc) in ours {
        let env = compose_env(&where_, svc);
        for (k, v) in &env {
            env_truth.check(&where_, k);
            // Database and Redis URLs name services of this file.
            if let Some((scheme, after)) = v.split_once("://")
                && ["postgres", "postgresql", "redis", "rediss"].contains(&scheme)
            {
                let host = after.rsplit('@').next().unwrap().split([':', '/']).next().unwrap();
                assert!(services.contains_key(host), "{where_}: {k} points at {host}, not a service here");
            }
        }
        let s = settings_for(&where_, Some(&img), &env);
        assert!(s.database_url.starts_with("postgres://"), "{where_}: not on PostgreSQL");
        secret_store(&where_, &img, &env);

        // The secrets directory is a volume every rmm-sync service shares.
        let base = env.iter().find(|(k, _)| k == "SECRET_FS_BASE_PATH").map(|(_, v)| v.clone());
        let base = base.unwrap_or_else(|| panic!("{where_}: SECRET_FS_BASE_PATH is not set"));
        let volumes = str_list(&svc["volumes"]);
        assert!(
            volumes.iter().any(|v| v.split(':').nth(1) == Some(base.as_str())),
            "{where_}: {base} is not a shared volume ({volumes:?})"
        );

        let http_port = port_of(&s.http.bind);
        let metrics_port = s.worker.metrics_bind.as_deref().map(port_of);
        let check = svc["healthcheck"]["test"].to_string();
        for (port, path) in local_urls(&check) {
            assert!(port == http_port || Some(port) == metrics_port, "{where_}: health check on port {port}");
            live.assert_ok(&where_, Some(port) == metrics_port, &path).await;
        }
        match sub.as_str() {
            "migrate" => {
                assert_eq!(svc["restart"], "no", "{where_}: a one-shot service is restarted");
            }
            "ingress" | "worker" => {
                assert!(!s.database.migrate_on_start, "{where_}: migrates at start although the migrate service does");
                let cond = &svc["depends_on"][&by_command["migrate"][0]]["condition"];
                assert_eq!(cond, "service_completed_successfully", "{where_}: does not wait for the migrations");
            }
            _ => {}
        }
        if sub == "ingress" {
            let ports = str_list(&svc["ports"]);
            let published: Vec<u16> =
                ports.iter().map(|p| interpolate(&where_, p).rsplit(':').next().unwrap().parse().unwrap()).collect();
            assert!(published.contains(&http_port), "{where_}: http.bind port {http_port} not published ({ports:?})");
        }
        if sub == "worker" {
            let metrics_port = metrics_port.unwrap_or_else(|| panic!("{where_}: no worker.metrics_bind"));
            let exposed: Vec<u16> = str_list(&svc["expose"]).iter().map(|p| p.parse().unwrap()).collect();
            assert!(exposed.contains(&metrics_port), "{where_}: metrics port {metrics_port} not exposed");
            let grace = duration_secs(svc["stop_grace_period"].as_str().expect("stop_grace_period"));
            assert!(
                grace >= s.worker.shutdown_timeout_secs + GRACE_MARGIN_SECS,
                "{where_}: stop_grace_period {grace} s does not cover worker.shutdown_timeout_secs {}",
                s.worker.shutdown_timeout_secs
            );
            let replicas = svc["deploy"]["replicas"].as_u64().unwrap_or(1);
            assert!(replicas >= 2, "{where_}: {replicas} replica(s)");
        }
    }
    for (name, image) in [("postgres", "postgres:"), ("redis", "redis:")] {
        assert!(services[name]["image"].as_str().unwrap().starts_with(image), "compose: {name} image");
    }
}

// --- Kubernetes ------------------------------------------------------------------------------

struct K8s {
    objects: Vec<(String, Value)>,
}

impl K8s {
    fn load() -> K8s {
        let mut objects = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(path("deploy/k8s")).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let rel = format!("deploy/k8s/{}", f.file_name().unwrap().to_str().unwrap());
            assert!(rel.ends_with(".yaml"), "{rel}: not a .yaml file");
            for doc in yaml_docs(&rel) {
                assert!(doc["kind"].is_string() && doc["apiVersion"].is_string(), "{rel}: a document without kind");
                objects.push((rel.clone(), doc));
            }
        }
        K8s { objects }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|(_, o)| o["kind"] == kind).map(|(_, o)| o).collect()
    }

    fn named(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
    }

    fn data(&self, kind: &str, name: &str) -> BTreeMap<String, String> {
        let o = self.named(kind, name);
        let mut out = BTreeMap::new();
        for field in ["data", "stringData"] {
            for (k, v) in o[field].as_object().into_iter().flatten() {
                out.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
            }
        }
        out
    }

    /// A container's environment: envFrom objects, then env (values from Secrets and ConfigMaps
    /// resolved), with `RMM_SYNC_CONFIG` pointed at a copy of the mounted ConfigMap file.
    fn container_env(&self, where_: &str, pod: &Value, c: &Value, tmp: &Path) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        for from in c["envFrom"].as_array().into_iter().flatten() {
            let (kind, name) = if let Some(n) = from["configMapRef"]["name"].as_str() {
                ("ConfigMap", n)
            } else {
                ("Secret", from["secretRef"]["name"].as_str().expect("envFrom configMapRef or secretRef"))
            };
            env.extend(self.data(kind, name));
        }
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap().to_owned();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_owned()
            } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
                self.data("Secret", r["name"].as_str().unwrap())[r["key"].as_str().unwrap()].clone()
            } else if let Some(r) = e["valueFrom"]["configMapKeyRef"].as_object() {
                self.data("ConfigMap", r["name"].as_str().unwrap())[r["key"].as_str().unwrap()].clone()
            } else {
                panic!("{where_}: cannot resolve env {name}")
            };
            env.retain(|(k, _)| *k != name);
            env.push((name, value));
        }
        for (k, v) in env.iter_mut().filter(|(k, _)| k == "RMM_SYNC_CONFIG") {
            let file = Path::new(v.as_str());
            let dir = file.parent().unwrap().to_str().unwrap();
            let mount = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["mountPath"] == dir)
                .unwrap_or_else(|| panic!("{where_}: {k}={v} but nothing is mounted at {dir}"));
            let volume = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|vol| vol["name"] == mount["name"])
                .unwrap_or_else(|| panic!("{where_}: no volume {}", mount["name"]));
            let cm = volume["configMap"]["name"].as_str().expect("the config volume is a ConfigMap");
            let key = file.file_name().unwrap().to_str().unwrap();
            let toml = self.data("ConfigMap", cm).get(key).cloned().unwrap_or_else(|| panic!("{cm} has no {key}"));
            let copy = tmp.join(format!("{}-{key}", where_.replace([' ', '/'], "_")));
            std::fs::write(&copy, toml).unwrap();
            *v = copy.display().to_string();
        }
        env
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| labels[k] == *v))
}

/// A probe's or Service's port (a number or a container port name) as a number.
fn container_port(where_: &str, c: &Value, port: &Value) -> u16 {
    match port {
        Value::Number(n) => n.as_u64().unwrap() as u16,
        Value::String(name) => c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == *name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("{where_}: no container port named {name}"))
            as u16,
        other => panic!("{where_}: port {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_manifests_match_the_service() {
    let commands = cli_commands();
    let env_truth = EnvTruth::load();
    let live = Live::start().await;
    let exported = live.metrics().await;
    let labels = metric_labels_in_source();
    let kinds: BTreeSet<String> = Registry::builtin().names().into_iter().map(str::to_owned).collect();
    let img = image();
    let k8s = K8s::load();
    let tmp = tempfile::tempdir().unwrap();

    // kustomization.yaml lists every file but itself and the optional KEDA object.
    let kustomization = &yaml_docs("deploy/k8s/kustomization.yaml")[0];
    let listed: BTreeSet<String> = str_list(&kustomization["resources"]).into_iter().collect();
    let files: BTreeSet<String> = k8s
        .objects
        .iter()
        .map(|(f, _)| f.trim_start_matches("deploy/k8s/").to_owned())
        .filter(|f| f != "kustomization.yaml" && f != "keda-scaledobject.yaml")
        .collect();
    assert_eq!(listed, files, "kustomization.yaml resources");

    let deployments = k8s.of_kind("Deployment");
    let mut roles: BTreeMap<String, (&Value, Settings)> = BTreeMap::new();
    for d in &deployments {
        let name = d["metadata"]["name"].as_str().unwrap();
        let pod = &d["spec"]["template"]["spec"];
        let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
        assert!(labels_match(&d["spec"]["selector"]["matchLabels"], pod_labels), "{name}: selector");
        let sc = &pod["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true, "{name}: runAsNonRoot");
        assert_eq!(sc["runAsUser"].as_u64(), Some(img.uid as u64), "{name}: runAsUser is not the image's user");

        let mut init_commands = Vec::new();
        for c in pod["initContainers"].as_array().into_iter().flatten() {
            let where_ = format!("{name} init container {}", c["name"]);
            assert!(c["image"].as_str().unwrap().starts_with("rmm-sync"), "{where_}: image");
            init_commands.push(check_command_line(&where_, &str_list(&c["args"]), &commands));
            let env = k8s.container_env(&where_, pod, c, tmp.path());
            settings_for(&where_, Some(&img), &env);
        }
        let containers = pod["containers"].as_array().unwrap();
        let [c] = &containers[..] else { panic!("{name}: one container expected") };
        let where_ = format!("{name} container {}", c["name"]);
        assert!(c["image"].as_str().unwrap().starts_with("rmm-sync"), "{where_}: image");
        if let Some(cmd) = c["command"].as_array() {
            assert!(cmd[0].as_str().unwrap().ends_with("rmm-sync"), "{where_}: command {cmd:?}");
        }
        let sub = check_command_line(&where_, &str_list(&c["args"]), &commands);
        let env = k8s.container_env(&where_, pod, c, tmp.path());
        for (k, _) in &env {
            env_truth.check(&where_, k);
        }
        let s = settings_for(&where_, Some(&img), &env);
        assert!(s.database_url.starts_with("postgres"), "{where_}: not on PostgreSQL");
        secret_store(&where_, &img, &env);
        if !s.database.migrate_on_start {
            assert!(init_commands.contains(&"migrate".to_owned()), "{where_}: nothing runs the migrations");
        }

        // Probes: on the port the process listens on, at paths that answer.
        let worker = sub == "worker";
        let listen = if worker {
            port_of(s.worker.metrics_bind.as_deref().unwrap_or_else(|| panic!("{where_}: no worker.metrics_bind")))
        } else {
            port_of(&s.http.bind)
        };
        let declared: Vec<u64> =
            c["ports"].as_array().into_iter().flatten().map(|p| p["containerPort"].as_u64().unwrap()).collect();
        assert!(declared.contains(&(listen as u64)), "{where_}: port {listen} not declared ({declared:?})");
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let get = &c[probe]["httpGet"];
            assert!(get.is_object(), "{where_}: no {probe}");
            assert_eq!(container_port(&where_, c, &get["port"]), listen, "{where_}: {probe} port");
            live.assert_ok(&format!("{where_} {probe}"), worker, get["path"].as_str().unwrap()).await;
        }
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{where_}: readiness is not /readyz");
        let ann = &d["spec"]["template"]["metadata"]["annotations"];
        if ann["prometheus.io/scrape"] == "true" {
            assert_eq!(ann["prometheus.io/port"].as_str().unwrap().parse::<u16>().unwrap(), listen, "{name}");
            live.assert_ok(&format!("{name} scrape"), worker, ann["prometheus.io/path"].as_str().unwrap()).await;
        }
        if worker {
            let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
            assert!(
                grace >= s.worker.shutdown_timeout_secs + GRACE_MARGIN_SECS,
                "{where_}: terminationGracePeriodSeconds {grace} does not cover worker.shutdown_timeout_secs {}",
                s.worker.shutdown_timeout_secs
            );
        }
        assert!(roles.insert(sub, (*d, s)).is_none(), "two Deployments run the same subcommand");
    }
    let (ingress, ingress_settings) = &roles["ingress"];
    let (worker, _) = &roles["worker"];

    // The Service reaches the ingress's listener.
    let svc = k8s
        .of_kind("Service")
        .into_iter()
        .find(|s| labels_match(&s["spec"]["selector"], &ingress["spec"]["template"]["metadata"]["labels"]))
        .expect("a Service for the ingress");
    let ic = &ingress["spec"]["template"]["spec"]["containers"][0];
    for p in svc["spec"]["ports"].as_array().unwrap() {
        assert_eq!(container_port("Service", ic, &p["targetPort"]), port_of(&ingress_settings.http.bind));
    }

    // Every PodDisruptionBudget covers a Deployment; the workers have one.
    let pdbs = k8s.of_kind("PodDisruptionBudget");
    for pdb in &pdbs {
        assert!(
            deployments.iter().any(|d| labels_match(
                &pdb["spec"]["selector"]["matchLabels"],
                &d["spec"]["template"]["metadata"]["labels"]
            )),
            "PodDisruptionBudget {} selects no Deployment",
            pdb["metadata"]["name"]
        );
    }
    assert!(
        pdbs.iter().any(|p| labels_match(
            &p["spec"]["selector"]["matchLabels"],
            &worker["spec"]["template"]["metadata"]["labels"]
        )),
        "no PodDisruptionBudget for the workers"
    );

    // The autoscaler scales the workers on metrics the service exports.
    let scaled = k8s.of_kind("ScaledObject");
    assert!(!scaled.is_empty(), "no KEDA ScaledObject");
    for so in scaled {
        assert_eq!(so["spec"]["scaleTargetRef"]["name"], worker["metadata"]["name"], "ScaledObject target");
        let triggers = so["spec"]["triggers"].as_array().unwrap();
        assert!(!triggers.is_empty());
        for t in triggers {
            assert_eq!(t["type"], "prometheus", "ScaledObject trigger");
            let q = t["metadata"]["query"].as_str().unwrap();
            check_promql("ScaledObject query", q, &exported, &labels, &kinds);
            assert!(t["metadata"]["threshold"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
        }
    }
}

// --- Grafana ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_uses_only_exported_metrics() {
    let live = Live::start().await;
    let exported = live.metrics().await;
    let labels = metric_labels_in_source();
    // The label lists read from the source are those of the live samples.
    for (metric, seen) in &exported {
        if !seen.is_empty() {
            assert_eq!(Some(seen), labels.get(metric), "labels of {metric} in ingress/src/metrics.rs");
        }
    }
    for metric in labels.keys() {
        assert!(exported.contains_key(metric), "{metric} is in metrics.rs but not served");
    }
    for must_have_samples in ["rmm_sync_jobs", "rmm_sync_queue_depth", "rmm_sync_http_requests_total"] {
        assert!(!exported[must_have_samples].is_empty(), "no sample of {must_have_samples}");
    }

    let kinds: BTreeSet<String> = Registry::builtin().names().into_iter().map(str::to_owned).collect();
    let dash: Value = serde_json::from_str(&read("deploy/grafana/rmm-sync.json")).unwrap();
    assert!(dash["title"].is_string() && dash["uid"].is_string(), "dashboard title and uid");
    let exprs = dashboard_exprs(&dash);
    assert!(exprs.len() >= 8, "only {} queries in the dashboard", exprs.len());
    let mut used = BTreeSet::new();
    for (where_, expr, legend) in &exprs {
        let available = check_promql(where_, expr, &exported, &labels, &kinds);
        used.extend(promql_refs(expr).selectors.into_iter().map(|(m, _)| m));
        for l in legend.iter().flat_map(|l| l.split("{{").skip(1)) {
            let l = l.split("}}").next().unwrap().trim();
            assert!(available.contains(l), "{where_}: legend {{{{{l}}}}} is no label of {expr:?}");
        }
    }
    // Every exported metric is on the dashboard.
    let missing: Vec<&String> = exported.keys().filter(|m| !used.contains(*m)).collect();
    assert!(missing.is_empty(), "exported but not on the dashboard: {missing:?}");
    // Panels use the dashboard's data source variable.
    let ds_var = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["type"] == "datasource")
        .and_then(|v| v["name"].as_str())
        .expect("a data source variable");
    for p in dash["panels"].as_array().unwrap().iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"]["uid"], format!("${{{ds_var}}}"), "panel {} data source", p["title"]);
    }
}

#[test]
fn promql_reader_finds_metrics_matchers_and_grouping() {
    let r = promql_refs(
        r#"sum by (kind, status) (rate(rmm_sync_x{a="1", b=~"5..|e"}[5m])) / ignoring(pod) max without (c) (y) > bool 0"#,
    );
    let names: Vec<&str> = r.selectors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["rmm_sync_x", "y"]);
    assert_eq!(r.selectors[0].1, [("a".into(), "=".into(), "1".into()), ("b".into(), "=~".into(), "5..|e".into())]);
    let grouping: Vec<&str> = r.grouping.iter().map(String::as_str).collect();
    assert_eq!(grouping, ["c", "kind", "pod", "status"]);
    assert_eq!(duration_secs("1m30s"), 90);
    assert_eq!(duration_secs("45s"), 45);
    assert_eq!(duration_secs("90"), 90);
    assert_eq!(duration_secs("1min 30s"), 90);
}

// --- systemd ---------------------------------------------------------------------------------

#[test]
fn systemd_units_run_real_commands_with_enough_stop_time() {
    let commands = cli_commands();
    let env_truth = EnvTruth::load();
    let dir = path("deploy/systemd");
    let mut units: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    units.sort();
    assert!(units.len() >= 3, "{units:?}");
    let mut seen = BTreeSet::new();
    for unit in &units {
        assert!(unit.ends_with(".service"), "{unit}");
        // Template units are checked with an instance name (the worker's listener port).
        let text = read(&format!("deploy/systemd/{unit}")).replace("%i", "9091");
        let mut section = String::new();
        let mut svc: Vec<(String, String)> = Vec::new();
        let mut unit_sec: Vec<(String, String)> = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{unit}: {line}"));
            let kv = (k.trim().to_owned(), v.trim().to_owned());
            match section.as_str() {
                "[Service]" => svc.push(kv),
                "[Unit]" => unit_sec.push(kv),
                _ => {}
            }
        }
        let get = |k: &str| svc.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let exec: Vec<String> = get("ExecStart").expect("ExecStart").split_whitespace().map(str::to_owned).collect();
        assert!(exec[0].ends_with("/rmm-sync"), "{unit}: ExecStart {exec:?}");
        let sub = check_command_line(unit, &exec[1..], &commands);
        seen.insert(sub.clone());
        assert!(!matches!(get("User"), None | Some("root")), "{unit}: runs as root");
        let mut env = Vec::new();
        for (_, v) in svc.iter().filter(|(k, _)| k == "Environment") {
            let (k, v) = v.trim_matches('"').split_once('=').unwrap();
            env_truth.check(unit, k);
            env.push((k.to_owned(), v.to_owned()));
        }
        let s = settings_for(unit, None, &env);
        if sub == "worker" || sub == "serve" {
            let stop = duration_secs(get("TimeoutStopSec").expect("TimeoutStopSec"));
            assert!(
                stop >= s.worker.shutdown_timeout_secs + GRACE_MARGIN_SECS,
                "{unit}: TimeoutStopSec {stop} s does not cover worker.shutdown_timeout_secs"
            );
        }
        if !s.database.migrate_on_start && sub != "migrate" {
            let requires = unit_sec.iter().find(|(k, _)| k == "Requires").map(|(_, v)| v.clone()).unwrap_or_default();
            let migrate_unit = requires.split_whitespace().find(|u| units.contains(&u.to_string()));
            let migrate_unit = migrate_unit.unwrap_or_else(|| panic!("{unit}: requires no unit that migrates"));
            assert!(read(&format!("deploy/systemd/{migrate_unit}")).contains(" migrate\n"), "{unit}: {migrate_unit}");
        }
    }
    for sub in ["serve", "ingress", "worker", "migrate"] {
        assert!(seen.contains(sub), "no systemd unit runs {sub}");
    }
}

// --- docs ------------------------------------------------------------------------------------

#[test]
fn configuration_docs_list_every_setting_and_only_real_variables() {
    let docs = config_docs();
    let keys = settings_keys();
    for (key, default) in &keys {
        let (env, doc_default) =
            docs.settings.get(key).unwrap_or_else(|| panic!("docs/configuration.md has no row for {key}"));
        let name = env_name_of_key(key);
        assert!(backticked(env).contains(&name), "docs/configuration.md: {key} is not given as {name}");
        let shown = match default {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert!(
            backticked(doc_default).contains(&shown),
            "docs/configuration.md: the default of {key} is {shown}, not {doc_default}"
        );
    }
    for key in docs.settings.keys() {
        assert!(keys.contains_key(key), "docs/configuration.md documents {key}, which is no setting");
    }
    let truth = EnvTruth::load();
    for name in &docs.env_names {
        truth.check("docs/configuration.md", name);
    }
    // The other way round: every variable the code reads (outside test-only features) is documented.
    let lines: Vec<&str> = truth.source.lines().collect();
    let mut read_by_code = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if lines[i.saturating_sub(2)..i].iter().any(|l| l.contains("#[cfg(feature = \"test-jobs\")]")) {
            continue;
        }
        // `exact("NAME", …)`: shared/src/config.rs's variables read under their own names
        for call in ["env::var(\"", "get(\"", "lookup(\"", "env = \"", "exact(\""] {
            for (at, _) in line.match_indices(call) {
                let name = line[at + call.len()..].split('"').next().unwrap();
                if name.len() > 1 && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
                    read_by_code.insert(name.to_owned());
                }
            }
        }
    }
    assert!(read_by_code.contains("DATABASE_URL") && read_by_code.contains("VAULT_TOKEN"), "{read_by_code:?}");
    for name in &read_by_code {
        assert!(
            docs.env_names.contains(name),
            "docs/configuration.md does not document {name}, which the service reads"
        );
    }
}

#[test]
fn deploy_readme_names_every_file() {
    let readme = read("deploy/README.md");
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut files = Vec::new();
    walk(&path("deploy"), &path("deploy"), &mut files);
    for f in files.iter().filter(|f| *f != "README.md") {
        assert!(readme.contains(&format!("`{f}`")), "deploy/README.md does not describe {f}");
    }
    assert!(readme.contains("`.dockerignore`"), "deploy/README.md does not describe .dockerignore");
    let ops = read("docs/operations.md");
    assert!(ops.contains("../deploy/README.md"), "docs/operations.md does not point to deploy/README.md");
}
