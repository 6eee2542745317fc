//! Real network namespaces: a stand-in sandbox attached to the sandbox network, reaching a
//! test "internet" namespace, refused where the policy or the always-denied ranges say.

mod common;

use bulkhead_net::{Cidr, NetConfig, NetError, Network, Policy};
use common::{Internet, Ns};

/// `curl`'s exit code for a connection to `url` from inside `ns` (0 = answered, 7 = refused,
/// 28 = timed out).
fn curl(ns: &Ns, url: &str) -> i32 {
    ns.sh(&format!("curl -s -o /dev/null --max-time 5 {url}"))
        .status
        .code()
        .unwrap_or(-1)
}

fn network() -> Network {
    Network::new(&NetConfig::new(5353)).expect("sandbox network (needs root and nf_tables)")
}

/// SECURITY.md "egress by default", "deny_out by CIDR", "always denied", "host addresses",
/// "update replaces the policy": a default sandbox reaches the test host; a CIDR in
/// `deny_out` is refused at once (a reset, not a hang); the metadata range and the host's own
/// address are refused whatever the policy says.
#[test]
fn default_reaches_and_denied_is_refused() {
    let net = network();
    let internet = Internet::new();
    let sb = Ns::new();
    let a = net
        .attach("sba", sb.pid(), Policy::default())
        .expect("attach");
    let inside =
        String::from_utf8_lossy(&sb.sh("ip -4 -o addr show eth0; ip route").stdout).to_string();
    assert!(inside.contains(&a.address.to_string()), "{inside}");
    assert!(
        inside.contains(&format!("default via {}", a.gateway)),
        "{inside}"
    );
    let url = format!("http://{}:{}/", internet.addr, internet.port);
    assert_eq!(curl(&sb, &url), 0, "default policy reaches the test host");

    let denied = Policy::parse(true, &[], std::slice::from_ref(&internet.net)).unwrap();
    net.set_policy("sba", denied).expect("update");
    assert_eq!(curl(&sb, &url), 7, "deny_out refuses with a reset");

    let opened = Policy::parse(true, &["169.254.169.254".into()], &[]).unwrap();
    net.set_policy("sba", opened).expect("update");
    assert_eq!(curl(&sb, &url), 0, "replacing the policy reopens");
    assert_eq!(
        curl(&sb, "http://169.254.169.254/"),
        7,
        "metadata refused even when allowed"
    );
    assert_eq!(
        curl(&sb, &format!("http://{}:22/", a.gateway)),
        7,
        "host end refused"
    );

    let off = Policy::parse(false, &[], &[]).unwrap();
    net.set_policy("sba", off).expect("update");
    assert_eq!(curl(&sb, &url), 7, "internet off refuses");
    net.detach("sba");
    net.shutdown();
}

/// SECURITY.md "teardown": 100 attach/detach cycles leave no link, no set element and no
/// claimed address.
#[test]
fn hundred_cycles_leave_nothing() {
    let net = network();
    for i in 0..100 {
        let sb = Ns::new();
        let id = format!("cycle{i}");
        let policy = Policy::parse(
            i % 2 == 0,
            &["198.51.100.0/24".into()],
            &["203.0.113.0/24".into()],
        )
        .unwrap();
        net.attach(&id, sb.pid(), policy).expect("attach");
        assert!(net.firewall_elements().unwrap() > 0);
        net.detach(&id);
    }
    assert_eq!(net.links(), Vec::<String>::new());
    assert_eq!(net.firewall_elements().unwrap(), 0);
    assert_eq!(net.attached(), 0);
    net.shutdown();
}

/// SECURITY.md "pool": an exhausted pool refuses with `PoolExhausted` and sets nothing up;
/// a sandbox that ended without a detach gives its address back.
#[test]
fn exhausted_pool_refuses_and_dead_sandboxes_give_back() {
    let mut config = NetConfig::new(5353);
    config.pool = Some("10.215.255.252/30".parse::<Cidr>().unwrap());
    let net = Network::new(&config).expect("network");
    let (a, mut b, c) = (Ns::new(), Ns::new(), Ns::new());
    net.attach("a", a.pid(), Policy::default())
        .expect("attach a");
    net.attach("b", b.pid(), Policy::default())
        .expect("attach b");
    let err = net.attach("c", c.pid(), Policy::default()).unwrap_err();
    assert!(matches!(err, NetError::PoolExhausted(_)), "{err}");
    assert_eq!(net.links().len(), 2);
    assert_eq!(
        c.sh("ip -o link show eth0").status.code(),
        Some(1),
        "nothing set up in c"
    );
    drop(std::mem::replace(&mut b, Ns::new()));
    net.attach("c", c.pid(), Policy::default())
        .expect("attach c after b ended");
    assert!(net.get("b").is_none());
    net.detach("a");
    net.detach("c");
    assert_eq!(net.links(), Vec::<String>::new());
    net.shutdown();
}

/// SECURITY.md "pool": two networks on one host never share an automatic pool.
#[test]
fn automatic_pools_never_overlap() {
    let (a, b) = (network(), network());
    assert!(
        !a.pool().overlaps(&b.pool()),
        "{} and {}",
        a.pool(),
        b.pool()
    );
    assert_eq!(a.pool().prefix(), 20);
    a.shutdown();
    b.shutdown();
}
