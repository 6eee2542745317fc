//! nf_tables messages: tables, chains, rules (as expression lists), sets and set elements,
//! sent as one atomic batch.
//!
//! The encoding follows the kernel's `include/uapi/linux/netfilter/nf_tables.h`: integers in
//! attributes are big-endian, register data is in host order unless it holds packet bytes.

use crate::netlink::{Msg, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;

/// `NFPROTO_INET`: one table for IPv4 and IPv6.
pub(crate) const FAMILY_INET: u8 = 1;

/// Netfilter hooks.
pub(crate) const HOOK_PREROUTING: u32 = 0;
pub(crate) const HOOK_INPUT: u32 = 1;
pub(crate) const HOOK_FORWARD: u32 = 2;
pub(crate) const HOOK_POSTROUTING: u32 = 4;

/// Registers: the verdict register and the 32-bit data registers.
pub(crate) const REG_VERDICT: u32 = 0;
pub(crate) const REG32_0: u32 = 8;
pub(crate) const REG32_1: u32 = 9;

/// Meta keys.
pub(crate) const META_IIFNAME: u32 = 6;
pub(crate) const META_OIFNAME: u32 = 7;
pub(crate) const META_NFPROTO: u32 = 15;
pub(crate) const META_L4PROTO: u32 = 16;

/// Payload bases.
pub(crate) const BASE_NETWORK: u32 = 1;
pub(crate) const BASE_TRANSPORT: u32 = 2;

/// Comparison operators.
pub(crate) const CMP_EQ: u32 = 0;
pub(crate) const CMP_NEQ: u32 = 1;

/// Verdicts.
pub(crate) const NF_DROP: i32 = 0;
pub(crate) const NF_ACCEPT: i32 = 1;
pub(crate) const NFT_GOTO: i32 = -4;

/// Set flags.
const SET_INTERVAL: u32 = 0x4;
const SET_CONCAT: u32 = 0x80;

/// `struct nfgenmsg` for `family` (res_id = the nf_tables subsystem, big-endian).
fn nfgen(family: u8) -> [u8; 4] {
    let id = NFNL_SUBSYS_NFTABLES.to_be_bytes();
    [family, 0, id[0], id[1]]
}

fn msg(kind: u16, family: u8, flags: u16) -> Msg {
    let mut m = Msg::new(
        (NFNL_SUBSYS_NFTABLES << 8) | kind,
        NLM_F_REQUEST | NLM_F_ACK | flags,
    );
    m.raw(&nfgen(family));
    m
}

/// Wraps `msgs` in batch begin/end markers, ready for `Socket::transact(_, false)`.
pub(crate) fn batch(msgs: Vec<Msg>) -> Vec<Msg> {
    let mut out = Vec::with_capacity(msgs.len() + 2);
    let mut begin = Msg::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST);
    begin.raw(&nfgen(0));
    out.push(begin);
    out.extend(msgs);
    let mut end = Msg::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST);
    end.raw(&nfgen(0));
    out.push(end);
    out
}

/// Creates table `name` when missing (no error when it exists).
pub(crate) fn new_table(family: u8, name: &str) -> Msg {
    let mut m = msg(NFT_MSG_NEWTABLE, family, NLM_F_CREATE);
    m.str(1, name).u32_be(2, 0);
    m
}

/// Deletes table `name` with everything in it.
pub(crate) fn del_table(family: u8, name: &str) -> Msg {
    let mut m = msg(NFT_MSG_DELTABLE, family, 0);
    m.str(1, name);
    m
}

/// A chain; a base chain when `hook` is `Some((hook, priority, type))`, policy accept.
pub(crate) fn new_chain(
    family: u8,
    table: &str,
    name: &str,
    hook: Option<(u32, i32, &str)>,
) -> Msg {
    let mut m = msg(NFT_MSG_NEWCHAIN, family, NLM_F_CREATE);
    m.str(1, table).str(3, name);
    if let Some((hooknum, prio, kind)) = hook {
        m.begin(4).u32_be(1, hooknum).u32_be(2, prio as u32).end();
        m.u32_be(5, NF_ACCEPT as u32).str(7, kind);
    }
    m
}

/// A set of `fields` concatenated 4-byte fields with interval semantics (ranges in the last
/// field), the kernel's `pipapo` backend.
pub(crate) fn new_interval_set(family: u8, table: &str, name: &str, id: u32, fields: u32) -> Msg {
    let mut m = msg(NFT_MSG_NEWSET, family, NLM_F_CREATE);
    // Key type: ipv4_addr (7) for each field, concatenated in 6-bit slots (as nft does).
    let key_type = (0..fields).fold(0u32, |t, _| (t << 6) | 7);
    m.str(1, table)
        .str(2, name)
        .u32_be(3, SET_INTERVAL | SET_CONCAT)
        .u32_be(4, key_type)
        .u32_be(5, 4 * fields)
        .u32_be(10, id);
    m.begin(9).begin(2);
    for _ in 0..fields {
        m.begin(1).u32_be(1, 4).end();
    }
    m.end().end();
    m
}

/// A plain (hash) set of `key_len`-byte keys.
pub(crate) fn new_set(family: u8, table: &str, name: &str, id: u32, key_len: u32) -> Msg {
    let mut m = msg(NFT_MSG_NEWSET, family, NLM_F_CREATE);
    m.str(1, table)
        .str(2, name)
        .u32_be(3, 0)
        .u32_be(4, 7)
        .u32_be(5, key_len)
        .u32_be(10, id);
    m
}

/// Adds (`add`) or removes elements to set `set`: a key, and for interval sets the
/// inclusive end of the range (same length).
pub(crate) fn set_elements(
    family: u8,
    table: &str,
    set: &str,
    add: bool,
    elems: &[(Vec<u8>, Option<Vec<u8>>)],
) -> Msg {
    let (kind, flags) = if add {
        (NFT_MSG_NEWSETELEM, NLM_F_CREATE)
    } else {
        (NFT_MSG_DELSETELEM, 0)
    };
    let mut m = msg(kind, family, flags);
    m.str(1, table).str(2, set);
    m.begin(3);
    for (start, end) in elems {
        m.begin(1);
        m.begin(1).attr(1, start).end();
        if let Some(end) = end {
            m.begin(10).attr(1, end).end();
        }
        m.end();
    }
    m.end();
    m
}

/// A dump request for the elements of `set`.
pub(crate) fn get_set_elements(family: u8, table: &str, set: &str) -> Msg {
    let mut m = Msg::new(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
        NLM_F_REQUEST | NLM_F_DUMP,
    );
    m.raw(&nfgen(family));
    m.str(1, table).str(2, set);
    m
}

/// A rule appended to `chain`; add expressions, then [`Rule::finish`].
pub(crate) struct Rule {
    m: Msg,
}

impl Rule {
    pub(crate) fn new(family: u8, table: &str, chain: &str) -> Self {
        let mut m = msg(NFT_MSG_NEWRULE, family, NLM_F_CREATE | NLM_F_APPEND);
        m.str(1, table).str(2, chain);
        m.begin(4);
        Self { m }
    }

    fn expr(mut self, name: &str, body: impl FnOnce(&mut Msg)) -> Self {
        self.m.begin(1).str(1, name).begin(2);
        body(&mut self.m);
        self.m.end().end();
        self
    }

    /// `meta <key>` into `dreg`.
    pub(crate) fn meta(self, key: u32, dreg: u32) -> Self {
        self.expr("meta", |m| {
            m.u32_be(1, dreg).u32_be(2, key);
        })
    }

    /// `len` bytes of packet at `base + offset` into `dreg`.
    pub(crate) fn payload(self, base: u32, offset: u32, len: u32, dreg: u32) -> Self {
        self.expr("payload", |m| {
            m.u32_be(1, dreg)
                .u32_be(2, base)
                .u32_be(3, offset)
                .u32_be(4, len);
        })
    }

    /// `reg &= mask` (xor 0).
    pub(crate) fn and(self, reg: u32, mask: &[u8]) -> Self {
        let zero = vec![0u8; mask.len()];
        self.expr("bitwise", |m| {
            m.u32_be(1, reg).u32_be(2, reg).u32_be(3, mask.len() as u32);
            m.begin(4).attr(1, mask).end();
            m.begin(5).attr(1, &zero).end();
        })
    }

    /// Continues only when `reg <op> data`.
    pub(crate) fn cmp(self, reg: u32, op: u32, data: &[u8]) -> Self {
        self.expr("cmp", |m| {
            m.u32_be(1, reg).u32_be(2, op);
            m.begin(3).attr(1, data).end();
        })
    }

    /// Continues only when the key starting at `reg` is in `set`.
    pub(crate) fn lookup(self, set: &str, set_id: u32, reg: u32) -> Self {
        self.expr("lookup", |m| {
            m.str(1, set).u32_be(2, reg).u32_be(4, set_id);
        })
    }

    /// `ct state` into `reg`.
    pub(crate) fn ct_state(self, reg: u32) -> Self {
        self.expr("ct", |m| {
            m.u32_be(1, reg).u32_be(2, 0);
        })
    }

    /// `value` into `reg`.
    pub(crate) fn immediate(self, reg: u32, value: &[u8]) -> Self {
        self.expr("immediate", |m| {
            m.u32_be(1, reg);
            m.begin(2).attr(1, value).end();
        })
    }

    /// Ends the rule with a verdict (`NF_ACCEPT`, `NF_DROP`, or `NFT_GOTO` to `chain`).
    pub(crate) fn verdict(self, code: i32, chain: Option<&str>) -> Self {
        self.expr("immediate", |m| {
            m.u32_be(1, REG_VERDICT);
            m.begin(2).begin(2).u32_be(1, code as u32);
            if let Some(c) = chain {
                m.str(2, c);
            }
            m.end().end();
        })
    }

    /// `reject with tcp reset`.
    pub(crate) fn reject_tcp_reset(self) -> Self {
        self.expr("reject", |m| {
            m.u32_be(1, 1).attr(2, &[0]);
        })
    }

    /// `reject with icmpx admin-prohibited`.
    pub(crate) fn reject_admin_prohibited(self) -> Self {
        self.expr("reject", |m| {
            m.u32_be(1, 2).attr(2, &[3]);
        })
    }

    /// `limit rate <rate>/second burst <burst> packets`: continues only within the rate.
    pub(crate) fn limit(self, rate: u64, burst: u32) -> Self {
        self.expr("limit", |m| {
            m.attr(1, &rate.to_be_bytes())
                .attr(2, &1u64.to_be_bytes())
                .u32_be(3, burst)
                .u32_be(4, 0);
        })
    }

    /// `log group <group> prefix <prefix> snaplen <snaplen> queue-threshold 1`: a copy of the
    /// packet to NFLOG group `group`, sent at once.
    pub(crate) fn log(self, group: u16, prefix: &str, snaplen: u32) -> Self {
        self.expr("log", |m| {
            m.attr(1, &group.to_be_bytes())
                .str(2, prefix)
                .u32_be(3, snaplen)
                .attr(4, &1u16.to_be_bytes());
        })
    }

    /// `masquerade`.
    pub(crate) fn masquerade(self) -> Self {
        self.expr("masq", |_| {})
    }

    /// `redirect to :port`, the port (big-endian) loaded in `reg`.
    pub(crate) fn redirect(self, reg: u32) -> Self {
        self.expr("redir", |m| {
            m.u32_be(1, reg).u32_be(2, reg);
        })
    }

    pub(crate) fn finish(mut self) -> Msg {
        self.m.end();
        self.m
    }
}
