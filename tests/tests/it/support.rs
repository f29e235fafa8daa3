//! What the tests of this binary share because it is global to the process: the `tracing`
//! subscriber (with the `log` bridge), installed once by [`telemetry`], exporting spans over OTLP
//! to a collector that runs as long as the process. Spans of every test that runs with it reach
//! the collector; a test selects its own by trace id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Route, handler, post};
use prost::Message;
use rmm_shared::config::{LogSettings, TelemetrySettings};
use rmm_shared::telemetry::Telemetry;

/// The process's telemetry: the global subscriber (spans exported to the collector, as service
/// `rmm-sync-test`), installed on the first call. Its log output is off: on stderr, where the
/// test harness does not capture it, it would mix the logs of every test of the binary.
pub fn telemetry() -> &'static (Collector, Arc<Telemetry>) {
    static TELEMETRY: OnceLock<(Collector, Arc<Telemetry>)> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let collector = Collector::start();
        let settings = TelemetrySettings {
            otlp_endpoint: Some(collector.url.clone()),
            service_name: "rmm-sync-test".into(),
            ..TelemetrySettings::default()
        };
        let log = LogSettings { level: "off".into(), ..LogSettings::default() };
        let telemetry = Arc::new(rmm_shared::telemetry::init(&log, &settings).expect("telemetry"));
        (collector, telemetry)
    })
}

/// One span as the collector received it.
#[derive(Debug, Clone)]
pub struct Got {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: i32,
    pub attributes: HashMap<String, String>,
    pub service: String,
}

pub type Received = Arc<Mutex<Vec<Got>>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn any_to_string(v: Option<&AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[handler]
async fn traces(req: &poem::Request, body: poem::Body, seen: Data<&Received>) -> poem::Response {
    let content_type = req.header("content-type").unwrap_or("").to_owned();
    let bytes = body.into_vec().await.unwrap_or_default();
    if content_type != "application/x-protobuf" {
        return poem::Response::builder().status(poem::http::StatusCode::UNSUPPORTED_MEDIA_TYPE).finish();
    }
    let Ok(export) = ExportTraceServiceRequest::decode(bytes.as_slice()) else {
        return poem::Response::builder().status(poem::http::StatusCode::BAD_REQUEST).finish();
    };
    let mut got = seen.lock().unwrap();
    for rs in export.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .map(|a| any_to_string(a.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                let attributes = s
                    .attributes
                    .iter()
                    .map(|a| (a.key.clone(), any_to_string(a.value.as_ref().and_then(|v| v.value.as_ref()))))
                    .collect();
                got.push(Got {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name.clone(),
                    kind: s.kind,
                    attributes,
                    service: service.clone(),
                });
            }
        }
    }
    poem::Response::builder()
        .content_type("application/x-protobuf")
        .body(ExportTraceServiceResponse { partial_success: None }.encode_to_vec())
}

/// A minimal OTLP/HTTP collector: `POST /v1/traces` with protobuf bodies.
pub struct Collector {
    pub url: String,
    pub received: Received,
}

impl Collector {
    /// Starts it on a thread of its own, with a runtime of its own: it outlives every test.
    fn start() -> Collector {
        let received: Received = Arc::default();
        let seen = received.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("otlp-collector".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
                    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
                    tx.send(addr).unwrap();
                    let app = Route::new().at("/v1/traces", post(traces)).data(seen);
                    poem::Server::new_with_acceptor(acceptor).run(app).await
                })
            })
            .unwrap();
        let addr = rx.recv().expect("the collector started");
        Collector { url: format!("http://{addr}"), received }
    }

    pub fn trace(&self, trace_id: &str) -> Vec<Got> {
        self.received.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }
}
