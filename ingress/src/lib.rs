//! The HTTP ingress (webhooks, admin API, health, metrics, OpenAPI).
