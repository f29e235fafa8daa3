//! The integration tests, as one test binary: each module was a test file of its own. One binary
//! is linked once instead of once per file (each link of a debug binary is ~350 MB), and its
//! tests share one process.
//!
//! Sharing a process means sharing its globals: the `tracing` subscriber (and the `log` bridge)
//! can be installed only once, so [`support::telemetry`] installs it, with OTLP export to a
//! collector that lives as long as the process, for the tests that need it (`tracing_otlp`, and
//! `no_secrets_in_logs`, which captures its own threads' logs through a thread-local subscriber).
//! Other tests may run with trace export on (as a service configured for it does); every test
//! selects what it checks by its own ids (tenants, databases, Redis namespaces, trace ids).
//!
//! Run one module with `cargo test -p rmm-tests --test it -- <module>::`.

mod algapsa_rmm;
mod algapsa_schema;
mod apalis_tables;
mod api_errors;
mod cli;
mod deploy_manifests;
mod dry_run_history;
mod events;
mod hostile_http;
mod hostile_input;
mod hostile_tanium;
mod levelio;
mod ninjaone;
mod no_secrets_in_logs;
mod pipeline;
mod postgres_restart;
mod processes;
mod redis_outage;
mod runtime;
mod schema;
mod secrets_vault;
mod shared_rate_limit;
mod soak;
mod software_facts;
mod status_page;
mod support;
mod tactical_client;
mod tactical_devices;
mod tactical_knox;
mod tanium;
mod tracing_otlp;
