//! The egress proxy for domain rules: TCP to ports 80 and 443 of a sandbox with domain rules
//! is redirected here (by the firewall). The proxy reads the HTTP `Host` (port 80) or the TLS
//! SNI (443; no interception), matches it against the sandbox's rules, resolves the name
//! itself, drops answers in the always-denied ranges, and connects. Anything else is reset.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::cidr::Cidr;
use crate::policy::DomainRule;

/// How long a client may take to send its first bytes (Host line or ClientHello).
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HELLO: usize = 16 * 1024;

/// What the proxy knows of each sandbox with domain rules (by sandbox address).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    pub sandbox_id: String,
    pub domains: Vec<DomainRule>,
    pub allow: Vec<Cidr>,
}

impl Rules {
    /// Whether a connection to `dst` naming `name` passes.
    fn allows(&self, name: Option<&str>, dst: SocketAddr) -> bool {
        let by_name = name.is_some_and(|n| self.domains.iter().any(|d| d.matches(n)));
        let by_address = match dst.ip() {
            std::net::IpAddr::V4(ip) => self.allow.iter().any(|c| c.contains(ip)),
            std::net::IpAddr::V6(_) => false,
        };
        by_name || by_address
    }
}

/// The rules by sandbox address, and a signal raised on every change (relayed connections
/// are judged again then).
#[derive(Debug)]
pub(crate) struct RuleTable {
    map: RwLock<HashMap<Ipv4Addr, Rules>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for RuleTable {
    fn default() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl RuleTable {
    pub(crate) fn get(&self, addr: &Ipv4Addr) -> Option<Rules> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(addr)
            .cloned()
    }

    /// Sets (or with `None` removes) the rules of `addr`.
    pub(crate) fn set(&self, addr: Ipv4Addr, rules: Option<Rules>) {
        {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            match rules {
                Some(r) => map.insert(addr, r),
                None => map.remove(&addr),
            };
        }
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }
}

/// Shared between [`crate::Network`] (which writes) and the proxy (which reads).
pub(crate) type RuleMap = Arc<RuleTable>;

/// The egress proxy's listener, bound before the firewall is installed.
#[derive(Debug)]
pub struct EgressProxy {
    listener: std::net::TcpListener,
    pub(crate) rules: RuleMap,
    denied: Vec<Cidr>,
}

impl EgressProxy {
    /// Binds a free port on every host address (the firewall lets only sandboxes reach it).
    pub fn bind() -> io::Result<Self> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            rules: RuleMap::default(),
            denied: Vec::new(),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub(crate) fn set_denied(&mut self, denied: Vec<Cidr>) {
        self.denied = denied;
    }

    /// Serves until the task is dropped. Must run inside a tokio runtime, after
    /// [`crate::Network::new`] was given this proxy.
    pub async fn run(self) -> io::Result<()> {
        let listener = TcpListener::from_std(self.listener)?;
        let shared = Arc::new((self.rules, self.denied));
        loop {
            let Ok((client, peer)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let dst = original_dst(&client);
                if let Err((sandbox_id, reason)) = handle(client, peer, &shared.0, &shared.1).await
                {
                    crate::refusals::count(Some(&sandbox_id));
                    tracing::info!(
                        sandbox_id,
                        source = %peer.ip(),
                        destination = %dst.map(|d| d.ip().to_string()).unwrap_or_default(),
                        port = dst.map_or(0, |d| d.port()),
                        protocol = "tcp",
                        rule = reason,
                        "egress connection refused"
                    );
                }
            });
        }
    }
}

/// Bytes a relayed connection copies per read, each way. tokio's default (8 KiB) cost a
/// system call pair per 8 KiB and held a relayed upload to 16–30 % of the host's rate
/// (`BENCHMARKS.md`, egress throughput); 64 KiB keeps a connection at 128 KiB of buffers.
const RELAY_BUFFER: usize = 64 << 10;

/// Refuses `client` with a reset, so the sandbox sees a failure at once.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}

fn original_dst(client: &TcpStream) -> Option<SocketAddr> {
    let sa = nix::sys::socket::getsockopt(&client.as_fd(), nix::sys::socket::sockopt::OriginalDst)
        .ok()?;
    let ip = Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
    Some(SocketAddr::from((ip, u16::from_be(sa.sin_port))))
}

/// Serves one redirected connection. An error names the sandbox (when known) and why it
/// was refused; the client has been reset then.
async fn handle(
    mut client: TcpStream,
    peer: SocketAddr,
    rules: &RuleMap,
    denied: &[Cidr],
) -> Result<(), (String, &'static str)> {
    let refuse = |client: TcpStream, id: &str, why: &'static str| {
        reset(client);
        Err((id.to_string(), why))
    };
    let SocketAddr::V4(peer4) = peer else {
        return refuse(client, "", "not IPv4");
    };
    let (Some(r), Some(dst)) = (rules.get(peer4.ip()), original_dst(&client)) else {
        return refuse(client, "", "no rules for this source");
    };
    let id = r.sandbox_id.clone();
    let mut buf = Vec::with_capacity(4096);
    let name = loop {
        let mut chunk = [0u8; 4096];
        let n = match tokio::time::timeout(HELLO_TIMEOUT, client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return refuse(client, &id, "no request"),
        };
        buf.extend_from_slice(&chunk[..n]);
        let parsed = if dst.port() == 443 {
            sni(&buf)
        } else {
            http_host(&buf)
        };
        match parsed {
            Parsed::Name(n) => break Some(n),
            Parsed::None => break None,
            Parsed::More if buf.len() < MAX_HELLO => continue,
            Parsed::More => break None,
        }
    };
    if !r.allows(name.as_deref(), dst) {
        let why = if name.is_some() {
            "name not allowed"
        } else {
            "no name (SNI or Host) in the request"
        };
        return refuse(client, &id, why);
    }
    let by_name = name
        .as_deref()
        .is_some_and(|n| r.domains.iter().any(|d| d.matches(n)));
    let target: Vec<SocketAddr> = match &name {
        Some(n) if by_name => match tokio::net::lookup_host((n.as_str(), dst.port())).await {
            Ok(addrs) => addrs
                .filter(|a| match a.ip() {
                    std::net::IpAddr::V4(ip) => !denied.iter().any(|c| c.contains(ip)),
                    std::net::IpAddr::V6(_) => false,
                })
                .collect(),
            Err(_) => Vec::new(),
        },
        _ => vec![dst],
    };
    for addr in target {
        let Ok(Ok(mut server)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        else {
            continue;
        };
        let _ = server.set_nodelay(true);
        if tokio::io::AsyncWriteExt::write_all(&mut server, &buf)
            .await
            .is_err()
        {
            break;
        }
        let mut changed = rules.changed.subscribe();
        let tightened = {
            let relay = tokio::io::copy_bidirectional_with_sizes(
                &mut client,
                &mut server,
                RELAY_BUFFER,
                RELAY_BUFFER,
            );
            tokio::pin!(relay);
            loop {
                tokio::select! {
                    _ = &mut relay => break false,
                    _ = changed.changed() => {
                        let still = rules
                            .get(peer4.ip())
                            .is_some_and(|now| now.allows(name.as_deref(), dst));
                        if !still {
                            break true;
                        }
                    }
                }
            }
        };
        if tightened {
            return refuse(client, &id, "the policy no longer allows it");
        }
        return Ok(());
    }
    refuse(
        client,
        &id,
        "the allowed name resolved to no reachable address",
    )
}

/// Result of parsing the first bytes of a connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    Name(String),
    /// Complete, but carries no usable name.
    None,
    /// Needs more bytes.
    More,
}

/// The `Host` of an HTTP/1 request (lowercase, without port).
pub(crate) fn http_host(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Parsed::More;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    for line in head.split("\r\n").skip(1) {
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("host")
        {
            let host = v.trim();
            let host = host.rsplit_once(':').map_or(host, |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            return Parsed::Name(host.trim_end_matches('.').to_ascii_lowercase());
        }
    }
    Parsed::None
}

/// The server name (SNI) of a TLS ClientHello (lowercase).
pub(crate) fn sni(buf: &[u8]) -> Parsed {
    // Record header: type 22 (handshake), version, length.
    if buf.len() < 5 {
        return Parsed::More;
    }
    if buf[0] != 22 {
        return Parsed::None;
    }
    let rec_len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if buf.len() < 5 + rec_len {
        return Parsed::More;
    }
    let hs = &buf[5..5 + rec_len];
    // Handshake: type 1 (ClientHello), 3-byte length, version (2), random (32).
    if hs.len() < 38 || hs[0] != 1 {
        return Parsed::None;
    }
    let p = 38;
    let take = |p: &mut usize, n: usize| -> Option<usize> {
        let start = *p;
        *p = p.checked_add(n)?;
        (*p <= hs.len()).then_some(start)
    };
    let u8_at = |i: usize| usize::from(hs[i]);
    let u16_at = |i: usize| usize::from(u16::from_be_bytes([hs[i], hs[i + 1]]));
    let parse = || -> Option<String> {
        let mut p = p;
        let s = take(&mut p, 1)?;
        take(&mut p, u8_at(s))?; // session id
        let s = take(&mut p, 2)?;
        take(&mut p, u16_at(s))?; // cipher suites
        let s = take(&mut p, 1)?;
        take(&mut p, u8_at(s))?; // compression methods
        let s = take(&mut p, 2)?;
        let ext_end = p.checked_add(u16_at(s))?;
        while p + 4 <= ext_end.min(hs.len()) {
            let kind = u16_at(p);
            let len = u16_at(p + 2);
            let body = take(&mut p, 4).and_then(|_| take(&mut p, len))?;
            if kind == 0 {
                // server_name: list length (2), then entries of type (1), length (2), name.
                let mut q = body + 2;
                while q + 3 <= body + len {
                    let name_len = u16_at(q + 1);
                    if hs[q] == 0 && q + 3 + name_len <= body + len {
                        let name = &hs[q + 3..q + 3 + name_len];
                        return Some(String::from_utf8_lossy(name).to_ascii_lowercase());
                    }
                    q += 3 + name_len;
                }
            }
        }
        None
    };
    match parse() {
        Some(n) => Parsed::Name(n),
        None => Parsed::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header() {
        assert_eq!(
            http_host(b"GET / HTTP/1.1\r\nHost: PyPI.org:80\r\n\r\n"),
            Parsed::Name("pypi.org".into())
        );
        assert_eq!(http_host(b"GET / HTTP/1.1\r\nHost: a"), Parsed::More);
        assert_eq!(http_host(b"GET / HTTP/1.0\r\n\r\n"), Parsed::None);
    }

    #[test]
    fn client_hello_sni() {
        // A minimal ClientHello with one extension: server_name "example.com".
        let name = b"example.com";
        let mut sni_ext = Vec::new();
        sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sni_ext.push(0);
        sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni_ext.extend_from_slice(name);
        let mut exts = vec![0, 0];
        exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
        exts.extend_from_slice(&sni_ext);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        assert_eq!(sni(&rec), Parsed::Name("example.com".into()));
        assert_eq!(sni(&rec[..20]), Parsed::More);
        assert_eq!(sni(b"GET / HTTP/1.1\r\n"), Parsed::None);
    }
}
