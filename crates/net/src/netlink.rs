//! A minimal netlink client: messages built as bytes, sent on a socket, answered by acks.
//!
//! Only what rtnetlink (links, addresses, routes) and nf_tables (batches) need: requests with
//! `NLM_F_ACK`, and the kernel's `NLMSG_ERROR` answers (error 0 = ack).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, sendto,
    socket,
};

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;

/// One netlink message under construction: header, fixed payload, then attributes.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    /// A message of `kind` with `flags`; its sequence number is set when it is sent.
    pub(crate) fn new(kind: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, fixed in `finish`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq
        buf.extend_from_slice(&0u32.to_ne_bytes()); // pid
        Self {
            buf,
            nests: Vec::new(),
        }
    }

    /// Appends raw bytes (a fixed header such as `ifinfomsg`), padded to 4.
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// An attribute with a byte payload.
    pub(crate) fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = (4 + payload.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// A NUL-terminated string attribute.
    pub(crate) fn str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    /// A host-order u32 (rtnetlink).
    pub(crate) fn u32_ne(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A big-endian u32 (nf_tables).
    pub(crate) fn u32_be(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_be_bytes())
    }

    /// Opens a nested attribute; close it with [`Msg::end`].
    pub(crate) fn begin(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Closes the innermost nested attribute.
    pub(crate) fn end(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The finished bytes with sequence number `seq`.
    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// A netlink socket of one protocol, bound in the network namespace of the thread that
/// opened it (it stays there when the thread moves on).
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// Opens a route (`NETLINK_ROUTE`) socket.
    pub(crate) fn route() -> io::Result<Self> {
        Self::open(SockProtocol::NetlinkRoute)
    }

    /// Opens a netfilter (`NETLINK_NETFILTER`) socket.
    pub(crate) fn netfilter() -> io::Result<Self> {
        Self::open(SockProtocol::NetlinkNetFilter)
    }

    fn open(proto: SockProtocol) -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            proto,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(Self { fd, seq: 1 })
    }

    /// Sends one request and waits for its ack. A kernel error comes back as the errno.
    pub(crate) fn request(&mut self, msg: Msg) -> io::Result<()> {
        self.transact(vec![msg], true).map(|_| ())
    }

    /// Sends `msgs` in one datagram (an nf_tables batch) and waits for the ack of every
    /// message that asked for one (`acked` = all but the first and last when `batch`).
    /// Returns the first error the kernel reported, after reading every answer.
    pub(crate) fn transact(&mut self, msgs: Vec<Msg>, all_acked: bool) -> io::Result<()> {
        let n = msgs.len();
        let first_seq = self.seq;
        let mut bytes = Vec::new();
        let mut wanted = Vec::new();
        for (i, m) in msgs.into_iter().enumerate() {
            let seq = self.seq;
            self.seq = self.seq.wrapping_add(1);
            let batch_marker = !all_acked && (i == 0 || i + 1 == n);
            if !batch_marker {
                wanted.push(seq);
            }
            bytes.extend_from_slice(&m.finish(seq));
        }
        sendto(
            self.fd.as_raw_fd(),
            &bytes,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        let mut first_error: Option<io::Error> = None;
        let mut buf = vec![0u8; 65536];
        while !wanted.is_empty() {
            let len = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            let mut off = 0;
            while off + 16 <= len {
                let mlen = u32::from_ne_bytes(le4(&buf[off..])) as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let seq = u32::from_ne_bytes(le4(&buf[off + 8..]));
                if mlen < 16 || off + mlen > len {
                    break;
                }
                if kind == NLMSG_ERROR && mlen >= 20 {
                    let code = i32::from_ne_bytes(le4(&buf[off + 16..]));
                    wanted.retain(|s| *s != seq);
                    if code != 0 && first_error.is_none() {
                        first_error = Some(io::Error::from_raw_os_error(-code));
                        // An aborted batch acks nothing after the failing message.
                        if !all_acked && seq >= first_seq {
                            wanted.retain(|s| *s < seq);
                        }
                    }
                } else if kind == NLMSG_DONE {
                    wanted.retain(|s| *s != seq);
                }
                off += (mlen + 3) & !3;
            }
            if first_error.is_some() {
                // Whatever else the kernel says about an aborted batch is not needed.
                break;
            }
        }
        self.drain();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends a dump request and counts, over every answer, the entries of the nested list
    /// attribute `list` (after a 4-byte family header).
    pub(crate) fn dump_count(&mut self, msg: Msg, list: u16) -> io::Result<usize> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        sendto(
            self.fd.as_raw_fd(),
            &msg.finish(seq),
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        let mut count = 0;
        let mut buf = vec![0u8; 65536];
        loop {
            let len = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            let mut off = 0;
            while off + 16 <= len {
                let mlen = u32::from_ne_bytes(le4(&buf[off..])) as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if mlen < 16 || off + mlen > len {
                    return Ok(count);
                }
                match kind {
                    NLMSG_DONE => return Ok(count),
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes(le4(&buf[off + 16..]));
                        if code != 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        return Ok(count);
                    }
                    _ => count += count_list(&buf[off + 20..off + mlen], list),
                }
                off += (mlen + 3) & !3;
            }
        }
    }

    /// Waits for the next datagram (messages the kernel sends unasked, such as NFLOG's).
    pub(crate) fn recv_raw(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(recv(self.fd.as_raw_fd(), buf, MsgFlags::empty())?)
    }

    /// Discards answers still queued (after an error), so the next request starts clean.
    fn drain(&self) {
        let mut buf = [0u8; 4096];
        while recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT).is_ok() {}
    }
}

/// Entries of the nested attribute `list` among the attributes in `attrs`.
fn count_list(attrs: &[u8], list: u16) -> usize {
    let mut off = 0;
    while off + 4 <= attrs.len() {
        let alen = u16::from_ne_bytes([attrs[off], attrs[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[off + 2], attrs[off + 3]]) & 0x3fff;
        if alen < 4 || off + alen > attrs.len() {
            break;
        }
        if kind == list {
            let inner = &attrs[off + 4..off + alen];
            let mut n = 0;
            let mut i = 0;
            while i + 4 <= inner.len() {
                let l = u16::from_ne_bytes([inner[i], inner[i + 1]]) as usize;
                if l < 4 {
                    break;
                }
                n += 1;
                i += (l + 3) & !3;
            }
            return n;
        }
        off += (alen + 3) & !3;
    }
    0
}

fn le4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}
