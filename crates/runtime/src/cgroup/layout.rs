//! Which cgroup hierarchies exist on this host.

use std::path::{Path, PathBuf};

use super::CgroupError;

/// Where the controllers Bulkhead uses are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Pure cgroup v2: one hierarchy holds every controller.
    V2 {
        /// Mount point of the unified hierarchy.
        root: PathBuf,
    },
    /// v1 controllers (possibly with a controller-less v2 hierarchy beside them, the "hybrid"
    /// layout, whose `cgroup.kill` and `cgroup.freeze` are still useful).
    V1 {
        /// `memory` controller mount.
        memory: PathBuf,
        /// `pids` controller mount.
        pids: PathBuf,
        /// `cpu` controller mount.
        cpu: PathBuf,
        /// `cpuacct` controller mount, for CPU usage.
        cpuacct: Option<PathBuf>,
        /// `freezer` controller mount, for pause/resume.
        freezer: Option<PathBuf>,
        /// A v2 hierarchy mounted beside (hybrid), used for `cgroup.kill`.
        unified: Option<PathBuf>,
    },
}

/// Reads `/proc/self/mountinfo` and finds the hierarchies.
pub fn detect_layout() -> Result<CgroupLayout, CgroupError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(CgroupError::Mountinfo)?;
    parse_mountinfo(&text)
}

fn parse_mountinfo(text: &str) -> Result<CgroupLayout, CgroupError> {
    let mut v2: Option<PathBuf> = None;
    let mut v1: Vec<(Vec<String>, PathBuf)> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = match left.split(' ').nth(4) {
            Some(p) => PathBuf::from(unescape(p)),
            None => continue,
        };
        let mut fields = right.split(' ');
        let fstype = fields.next().unwrap_or_default();
        let _source = fields.next();
        let super_opts = fields.next().unwrap_or_default();
        match fstype {
            "cgroup2" => {
                v2.get_or_insert(mount_point);
            }
            "cgroup" => {
                let opts = super_opts.split(',').map(str::to_string).collect();
                v1.push((opts, mount_point));
            }
            _ => {}
        }
    }
    let find = |name: &str| -> Option<PathBuf> {
        v1.iter()
            .find(|(opts, _)| opts.iter().any(|o| o == name))
            .map(|(_, p)| p.clone())
    };
    if let Some(memory) = find("memory") {
        return Ok(CgroupLayout::V1 {
            memory,
            pids: find("pids").ok_or(CgroupError::MissingController("pids"))?,
            cpu: find("cpu").ok_or(CgroupError::MissingController("cpu"))?,
            cpuacct: find("cpuacct"),
            freezer: find("freezer"),
            unified: v2,
        });
    }
    match v2 {
        Some(root) if has_controllers(&root) => Ok(CgroupLayout::V2 { root }),
        _ => Err(CgroupError::MissingController("memory")),
    }
}

fn has_controllers(root: &Path) -> bool {
    std::fs::read_to_string(root.join("cgroup.controllers"))
        .map(|c| c.split_whitespace().any(|x| x == "memory"))
        .unwrap_or(false)
}

/// mountinfo escapes spaces and a few other bytes as `\ooo`.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_is_v1_with_unified() {
        let layout = parse_mountinfo(HYBRID).unwrap();
        assert_eq!(
            layout,
            CgroupLayout::V1 {
                memory: "/sys/fs/cgroup/memory".into(),
                pids: "/sys/fs/cgroup/pids".into(),
                cpu: "/sys/fs/cgroup/cpu".into(),
                cpuacct: Some("/sys/fs/cgroup/cpuacct".into()),
                freezer: Some("/sys/fs/cgroup/freezer".into()),
                unified: Some("/sys/fs/cgroup/unified".into()),
            }
        );
    }

    #[test]
    fn missing_controllers_is_an_error() {
        let err = parse_mountinfo("35 31 0:32 / /x rw - cgroup cgroup rw,memory\n").unwrap_err();
        assert!(matches!(err, CgroupError::MissingController("pids")));
        assert!(parse_mountinfo("").is_err());
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
