//! The HTTP ingress (webhooks, admin API, health, metrics, OpenAPI).
#![forbid(unsafe_code)]
