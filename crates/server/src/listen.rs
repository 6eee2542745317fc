//! One port, two protocols: each accepted connection's first byte decides between TLS (a
//! ClientHello starts with the handshake record type 0x16) and plain HTTP, so the wildcard
//! domain over HTTPS and the one-port `http://` URLs work side by side. HTTP/1.1 and HTTP/2
//! on both (h2 is chosen by ALPN under TLS, by the connection preface in plain text).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// The TLS record type of a handshake message: every ClientHello begins with it, and no
/// HTTP request line can.
const TLS_HANDSHAKE: u8 = 0x16;

/// How long a new connection may take to send its first byte or finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener`, plain HTTP and TLS with `tls`, until `shutdown` resolves;
/// then stops accepting and waits for open connections to finish their requests.
pub async fn serve(
    app: Router,
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let (app, acceptor, stop) = (app.clone(), acceptor.clone(), stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(tcp, app, acceptor, stop).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(stop_rx);
    let _ = stop_tx.send(true);
    // Every connection task holds a receiver; all are gone when the last one finished.
    stop_tx.closed().await;
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connection(
    tcp: TcpStream,
    app: Router,
    acceptor: TlsAcceptor,
    stop: watch::Receiver<bool>,
) -> Result<(), BoxError> {
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await??;
    if n == 0 {
        return Ok(());
    }
    if first[0] == TLS_HANDSHAKE {
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await??;
        http(TokioIo::new(tls), app, stop).await
    } else {
        http(TokioIo::new(tcp), app, stop).await
    }
}

async fn http<I>(io: I, app: Router, mut stop: watch::Receiver<bool>) -> Result<(), BoxError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let builder = Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}
