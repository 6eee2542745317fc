//! Network setup cost per sandbox: `Network::attach` (cold: veth, addresses, route, set
//! elements), `set_policy` (what a pool hit with a non-default policy adds), and N attaches
//! at once. Needs root. Stand-in sandboxes are `unshare --net sleep` processes.
//!
//! cargo run --release -p bulkhead-net --example net_setup -- [n=200] [concurrent=40]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_net::{NetConfig, Network, Policy};

fn ns() -> Child {
    let child = Command::new("unshare")
        .args(["--net", "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare");
    let ours = std::fs::read_link("/proc/self/ns/net").expect("netns");
    while std::fs::read_link(format!("/proc/{}/ns/net", child.id())).is_ok_and(|l| l == ours)
        || std::fs::read_link(format!("/proc/{}/ns/net", child.id())).is_err()
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    child
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(200);
    let conc = args.get(1).copied().unwrap_or(40);
    let net = Network::new(&NetConfig::new(5353)).expect("network");
    let policy = Policy::parse(true, &[], &["198.51.100.0/24".into()]).expect("policy");
    let (mut cold, mut update, mut detach) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let mut p = ns();
        let id = format!("b{i}");
        let t = Instant::now();
        net.attach(&id, p.id() as i32, Policy::default())
            .expect("attach");
        cold.push(t.elapsed());
        let t = Instant::now();
        net.set_policy(&id, policy.clone()).expect("policy");
        update.push(t.elapsed());
        let t = Instant::now();
        net.detach(&id);
        detach.push(t.elapsed());
        let _ = p.kill();
        let _ = p.wait();
    }
    let mut procs: Vec<Child> = (0..conc).map(|_| ns()).collect();
    let t = Instant::now();
    std::thread::scope(|s| {
        for (i, p) in procs.iter().enumerate() {
            let net = &net;
            let pid = p.id() as i32;
            s.spawn(move || {
                net.attach(&format!("c{i}"), pid, Policy::default())
                    .expect("attach")
            });
        }
    });
    let wall = t.elapsed();
    for i in 0..conc {
        net.detach(&format!("c{i}"));
    }
    for p in &mut procs {
        let _ = p.kill();
        let _ = p.wait();
    }
    net.shutdown();
    println!("| step | n | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("attach (cold)", &mut cold),
        ("set_policy (pool hit, own policy)", &mut update),
        ("detach", &mut detach),
    ] {
        println!(
            "| {name} | {n} | {:.2} | {:.2} |",
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    println!(
        "| {conc} attaches at once, wall | 1 | {:.1} | |",
        wall.as_secs_f64() * 1000.0
    );
}
