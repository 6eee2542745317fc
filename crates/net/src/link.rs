//! Links, addresses and routes over rtnetlink.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::netlink::{Msg, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, Socket};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const IFF_UP: u32 = 1;
const AF_INET: u8 = libc::AF_INET as u8;

/// `struct ifinfomsg` with `index` and, when `up`, the UP flag to apply.
fn ifinfomsg(index: i32, up: bool) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    if up {
        b[8..12].copy_from_slice(&IFF_UP.to_ne_bytes());
        b[12..16].copy_from_slice(&IFF_UP.to_ne_bytes());
    }
    b
}

/// Creates a veth pair, `host` in the caller's namespace and up, and `peer` (down) directly
/// in the namespace `netns` (no move afterwards: a move re-registers the device under the
/// RTNL lock).
pub(crate) fn create_veth(
    sock: &mut Socket,
    host: &str,
    peer: &str,
    netns: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut m = Msg::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    );
    m.raw(&ifinfomsg(0, true)).str(IFLA_IFNAME, host);
    m.begin(IFLA_LINKINFO).str(IFLA_INFO_KIND, "veth");
    m.begin(IFLA_INFO_DATA).begin(VETH_INFO_PEER);
    // Not up yet: the peer is registered before the pair is linked, and opening it then
    // fails (ENOTCONN). It is brought up from inside its namespace.
    m.raw(&ifinfomsg(0, false))
        .str(IFLA_IFNAME, peer)
        .u32_ne(IFLA_NET_NS_FD, netns.as_raw_fd() as u32);
    m.end().end().end();
    sock.request(m)
}

/// Brings link `index` up.
pub(crate) fn set_up(sock: &mut Socket, index: u32) -> io::Result<()> {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
    m.raw(&ifinfomsg(index as i32, true));
    sock.request(m)
}

/// Deletes link `name` (both ends of a veth). `Ok(false)` when there is no such link.
pub(crate) fn delete_link(sock: &mut Socket, name: &str) -> io::Result<bool> {
    let mut m = Msg::new(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
    m.raw(&ifinfomsg(0, false)).str(IFLA_IFNAME, name);
    match sock.request(m) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Adds `addr/prefix` to the link with `index`.
pub(crate) fn add_address(
    sock: &mut Socket,
    index: u32,
    addr: Ipv4Addr,
    prefix: u8,
) -> io::Result<()> {
    let mut m = Msg::new(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    );
    let mut ifa = [0u8; 8];
    ifa[0] = AF_INET;
    ifa[1] = prefix;
    ifa[4..8].copy_from_slice(&index.to_ne_bytes());
    m.raw(&ifa)
        .attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets());
    sock.request(m)
}

/// Sets the default route via `gateway` out of link `index`.
pub(crate) fn add_default_route(
    sock: &mut Socket,
    index: u32,
    gateway: Ipv4Addr,
) -> io::Result<()> {
    let mut m = Msg::new(
        RTM_NEWROUTE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    );
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    let rtm = [AF_INET, 0, 0, 0, 254, 4, 0, 1, 0, 0, 0, 0];
    m.raw(&rtm)
        .attr(RTA_GATEWAY, &gateway.octets())
        .u32_ne(RTA_OIF, index);
    sock.request(m)
}

/// The index of link `name` in the calling thread's network namespace.
pub(crate) fn index_of(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
}
