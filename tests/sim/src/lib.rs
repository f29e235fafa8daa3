//! RMM simulators: real HTTP servers on 127.0.0.1 that serve what the real products serve. The
//! test suite runs against them, and `rmm-sync demo` starts them so that the service can be tried
//! with nothing installed and no network.
#![forbid(unsafe_code)]

pub mod levelio;
pub mod ninjaone;
pub mod tactical;
pub mod tanium;

use std::net::SocketAddr;
use std::time::Duration;

use poem::Endpoint;
use poem::listener::TcpAcceptor;
use tokio::sync::oneshot;

/// A simulator's HTTP server in the background; it stops (open requests get 200 ms) when this is
/// dropped.
pub(crate) struct Served {
    shutdown: Option<oneshot::Sender<()>>,
    pub(crate) addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds 127.0.0.1 on a free port (the listener is open before this returns, so the first request
/// cannot race the server) and serves `endpoint` in the background.
pub(crate) async fn serve<E: Endpoint + 'static>(endpoint: impl FnOnce(String) -> E) -> std::io::Result<Served> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let endpoint = endpoint(format!("http://{addr}"));
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        let _ = poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(endpoint, shutdown, Some(Duration::from_millis(200)))
            .await;
    });
    Ok(Served { shutdown: Some(tx), addr })
}
