//! The firewall's refusals, as the kernel reports them: each `refuse_*` chain logs the packet
//! it refuses to an NFLOG group (at most [`LOG_RATE`] a second, so a sandbox flooding
//! refused destinations cannot flood the log), and a thread of the server reads that group
//! and logs each refusal with the sandbox id, destination, port, protocol and the rule that
//! refused it, and counts it for the sandbox (`refusals.rs`).
//!
//! The encoding follows `include/uapi/linux/netfilter/nfnetlink_log.h`.

use std::net::Ipv4Addr;

use crate::netlink::{Msg, NLM_F_ACK, NLM_F_REQUEST, Socket};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;

/// Refusals logged per second at most (the rest are refused all the same, not logged).
pub(crate) const LOG_RATE: u64 = 50;
/// Bytes of each refused packet copied to the log: the IPv4 header and the ports.
pub(crate) const SNAPLEN: u32 = 64;
/// What every log prefix of ours starts with.
pub(crate) const PREFIX: &str = "bulkhead:";

/// One refused packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub protocol: &'static str,
    pub port: Option<u16>,
    /// The rule that refused it (the log prefix without [`PREFIX`]).
    pub rule: String,
}

/// The NFLOG group of a firewall table: stable for the table's name, so a restarted server
/// reads the group its table logs to, and two pools on one host use different groups.
pub(crate) fn group_of(table: &str) -> u16 {
    let mut h: u32 = 2_166_136_261;
    for b in table.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(16_777_619);
    }
    // Away from 0 (the default group) and the low numbers other tools pick.
    1000 + (h % 60_000) as u16
}

/// Binds a socket to `group` in copy-packet mode.
pub(crate) fn bind(group: u16) -> std::io::Result<Socket> {
    let mut sock = Socket::netfilter()?;
    let config = |attrs: &dyn Fn(&mut Msg)| {
        let mut m = Msg::new(
            (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG,
            NLM_F_REQUEST | NLM_F_ACK,
        );
        // struct nfgenmsg: family AF_UNSPEC, version 0, res_id = the group (big-endian).
        let g = group.to_be_bytes();
        m.raw(&[0, 0, g[0], g[1]]);
        attrs(&mut m);
        m
    };
    sock.request(config(&|m| {
        m.attr(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]);
    }))?;
    sock.request(config(&|m| {
        let mut mode = SNAPLEN.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        m.attr(NFULA_CFG_MODE, &mode);
    }))?;
    Ok(sock)
}

/// Reads `sock` until it fails for good, calling `on` for each refused IPv4 packet. Runs on
/// a thread of its own.
pub(crate) fn read_loop(sock: &Socket, on: &dyn Fn(Refused)) {
    let mut buf = vec![0u8; 65536];
    loop {
        let len = match sock.recv_raw(&mut buf) {
            Ok(n) => n,
            // The kernel dropped messages it could not queue: keep reading.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "the firewall's refusal log stopped");
                return;
            }
        };
        for r in parse(&buf[..len]) {
            on(r);
        }
    }
}

/// The refused packets in one datagram of netlink messages.
pub(crate) fn parse(mut data: &[u8]) -> Vec<Refused> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let mlen = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if mlen < 16 || mlen > data.len() {
            break;
        }
        if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET && mlen >= 20 {
            let (mut prefix, mut payload) = (None, None);
            let mut attrs = &data[20..mlen];
            while attrs.len() >= 4 {
                let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                let akind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                let body = &attrs[4..alen];
                match akind {
                    NFULA_PREFIX => {
                        prefix = Some(
                            String::from_utf8_lossy(body)
                                .trim_end_matches('\0')
                                .to_string(),
                        );
                    }
                    NFULA_PAYLOAD => payload = Some(body),
                    _ => {}
                }
                let step = (alen + 3) & !3;
                attrs = attrs.get(step..).unwrap_or(&[]);
            }
            if let (Some(p), Some(pkt)) = (prefix, payload)
                && let Some(rule) = p.strip_prefix(PREFIX)
                && let Some(r) = ipv4(pkt, rule)
            {
                out.push(r);
            }
        }
        let step = (mlen + 3) & !3;
        data = data.get(step..).unwrap_or(&[]);
    }
    out
}

/// Source, destination, protocol and destination port of an IPv4 packet.
fn ipv4(pkt: &[u8], rule: &str) -> Option<Refused> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let ip = |o: usize| Ipv4Addr::new(pkt[o], pkt[o + 1], pkt[o + 2], pkt[o + 3]);
    let (protocol, has_ports) = match pkt[9] {
        1 => ("icmp", false),
        6 => ("tcp", true),
        17 => ("udp", true),
        _ => ("other", false),
    };
    let port = (has_ports && pkt.len() >= ihl + 4)
        .then(|| u16::from_be_bytes([pkt[ihl + 2], pkt[ihl + 3]]));
    Some(Refused {
        source: ip(12),
        destination: ip(16),
        protocol,
        port,
        rule: rule.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut a = ((4 + body.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(body);
        while !a.len().is_multiple_of(4) {
            a.push(0);
        }
        a
    }

    fn message(prefix: &[u8]) -> Vec<u8> {
        // IPv4 header (20 bytes) then TCP ports 40000 -> 8080.
        let mut pkt = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0];
        pkt.extend_from_slice(&[10, 213, 0, 2, 169, 254, 200, 1]);
        pkt.extend_from_slice(&40000u16.to_be_bytes());
        pkt.extend_from_slice(&8080u16.to_be_bytes());
        let mut body = vec![2, 0, 0, 0]; // nfgenmsg
        body.extend(attr(NFULA_PREFIX, prefix));
        body.extend(attr(NFULA_PAYLOAD, &pkt));
        let mut msg = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        msg.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET).to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend(body);
        msg
    }

    #[test]
    fn a_logged_tcp_syn_parses() {
        assert_eq!(
            parse(&message(b"bulkhead:always-denied\0")),
            vec![Refused {
                source: Ipv4Addr::new(10, 213, 0, 2),
                destination: Ipv4Addr::new(169, 254, 200, 1),
                protocol: "tcp",
                port: Some(8080),
                rule: "always-denied".into(),
            }]
        );
        // Another tool's log prefix is not ours.
        assert!(parse(&message(b"other:x\0")).is_empty());
        // Cut short: nothing, no panic.
        let m = message(b"bulkhead:x\0");
        for n in 0..m.len() {
            let _ = parse(&m[..n]);
        }
    }

    #[test]
    fn groups_are_stable_and_spread() {
        assert_eq!(group_of("bulkhead-bhv0"), group_of("bulkhead-bhv0"));
        assert_ne!(group_of("bulkhead-bhv0"), group_of("bulkhead-bhv1"));
        assert!(group_of("x") >= 1000);
    }
}
