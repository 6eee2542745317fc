//! `bulkhead-bench-runtime`: create → exec `true` → exit latency for a warm-pool hit, a cold
//! start and `runc run` of the same root filesystem (the peer, in the same run), then the
//! memory of idle sandboxes and how many can be held at once. Prints a table and writes JSON.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bulkhead_runtime::{
    ExecSpec, Limits, Pool, PoolKey, Runtime, RuntimeConfig, Sandbox, SandboxSpec, spec,
};
use clap::Parser;

/// Benchmark options.
#[derive(Parser)]
struct Args {
    /// The bulkhead binary (launcher personality).
    #[arg(long, default_value = "target/release/bulkhead")]
    bulkhead: PathBuf,
    /// Root filesystem to start.
    #[arg(long, default_value = "/var/cache/bulkhead/rootfs/busybox")]
    rootfs: PathBuf,
    /// Iterations per scenario.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Idle sandboxes to hold at once.
    #[arg(long, default_value_t = 500)]
    idle: usize,
    /// Skip the runc peer.
    #[arg(long)]
    no_runc: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench/results/runtime.json")]
    json: PathBuf,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Series {
    name: &'static str,
    ms: Vec<f64>,
}

impl Series {
    fn summary(&mut self) -> serde_json::Value {
        self.ms.sort_by(|a, b| a.total_cmp(b));
        serde_json::json!({"n": self.ms.len(), "p50_ms": percentile(&self.ms, 0.5), "p99_ms": percentile(&self.ms, 0.99), "min_ms": percentile(&self.ms, 0.0)})
    }
}

fn exec_true(sb: &Sandbox) -> anyhow::Result<()> {
    let p = sb.exec(ExecSpec::command(["true"]))?;
    let st = p.wait()?;
    if st.code != Some(0) {
        bail!("true exited with {st:?}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let state = PathBuf::from("/var/tmp/bulkhead-bench");
    let _ = std::fs::remove_dir_all(&state);
    let rootfs = args
        .rootfs
        .canonicalize()
        .context("rootfs (run scripts/build-rootfs.sh)")?;
    let bulkhead = args
        .bulkhead
        .canonicalize()
        .context("bulkhead binary (cargo build --release)")?;
    let runtime = Runtime::new(RuntimeConfig::new(&state, bulkhead))?;
    let key = PoolKey {
        layers: vec![rootfs.clone()],
        limits: Limits::default(),
        binds: vec![],
    };
    let reaper = {
        let (tx, rx) = std::sync::mpsc::channel::<Sandbox>();
        std::thread::spawn(move || {
            for sb in rx {
                let _ = sb.destroy();
            }
        });
        tx
    };

    // Cold: launch + exec + exit; destroy happens off the measured path (as a server does).
    let mut cold = Series {
        name: "cold start (create+exec true)",
        ms: vec![],
    };
    for _ in 0..args.iterations {
        let t = Instant::now();
        let sb = runtime.create(key.spec())?;
        exec_true(&sb)?;
        cold.ms.push(t.elapsed().as_secs_f64() * 1e3);
        reaper.send(sb)?;
    }
    // Pool hit: the pool refills in the background; wait until it is full before each sample
    // so that every sample is a hit.
    let pool = Pool::new(runtime.clone(), key.clone(), 4);
    let mut hit = Series {
        name: "pool hit (take+exec true)",
        ms: vec![],
    };
    for _ in 0..args.iterations {
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.ready() < 4 {
            if Instant::now() > deadline {
                bail!("pool did not refill: {:?}", pool.last_error());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let t = Instant::now();
        let sb = pool.take().context("pool empty")?;
        exec_true(&sb)?;
        hit.ms.push(t.elapsed().as_secs_f64() * 1e3);
        reaper.send(sb)?;
    }
    pool.shutdown();
    let mut runc = Series {
        name: "runc run (same rootfs)",
        ms: vec![],
    };
    if !args.no_runc {
        let bundle = state.join("runc-bundle");
        prepare_runc_bundle(&bundle, &rootfs)?;
        for i in 0..args.iterations.min(100) {
            let t = Instant::now();
            let st = Command::new("runc")
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(format!("bench{i}"))
                .status()?;
            runc.ms.push(t.elapsed().as_secs_f64() * 1e3);
            if !st.success() {
                bail!("runc run failed: {st}");
            }
        }
    }
    // Idle sandboxes: memory per sandbox from cgroup accounting and the init's PSS.
    let mut idle = Vec::new();
    let t = Instant::now();
    let mut failures = 0;
    for _ in 0..args.idle {
        match runtime.create(SandboxSpec {
            id: spec::new_id(),
            ..key.spec()
        }) {
            Ok(sb) => idle.push(sb),
            Err(e) => {
                failures += 1;
                eprintln!("idle sandbox failed: {e}");
            }
        }
    }
    let create_all = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let running = idle.iter().filter(|s| s.is_running()).count();
    let cg_mem: u64 = idle.iter().map(|s| s.stats().memory_bytes).sum();
    let pss: u64 = idle.iter().map(|s| pss_kib(s.init_pid())).sum::<u64>() * 1024;
    let n = idle.len().max(1) as f64;
    for sb in idle {
        reaper.send(sb)?;
    }
    drop(reaper);

    let mut rows = vec![cold.summary(), hit.summary()];
    if !args.no_runc {
        rows.push(runc.summary());
    }
    println!(
        "{:<34} {:>6} {:>9} {:>9}",
        "scenario", "n", "p50 ms", "p99 ms"
    );
    for (s, r) in [&cold, &hit, &runc].iter().zip(&rows) {
        println!(
            "{:<34} {:>6} {:>9.2} {:>9.2}",
            s.name,
            r["n"],
            r["p50_ms"].as_f64().unwrap_or(f64::NAN),
            r["p99_ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let ratio = rows
        .get(2)
        .and_then(|r| r["p50_ms"].as_f64())
        .map(|runc| runc / rows[0]["p50_ms"].as_f64().unwrap_or(f64::NAN));
    if let Some(r) = ratio {
        println!("cold start is {r:.1}x faster than runc (p50)");
    }
    println!(
        "idle: {running}/{} running ({failures} failed to start) in {:.1}s; per sandbox: {:.2} MiB cgroup memory, {:.2} MiB init PSS",
        args.idle,
        create_all.as_secs_f64(),
        cg_mem as f64 / n / 1048576.0,
        pss as f64 / n / 1048576.0
    );
    let json = serde_json::json!({
        "cold": rows[0], "pool_hit": rows[1], "runc": rows.get(2),
        "runc_over_cold_p50": ratio,
        "idle": {"requested": args.idle, "running": running, "failed": failures, "seconds_to_create": create_all.as_secs_f64(),
                  "cgroup_mib_per_sandbox": cg_mem as f64 / n / 1048576.0, "init_pss_mib_per_sandbox": pss as f64 / n / 1048576.0},
    });
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_vec_pretty(&json)?)?;
    println!("wrote {}", args.json.display());
    std::thread::sleep(Duration::from_secs(2));
    Ok(())
}

fn pss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn prepare_runc_bundle(bundle: &Path, rootfs: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(bundle)?;
    let _ = std::fs::remove_file(bundle.join("config.json"));
    let st = Command::new("runc")
        .arg("spec")
        .current_dir(bundle)
        .status()
        .context("runc (apt install runc)")?;
    if !st.success() {
        bail!("runc spec failed");
    }
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json"))?)?;
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!(["true"]);
    cfg["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&cfg)?)?;
    Ok(())
}
