//! `bulkhead doctor`: whether this host can run `bulkhead serve`, one line per check, each
//! failure with the command that fixes it. Reads only; changes nothing.
//!
//! | check | passes when | fix printed |
//! |---|---|---|
//! | root | the effective uid is 0 (the server creates namespaces and cgroups) | run as root |
//! | user namespaces | `user.max_user_namespaces` > 0 | `sysctl -w user.max_user_namespaces=15000` |
//! | overlayfs | `overlay` in `/proc/filesystems` | `modprobe overlay` |
//! | idmapped mounts | kernel ≥ 5.12 and the data dir on ext4, xfs, btrfs or tmpfs (≥ 6.3) | a newer kernel, or `--data-dir` on ext4/xfs |
//! | cgroups | a v1 or v2 layout with memory, pids, cpu and a freezer | mount the controllers (`cgroup_enable=memory`) |
//! | seccomp | `Seccomp:` in `/proc/self/status` (filters supported) | a kernel with `CONFIG_SECCOMP_FILTER` |
//! | FUSE | `/dev/fuse` and `fuse` in `/proc/filesystems` (for the bucket mount) | `modprobe fuse` |
//! | nftables | nf_tables answers a table dump over netlink (sandbox egress) | `modprobe nf_tables`, or `serve --sandbox-network false` |
//! | free disk | at least 2 GiB free under the data dir | free space, or another `--data-dir` |
//! | data dir | every directory above it searchable by others (sandboxes reach their root as unprivileged uids) | `chmod o+x DIR` |
//! | storage endpoint (when given) | an HTTP answer of any status from `--storage-endpoint` | check the URL, that the S3 server runs, the firewall |
//! | registry (each given) | `GET /v2/` answers 200 or 401 (the OCI distribution API) | check the name, the port, `http://` for a plain-HTTP registry |
//!
//! Tests: `crates/bulkhead/tests/doctor.rs`.

use std::path::{Path, PathBuf};

use clap::Args as ClapArgs;

/// `bulkhead doctor` options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The data directory `bulkhead serve` will use (checked for space and permissions; it
    /// need not exist yet).
    #[arg(long, env = "BULKHEAD_DATA_DIR", default_value = "/var/lib/bulkhead")]
    data_dir: PathBuf,
    /// One JSON object per check instead of lines.
    #[arg(long)]
    json: bool,
    /// The S3 endpoint `serve` will mount (checked for an answer).
    #[arg(long, env = "BULKHEAD_STORAGE_ENDPOINT", value_name = "URL")]
    storage_endpoint: Option<String>,
    /// A registry templates pull FROM (`host[:port]`, or a URL with `http://` for a
    /// plain-HTTP one); repeatable.
    #[arg(long = "registry", value_name = "HOST")]
    registries: Vec<String>,
}

/// One check's outcome.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    fix: &'static str,
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>, fix: &'static str) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
        fix,
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn has_filesystem(name: &str) -> bool {
    read("/proc/filesystems")
        .lines()
        .any(|l| l.split_whitespace().last() == Some(name))
}

/// `(major, minor)` of the running kernel.
fn kernel_version() -> Option<(u32, u32)> {
    let release = read("/proc/sys/kernel/osrelease");
    let mut parts = release.trim().split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Asks the kernel's nf_tables for a dump of its tables over netlink: what the sandbox
/// network needs first (a built-in nf_tables has no module to look for).
fn nf_tables_answers() -> Result<(), String> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
        socket,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|e| format!("netlink socket: {e}"))?;
    // nlmsghdr (len, type = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE, flags = REQUEST |
    // DUMP, seq, pid) and nfgenmsg (family AF_UNSPEC, version 0, res_id 0).
    let mut msg = Vec::with_capacity(20);
    msg.extend_from_slice(&20u32.to_ne_bytes());
    msg.extend_from_slice(&((10u16 << 8) | 1).to_ne_bytes());
    msg.extend_from_slice(&(0x1u16 | 0x300).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0]);
    sendto(
        fd.as_raw_fd(),
        &msg,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|e| format!("netlink send: {e}"))?;
    let mut buf = vec![0u8; 64 << 10];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
        .map_err(|e| format!("netlink receive: {e}"))?;
    if n < 16 {
        return Err("a short netlink answer".into());
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    // NLMSG_ERROR carries the errno (negative) after the header; 0 is an acknowledgement.
    if kind == 2 && n >= 20 {
        let errno = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if errno != 0 {
            return Err(nix::errno::Errno::from_raw(-errno).desc().to_string());
        }
    }
    Ok(())
}

/// The nearest existing directory at or above `dir`.
fn existing(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

/// The HTTP status `url` answers with, within 10 s.
fn http_status(url: &str) -> Result<u16, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let res = client.get(url).send().await.map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            msg
        })?;
        Ok(res.status().as_u16())
    })
}

/// The endpoint and registries given, each reachable or not.
fn network_checks(args: &Args) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(url) = &args.storage_endpoint {
        let r = http_status(url);
        out.push(check(
            "storage endpoint",
            r.is_ok(),
            match r {
                Ok(code) => format!("{url} answers (HTTP {code})"),
                Err(e) => format!("{url} does not answer: {e}"),
            },
            "check --storage-endpoint, that the S3 server runs, and the host's firewall",
        ));
    }
    for reg in &args.registries {
        let url = if reg.contains("://") {
            format!("{}/v2/", reg.trim_end_matches('/'))
        } else {
            format!("https://{reg}/v2/")
        };
        let r = http_status(&url);
        out.push(check(
            "registry",
            matches!(r, Ok(200 | 401)),
            match r {
                Ok(code) => format!("{url} answers HTTP {code}"),
                Err(e) => format!("{url} does not answer: {e}"),
            },
            "check the registry's name and port (http://HOST for a plain-HTTP registry)",
        ));
    }
    out
}

fn checks(data_dir: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let euid = nix::unistd::geteuid();
    out.push(check(
        "root",
        euid.is_root(),
        format!("effective uid {euid}"),
        "run bulkhead as root (sudo bulkhead serve)",
    ));
    let userns: u64 = read("/proc/sys/user/max_user_namespaces")
        .trim()
        .parse()
        .unwrap_or(0);
    out.push(check(
        "user namespaces",
        userns > 0,
        format!("user.max_user_namespaces = {userns}"),
        "sysctl -w user.max_user_namespaces=15000",
    ));
    out.push(check(
        "overlayfs",
        has_filesystem("overlay"),
        "overlay in /proc/filesystems",
        "modprobe overlay",
    ));
    let here = existing(data_dir);
    let fs = nix::sys::statfs::statfs(&here).map(|s| s.filesystem_type().0 as u64);
    let version = kernel_version().unwrap_or((0, 0));
    let (fs_name, fs_ok) = match fs {
        Ok(0xEF53) => ("ext4", true),
        Ok(0x5846_5342) => ("xfs", true),
        Ok(0x9123_683E) => ("btrfs", true),
        Ok(0x0102_1994) => ("tmpfs", version >= (6, 3)),
        Ok(_) => ("another filesystem", false),
        Err(_) => ("an unreadable filesystem", false),
    };
    out.push(check(
        "idmapped mounts",
        version >= (5, 12) && fs_ok,
        format!(
            "kernel {}.{}, {} on {fs_name}",
            version.0,
            version.1,
            here.display()
        ),
        "use a kernel of 5.12 or later and put --data-dir on ext4, xfs or btrfs",
    ));
    let cgroups = match bulkhead_runtime::cgroup::detect_layout() {
        Ok(bulkhead_runtime::cgroup::CgroupLayout::V2 { root }) => {
            let c = read(&root.join("cgroup.controllers").to_string_lossy());
            let ok = ["memory", "pids", "cpu"]
                .iter()
                .all(|k| c.split_whitespace().any(|x| x == *k));
            (ok, format!("v2 at {} ({})", root.display(), c.trim()))
        }
        Ok(bulkhead_runtime::cgroup::CgroupLayout::V1 {
            freezer, unified, ..
        }) => (
            freezer.is_some() || unified.is_some(),
            format!(
                "v1 with memory, pids, cpu{}",
                if freezer.is_some() { ", freezer" } else { "" }
            ),
        ),
        Err(e) => (false, e.to_string()),
    };
    out.push(check(
        "cgroups",
        cgroups.0,
        cgroups.1,
        "mount the memory, pids, cpu and freezer controllers (boot with cgroup_enable=memory, or use cgroup v2)",
    ));
    out.push(check(
        "seccomp",
        read("/proc/self/status").contains("Seccomp:"),
        "seccomp filters supported",
        "use a kernel built with CONFIG_SECCOMP_FILTER",
    ));
    out.push(check(
        "FUSE",
        Path::new("/dev/fuse").exists() && has_filesystem("fuse"),
        "/dev/fuse and fuse in /proc/filesystems (the bucket mount)",
        "modprobe fuse",
    ));
    let nft = nf_tables_answers();
    out.push(check(
        "nftables",
        nft.is_ok(),
        match nft {
            Ok(()) => "nf_tables answers a table dump (sandbox egress)".to_string(),
            Err(e) => format!("nf_tables does not answer: {e}"),
        },
        "modprobe nf_tables, or run serve --sandbox-network false (loopback-only sandboxes)",
    ));
    let free = nix::sys::statvfs::statvfs(&here)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
        .unwrap_or(0);
    out.push(check(
        "free disk",
        free >= 2 << 30,
        format!("{} MiB free under {}", free >> 20, here.display()),
        "free space, or give serve another --data-dir",
    ));
    let closed: Vec<String> = {
        use std::os::unix::fs::PermissionsExt;
        here.ancestors()
            .filter(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
            .map(|a| a.display().to_string())
            .collect()
    };
    out.push(check(
        "data dir",
        closed.is_empty(),
        if closed.is_empty() {
            format!("{} and every directory above it searchable", here.display())
        } else {
            format!("not searchable by others: {}", closed.join(", "))
        },
        "chmod o+x each directory named (or choose another --data-dir)",
    ));
    out
}

/// Runs the checks; exit status 1 when any fails.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let mut all = checks(&args.data_dir);
    all.extend(network_checks(&args));
    for c in &all {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"check": c.name, "ok": c.ok, "detail": c.detail,
                    "fix": if c.ok { None } else { Some(c.fix) }})
            );
        } else if c.ok {
            println!("✓ {}: {}", c.name, c.detail);
        } else {
            println!("✗ {}: {} — fix: {}", c.name, c.detail, c.fix);
        }
    }
    let failed = all.iter().filter(|c| !c.ok).count();
    if !args.json {
        if failed == 0 {
            println!("this host can run bulkhead serve");
        } else {
            println!("{failed} check(s) failed");
        }
    }
    Ok(u8::from(failed > 0))
}
