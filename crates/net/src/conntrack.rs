//! Conntrack entries of a sandbox, flushed over ctnetlink when it is detached, so a reused
//! address starts with no state.

use std::io;
use std::net::Ipv4Addr;

use crate::netlink::{Msg, NLM_F_ACK, NLM_F_REQUEST, Socket};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_FILTER: u16 = 25;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_F_CTA_IP_SRC: u32 = 1;
const AF_INET: u8 = libc::AF_INET as u8;

/// Deletes every entry whose original source is `addr` (a filtered flush: the kernel walks
/// the table once).
pub(crate) fn flush_source(addr: Ipv4Addr) -> io::Result<()> {
    let mut sock = Socket::netfilter()?;
    let mut m = Msg::new(
        (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
        NLM_F_REQUEST | NLM_F_ACK,
    );
    // nfgenmsg: family, version 1 (so the family applies to the filter), res_id 0.
    m.raw(&[AF_INET, 1, 0, 0]);
    m.begin(CTA_TUPLE_ORIG)
        .begin(CTA_TUPLE_IP)
        .attr(CTA_IP_V4_SRC, &addr.octets())
        .end()
        .end();
    m.begin(CTA_FILTER)
        .u32_ne(CTA_FILTER_ORIG_FLAGS, CTA_FILTER_F_CTA_IP_SRC)
        .end();
    sock.request(m)
}
