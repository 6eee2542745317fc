//! A DNS forwarder on the host for sandboxes: every query a sandbox sends to port 53 is
//! redirected here (by the firewall) and relayed to the host's own resolvers, wherever they
//! are (a local stub on 127.0.0.53 included, which no sandbox could reach itself).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

/// How long one upstream may take to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Queries relayed at once; more wait.
const MAX_IN_FLIGHT: usize = 512;
/// Lifetime of one TCP relay.
const TCP_TIMEOUT: Duration = Duration::from_secs(30);

/// The nameservers of a `resolv.conf` text, port 53.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("nameserver"))
                .then(|| f.next())
                .flatten()
                .and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// The forwarder: a UDP socket and a TCP listener on one port of every host address (the
/// firewall lets only sandboxes reach it).
#[derive(Debug)]
pub struct DnsForwarder {
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    upstreams: Vec<SocketAddr>,
}

impl DnsForwarder {
    /// Binds a free port (UDP and TCP alike). `upstreams` must not be empty.
    pub fn bind(upstreams: Vec<SocketAddr>) -> io::Result<Self> {
        if upstreams.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no upstream DNS server (the host's /etc/resolv.conf names none)",
            ));
        }
        let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let mut last = None;
        for _ in 0..16 {
            let udp = std::net::UdpSocket::bind(any)?;
            let port = udp.local_addr()?.port();
            match std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))) {
                Ok(tcp) => {
                    udp.set_nonblocking(true)?;
                    tcp.set_nonblocking(true)?;
                    return Ok(Self {
                        udp,
                        tcp,
                        upstreams,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free DNS port")))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.udp.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until the task is dropped. Must run inside a tokio runtime.
    pub async fn run(self) -> io::Result<()> {
        let udp = Arc::new(UdpSocket::from_std(self.udp)?);
        let tcp = TcpListener::from_std(self.tcp)?;
        let upstreams: Arc<[SocketAddr]> = self.upstreams.into();
        let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let tcp_up = upstreams.clone();
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = tcp.accept().await else {
                    continue;
                };
                let up = tcp_up.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(TCP_TIMEOUT, relay_tcp(stream, &up)).await;
                });
            }
        });
        let mut buf = vec![0u8; 4096];
        let result = loop {
            let (n, from) = match udp.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => break Err(e),
            };
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break Ok(());
            };
            let query = buf[..n].to_vec();
            let (udp, up) = (udp.clone(), upstreams.clone());
            tokio::spawn(async move {
                if let Some(answer) = ask_udp(&query, &up).await {
                    let _ = udp.send_to(&answer, from).await;
                }
                drop(permit);
            });
        };
        tcp_task.abort();
        result
    }
}

async fn ask_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let local: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(sock) = UdpSocket::bind(local).await else {
            continue;
        };
        if sock.connect(up).await.is_err() || sock.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        if let Ok(Ok(n)) = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf)).await {
            // The answer must be for this query (same id).
            if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    None
}

async fn relay_tcp(mut client: TcpStream, upstreams: &[SocketAddr]) {
    for up in upstreams {
        if let Ok(Ok(mut server)) =
            tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(up)).await
        {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameservers() {
        let t = "# x\nnameserver 127.0.0.53\nsearch a\nnameserver fe80::1%eth0\nnameserver bad\n";
        let v = parse_resolv_conf(t);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0], "127.0.0.53:53".parse().unwrap());
    }
}
