//! The accept loop: connection admission and the timeouts that keep slow or silent clients
//! from holding the server.
//!
//! Every client is unauthenticated until its first request's headers are read, so nothing
//! here may depend on who the client is. The rules, in the order they apply:
//!
//! | rule | why | test |
//! |---|---|---|
//! | at most `max_connections` open connections; at the cap, the oldest connection with no request in flight is closed to admit the new one, else the new one is closed at once | a flood of idle or half-sent connections cannot exhaust the server's descriptors, and cannot keep a real client out | `slow_clients_cannot_stop_the_server` |
//! | at most `max_per_client` connections per client address, with the same eviction inside that address | one address cannot take the whole budget | `one_client_cannot_take_every_connection` |
//! | a connection must complete its first request's headers within `header_read_timeout` | the slowloris case: bytes trickle in, or none at all | `slow_clients_cannot_stop_the_server` |
//! | later requests on a kept-alive connection have no header deadline of their own: between requests the connection has none in flight, so under pressure it is the first to be closed | hyper's own header timer also runs while a kept-alive connection waits for its next request, which would close every pooled SDK connection after a few idle seconds and race the client's next request | `slow_clients_cannot_stop_the_server` |
//! | a connection with no byte read or written for `idle_timeout` is closed | dead peers and forgotten keep-alive connections do not accumulate; the default sits above the SDKs' 300 s keep-alive expiry, so clients close first and never race the server, and above envd's 90 s stream keepalives | |
//!
//! Threads: one task per connection on the caller's tokio runtime.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// Limits on client connections, applied before authentication.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_per_client: usize,
    /// Time a connection has to deliver its first request's headers.
    pub header_read_timeout: Duration,
    /// A connection with no traffic either way for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_per_client: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(310),
        }
    }
}

impl ConnectionLimits {
    /// Refuses limits that would make the server unusable.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 || self.max_per_client == 0 {
            return Err("connection limits must be at least 1".into());
        }
        if self.header_read_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err("connection timeouts must be more than 0 seconds".into());
        }
        Ok(())
    }
}

/// One admitted connection, as the admission table sees it.
struct Slot {
    client: IpAddr,
    /// Requests in flight; a connection with none may be evicted under pressure.
    active: Arc<AtomicUsize>,
    /// When it was admitted or last finished a request: the eviction order.
    since: Instant,
    /// Wakes the connection's task to close it.
    evict: Arc<Notify>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    slots: HashMap<u64, Slot>,
    per_client: HashMap<IpAddr, usize>,
}

impl Table {
    /// The oldest connection with no request in flight, among those `matching`.
    fn oldest_idle(&self, matching: impl Fn(&Slot) -> bool) -> Option<u64> {
        self.slots
            .iter()
            .filter(|(_, s)| s.active.load(Ordering::Acquire) == 0 && matching(s))
            .min_by_key(|(_, s)| s.since)
            .map(|(id, _)| *id)
    }

    fn evict(&mut self, id: u64) {
        if let Some(slot) = self.remove(id) {
            slot.evict.notify_one();
        }
    }

    fn remove(&mut self, id: u64) -> Option<Slot> {
        let slot = self.slots.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&slot.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&slot.client);
            }
        }
        Some(slot)
    }
}

/// Decides which connections may stay open.
#[derive(Clone)]
struct Admission {
    limits: ConnectionLimits,
    table: Arc<Mutex<Table>>,
}

/// Held by a connection's task; leaving the table when dropped.
struct Admitted {
    id: u64,
    active: Arc<AtomicUsize>,
    evict: Arc<Notify>,
    table: Arc<Mutex<Table>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut t) = self.table.lock() {
            t.remove(self.id);
        }
    }
}

impl Admission {
    fn admit(&self, client: IpAddr) -> Option<Admitted> {
        let mut t = self.table.lock().ok()?;
        if t.per_client.get(&client).copied().unwrap_or(0) >= self.limits.max_per_client {
            let id = t.oldest_idle(|s| s.client == client)?;
            t.evict(id);
            tracing::debug!(%client, "per-client connection cap: closed its oldest idle connection");
        }
        if t.slots.len() >= self.limits.max_connections {
            let id = t.oldest_idle(|_| true)?;
            t.evict(id);
            tracing::debug!("connection cap: closed the oldest idle connection");
        }
        t.next_id += 1;
        let id = t.next_id;
        let active = Arc::new(AtomicUsize::new(0));
        let evict = Arc::new(Notify::new());
        t.slots.insert(
            id,
            Slot {
                client,
                active: active.clone(),
                since: Instant::now(),
                evict: evict.clone(),
            },
        );
        *t.per_client.entry(client).or_default() += 1;
        Some(Admitted {
            id,
            active,
            evict,
            table: self.table.clone(),
        })
    }

    /// A request finished on connection `id`: it moves to the back of the eviction order.
    fn touch(table: &Mutex<Table>, id: u64) {
        if let Ok(mut t) = table.lock()
            && let Some(s) = t.slots.get_mut(&id)
        {
            s.since = Instant::now();
        }
    }
}

/// Counts a request in flight on its connection for as long as it lives (also when the
/// client goes away mid-request and the future is dropped).
struct InFlight {
    active: Arc<AtomicUsize>,
    table: Arc<Mutex<Table>>,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
        Admission::touch(&self.table, self.id);
    }
}

/// The longest a stop waits for open requests (long streams included) to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` under `limits` until `shutdown` resolves, then lets open
/// requests finish for up to 10 s. With `tls`, a connection that opens with a TLS
/// ClientHello is served over TLS ([`crate::tls::accept`]), within the first-request deadline.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(TlsAcceptor::from);
    let admission = Admission {
        limits: limits.clone(),
        table: Arc::default(),
    };
    let mut builder = Builder::new(TokioExecutor::new());
    // Off: see the table above; the first-request deadline is kept per connection below.
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    // Every connection task holds a receiver: `closed()` resolves once all have ended.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE/ENFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(admitted) = admission.admit(peer.ip()) else {
            tracing::debug!(client = %peer.ip(), "connection refused: every connection is busy");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_one(
            tcp,
            tls.clone(),
            peer,
            app.clone(),
            builder.clone(),
            admitted,
            limits.clone(),
            stop_rx.clone(),
        ));
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, stop_tx.closed()).await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn serve_one(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    peer: SocketAddr,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    admitted: Admitted,
    limits: ConnectionLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let accepted = tokio::time::timeout(
        limits.header_read_timeout,
        crate::tls::accept(tcp, tls.as_ref()),
    );
    let stream = match accepted.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(client = %peer, "no TLS handshake in time: connection closed");
            return;
        }
    };
    let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
    let served = Arc::new(AtomicUsize::new(0));
    let (active, table, id, counted) = (
        admitted.active.clone(),
        admitted.table.clone(),
        admitted.id,
        served.clone(),
    );
    let svc = tower::ServiceBuilder::new()
        .map_future(move |fut| {
            active.fetch_add(1, Ordering::AcqRel);
            counted.fetch_add(1, Ordering::AcqRel);
            let guard = InFlight {
                active: active.clone(),
                table: table.clone(),
                id,
            };
            async move {
                let response = fut.await;
                drop(guard);
                response
            }
        })
        .service(app);
    let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(svc));
    tokio::pin!(conn);
    let first_request = tokio::time::sleep(limits.header_read_timeout);
    tokio::pin!(first_request);
    let mut deadline_armed = true;
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(client = %peer, error = %e, "connection ended with an error");
                }
                break;
            }
            () = &mut first_request, if deadline_armed => {
                if served.load(Ordering::Acquire) == 0 {
                    tracing::debug!(client = %peer, "no request headers in time: connection closed");
                    break;
                }
                deadline_armed = false;
            }
            () = admitted.evict.notified() => break,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A stream that fails with `TimedOut` once neither direction has moved for `timeout`.
struct IdleTimeout<T> {
    inner: T,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
    }

    fn check(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection idle for too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.moved();
                Poll::Ready(r)
            }
            Poll::Pending => self.check(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.moved();
                Poll::Ready(r)
            }
            Poll::Pending => self.check(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.moved();
                Poll::Ready(r)
            }
            Poll::Pending => self.check(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
