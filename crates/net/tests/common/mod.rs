//! Namespaces the tests make: stand-in sandboxes and a test "internet".

#![allow(dead_code)]

use std::fs::File;
use std::process::{Child, Command, Output, Stdio};

use nix::fcntl::{Flock, FlockArg};

/// A process alone in a fresh network namespace.
pub struct Ns {
    child: Child,
}

impl Ns {
    pub fn new() -> Self {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "3600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) must be installed");
        let ns = Self { child };
        let ours = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        for _ in 0..1000 {
            if std::fs::read_link(format!("/proc/{}/ns/net", ns.pid())).is_ok_and(|l| l != ours) {
                return ns;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        panic!("unshare did not enter a new network namespace");
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Runs `bash -c script` inside the namespace.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "-n", "bash", "-c", script])
            .output()
            .expect("nsenter")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect(args[0]);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test "internet": a namespace reached from the host over a veth, holding an address of
/// 198.51.100.0/24 (a /30 per test, claimed through a lock file) with an HTTP listener.
pub struct Internet {
    pub ns: Ns,
    /// The test host's address and its /30.
    pub addr: String,
    pub net: String,
    pub port: u16,
    link: String,
    server: Child,
    _lock: Flock<File>,
}

impl Internet {
    pub fn new() -> Self {
        std::fs::create_dir_all("/run/bulkhead-testnet").expect("lock dir");
        let (n, lock) = (0..64)
            .find_map(|n| {
                let f = File::create(format!("/run/bulkhead-testnet/{n}.lock")).ok()?;
                Flock::lock(f, FlockArg::LockExclusiveNonblock)
                    .ok()
                    .map(|l| (n, l))
            })
            .expect("a free test network slot");
        let ns = Ns::new();
        let link = format!("bhtest{n}");
        let (host, peer) = (
            format!("198.51.100.{}", 4 * n + 1),
            format!("198.51.100.{}", 4 * n + 2),
        );
        let _ = Command::new("ip").args(["link", "del", &link]).output();
        let pid = ns.pid().to_string();
        run(&[
            "ip", "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &pid,
        ]);
        run(&["ip", "addr", "add", &format!("{host}/30"), "dev", &link]);
        run(&["ip", "link", "set", &link, "up"]);
        let out = ns.sh(&format!(
            "ip addr add {peer}/30 dev eth0 && ip link set eth0 up && ip link set lo up && ip route add default via {host}"
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = 8000 + n as u16;
        let server = Command::new("nsenter")
            .args([
                "-t",
                &pid,
                "-n",
                "python3",
                "-m",
                "http.server",
                "--bind",
                &peer,
                &port.to_string(),
            ])
            .current_dir("/tmp")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !ns
            .sh(&format!("exec 3<>/dev/tcp/{peer}/{port}"))
            .status
            .success()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the test host's HTTP listener did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self {
            ns,
            addr: peer,
            net: format!("198.51.100.{}/30", 4 * n),
            port,
            link,
            server,
            _lock: lock,
        }
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}
