//! One port, TLS and plain HTTP: a real listener with a certificate from the local CA,
//! reached by HTTPS (trusting only that CA) and by plain HTTP. (The workspace's reqwest
//! speaks HTTP/1.1 only; HTTP/2 over TLS is tested with the SDKs, tests/sdk/test_domain.py.)

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use bulkhead_server::tls::LocalCa;

const DOMAIN: &str = "sandboxes.bulkhead.test";

async fn start(dir: &std::path::Path) -> (SocketAddr, LocalCa, tokio::sync::oneshot::Sender<()>) {
    let ca = LocalCa::ensure(dir, DOMAIN).expect("local CA");
    let config = ca.leaf.server_config(&ca.ca_cert).expect("rustls config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route("/", get(|| async { "hello" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bulkhead_server::listener::serve_connections(
        listener,
        app,
        bulkhead_server::listener::ConnectionLimits::default(),
        Some(config),
        async {
            let _ = stopped.await;
        },
    ));
    (addr, ca, stop)
}

fn client(ca: &LocalCa, addr: SocketAddr) -> reqwest::Client {
    let pem = std::fs::read(&ca.ca_cert).expect("ca pem");
    let cert = reqwest::Certificate::from_pem(&pem).expect("ca cert");
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .resolve(&format!("api.{DOMAIN}"), addr)
        .resolve(&format!("49983-abc.{DOMAIN}"), addr)
        .build()
        .expect("client")
}

#[tokio::test]
async fn tls_and_plain_http_share_the_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, ca, stop) = start(dir.path()).await;
    let port = addr.port();
    for host in [format!("api.{DOMAIN}"), format!("49983-abc.{DOMAIN}")] {
        let r = client(&ca, addr)
            .get(format!("https://{host}:{port}/"))
            .send()
            .await
            .expect("https request");
        assert_eq!(r.text().await.expect("body"), "hello");
    }
    let r = reqwest::get(format!("http://{addr}/"))
        .await
        .expect("plain http");
    assert_eq!(r.text().await.expect("body"), "hello");
    // A client that trusts only the system roots refuses the local CA's certificate.
    let strict = reqwest::Client::builder()
        .resolve(&format!("api.{DOMAIN}"), addr)
        .build()
        .expect("client");
    assert!(
        strict
            .get(format!("https://api.{DOMAIN}:{port}/"))
            .send()
            .await
            .is_err()
    );
    let _ = stop.send(());
}
