//! Refused sandbox connections, counted per sandbox and in total, from both places that
//! refuse them: the egress proxy (domain rules, in user space) and the firewall (by address,
//! in the kernel, reported through NFLOG: `nflog.rs`). Process-wide, like the kernel's
//! tables: sandbox addresses are unique on a host, so one map serves every network.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

static TOTAL: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct Maps {
    /// Sandbox address → id, for refusals the kernel reports by address.
    ids: HashMap<Ipv4Addr, String>,
    /// Refusals per live sandbox.
    counts: HashMap<String, u64>,
}

static MAPS: Mutex<Option<Maps>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Maps) -> R) -> R {
    let mut g = MAPS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(Maps::default))
}

/// Sandbox `id` has address `addr` from now on.
pub(crate) fn register(addr: Ipv4Addr, id: &str) {
    with(|m| {
        m.ids.insert(addr, id.to_string());
    });
}

/// Sandbox `id` (at `addr`) is gone: its address and its count are forgotten.
pub(crate) fn forget(addr: Ipv4Addr, id: &str) {
    with(|m| {
        if m.ids.get(&addr).is_some_and(|i| i == id) {
            m.ids.remove(&addr);
        }
        m.counts.remove(id);
    });
}

/// The sandbox at `addr`, if one is registered.
pub(crate) fn sandbox_at(addr: Ipv4Addr) -> Option<String> {
    with(|m| m.ids.get(&addr).cloned())
}

/// Counts one refusal, of sandbox `id` when known.
pub(crate) fn count(id: Option<&str>) {
    TOTAL.fetch_add(1, Ordering::Relaxed);
    if let Some(id) = id.filter(|i| !i.is_empty()) {
        with(|m| *m.counts.entry(id.to_string()).or_insert(0) += 1);
    }
}

/// Sandbox connections refused since the process started (proxy and firewall).
pub fn refused_connections() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// Refusals of each live sandbox that had any, by sandbox id.
pub fn refused_by_sandbox() -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> =
        with(|m| m.counts.iter().map(|(k, v)| (k.clone(), *v)).collect());
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_sandbox_and_end_with_it() {
        let a = Ipv4Addr::new(10, 250, 0, 2);
        register(a, "sb-refusals-test");
        assert_eq!(sandbox_at(a).as_deref(), Some("sb-refusals-test"));
        let before = refused_connections();
        count(Some("sb-refusals-test"));
        count(Some("sb-refusals-test"));
        count(None);
        assert_eq!(refused_connections(), before + 3);
        assert!(refused_by_sandbox().contains(&("sb-refusals-test".to_string(), 2)));
        forget(a, "sb-refusals-test");
        assert_eq!(sandbox_at(a), None);
        assert!(
            !refused_by_sandbox()
                .iter()
                .any(|(k, _)| k == "sb-refusals-test")
        );
    }
}
