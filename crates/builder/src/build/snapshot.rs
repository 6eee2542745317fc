//! The `start_cmd` snapshot: after the last step, a sandbox of the image (with the
//! template's storage attached, as its sandboxes will have it) runs `start_cmd` once as
//! root in the image's WORKDIR; readiness is polled every 100 ms: `ready_cmd` exiting 0,
//! or without one, `start_cmd` exiting 0 (setup) or listening on a TCP port (a service).
//! Then the sandbox is frozen and its writable layer, minus mounts, `/proc`, `/sys`, `/dev`,
//! `/run/secrets` and `/tmp`, becomes the snapshot layer. A start_cmd that exited never runs
//! again; one still running is restarted in every sandbox before hand-over
//! ([`SnapshotOutcome::service`]), since a filesystem snapshot holds no process.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_runtime::{ExecSpec, IDS_PER_SANDBOX, SandboxSpec, Stdio};

use super::executor::{Ctx, StageOut};
use super::run_step::{RUNTIME_FILES, RUNTIME_MOUNT_POINTS};
use super::{BuildError, BuildEvent, Builder};
use crate::store::{CaptureOptions, LayerInfo};

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(100);

/// How long `start_cmd` may take to be ready (E2B waits a fixed 20 s with no `ready_cmd`;
/// here the default is the first of exit, listening or this timeout, which fails).
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Ports of Bulkhead's own servers.
const OWN_PORTS: [u16; 2] = [49983, 49999];

pub(super) struct SnapshotOutcome {
    pub layer: Option<LayerInfo>,
    pub service: bool,
}

impl Builder {
    pub(super) fn snapshot(
        &self,
        ctx: &mut Ctx<'_>,
        image: &StageOut,
        start_cmd: &str,
    ) -> Result<SnapshotOutcome, BuildError> {
        let ready_cmd = ctx.req.template.config.ready_cmd.clone();
        (ctx.events)(BuildEvent::Step {
            stage: "snapshot".into(),
            index: 0,
            total: 0,
            text: format!("start_cmd {start_cmd}"),
        });
        let t0 = Instant::now();
        let fail = |reason: String, tail: &Mutex<VecDeque<String>>| BuildError::StartCmd {
            command: start_cmd.to_string(),
            reason,
            last_lines: tail
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
        };
        let dir = ctx.work.join("snapshot");
        std::fs::create_dir_all(&dir).map_err(BuildError::io("creating", &dir))?;
        let mut binds = Vec::new();
        let mut prune: Vec<PathBuf> = RUNTIME_MOUNT_POINTS.iter().map(PathBuf::from).collect();
        if let Some(st) = &ctx.req.storage {
            prune.push(st.target.clone());
            binds.push(st.clone());
            ctx.note(format!(
                "the template's storage is attached at {} by the server for the start_cmd and every sandbox: no mount command is needed in start_cmd",
                st.target.display()
            ));
        }
        let spec = SandboxSpec {
            id: format!("snap{:016x}", rand::random::<u64>()),
            layers: image
                .layers
                .iter()
                .map(|l| self.store.layer_dir(&l.diff_id))
                .collect(),
            limits: ctx.req.limits.clone(),
            binds,
            writable_dir: Some(dir.clone()),
        };
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let sb = self.runtime.create(spec).map_err(|e| BuildError::Sandbox {
            at: "start_cmd".into(),
            message: e.to_string(),
        })?;
        let root = sb.root_host_id();
        let env: Vec<(String, String)> = image
            .config
            .env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let outcome = (|| -> Result<bool, BuildError> {
            if let Some(net) = &self.network {
                net.attach(&sb).map_err(|m| fail(m, &tail))?;
            }
            let spec = ExecSpec {
                argv: vec!["/bin/sh".into(), "-c".into(), start_cmd.to_string()],
                env: env.clone(),
                cwd: image.config.workdir.clone(),
                user: None,
                stdio: Stdio::Pipes { stdin: false },
                detach: true,
            };
            let mut p = sb.exec(spec).map_err(|e| fail(e.to_string(), &tail))?;
            let redactor = Arc::new(super::Redactor::new(
                ctx.req.secrets.values().map(|s| s.expose()),
            ));
            for f in [p.stdout.take(), p.stderr.take()].into_iter().flatten() {
                forward(f, ctx.events.clone(), redactor.clone(), tail.clone());
            }
            // The exit status arrives on the process's connection; wait for it on a thread.
            let exited: Arc<Mutex<Option<Option<i32>>>> = Arc::new(Mutex::new(None));
            {
                let exited = exited.clone();
                std::thread::spawn(move || {
                    let code = p.wait().ok().and_then(|s| s.code);
                    *exited.lock().unwrap_or_else(|p| p.into_inner()) = Some(code);
                });
            }
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                let status = *exited.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(ready) = &ready_cmd {
                    let check = ExecSpec {
                        env: env.clone(),
                        cwd: image.config.workdir.clone(),
                        ..ExecSpec::command(["/bin/sh", "-c", ready.as_str()])
                    };
                    let ok = sb
                        .exec(check)
                        .and_then(|c| c.wait())
                        .is_ok_and(|s| s.code == Some(0));
                    if ok {
                        return Ok(status.is_none());
                    }
                    if let Some(code) = status
                        && code != Some(0)
                    {
                        return Err(fail(exit_reason(code), &tail));
                    }
                } else {
                    match status {
                        Some(Some(0)) => return Ok(false),
                        Some(code) => return Err(fail(exit_reason(code), &tail)),
                        None if listening(sb.init_pid()) => return Ok(true),
                        None => {}
                    }
                }
                if Instant::now() > deadline {
                    return Err(fail(
                        format!(
                            "was not ready after {} s ({})",
                            READY_TIMEOUT.as_secs(),
                            match &ready_cmd {
                                Some(r) => format!("ready_cmd `{r}` never succeeded"),
                                None => "it neither exited nor listened on a port".into(),
                            }
                        ),
                        &tail,
                    ));
                }
                std::thread::sleep(POLL);
            }
        })();
        let _ = sb.set_frozen(true);
        let _ = sb.destroy();
        if let Some(net) = &self.network {
            net.detach(sb.id());
        }
        let service = outcome?;
        let mut exclude: Vec<PathBuf> = RUNTIME_FILES.iter().map(PathBuf::from).collect();
        exclude.extend(["/tmp", "/run/secrets"].map(PathBuf::from));
        let layer = self.store.capture_upper(
            &dir.join("upper"),
            &CaptureOptions {
                uid_shift: root,
                id_count: IDS_PER_SANDBOX,
                exclude,
                prune_empty: prune,
            },
        )?;
        let _ = std::fs::remove_dir_all(&dir);
        if service {
            ctx.note(format!(
                "start_cmd is still running at ready: it is a service, started again in every sandbox before hand-over (a filesystem snapshot holds no process){}",
                ready_cmd
                    .as_ref()
                    .map(|r| format!(", ready when `{r}` succeeds"))
                    .unwrap_or_default()
            ));
        } else {
            ctx.note("start_cmd finished: its changes are in the snapshot and it never runs again");
        }
        (ctx.events)(BuildEvent::Done {
            index: 0,
            layer_bytes: layer.as_ref().map_or(0, |l| l.size),
            millis: t0.elapsed().as_millis() as u64,
        });
        Ok(SnapshotOutcome { layer, service })
    }
}

fn exit_reason(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exited with status {c}"),
        None => "was killed by a signal".into(),
    }
}

/// Whether anything but Bulkhead's own servers listens on TCP in the sandbox's network
/// namespace (`/proc/<init>/net/tcp{,6}` on the host).
fn listening(init_pid: i32) -> bool {
    ["tcp", "tcp6"].iter().any(|f| {
        std::fs::read_to_string(format!("/proc/{init_pid}/net/{f}")).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let mut it = l.split_whitespace();
                let local = it.nth(1);
                let state = it.nth(1);
                state == Some("0A")
                    && local
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| u16::from_str_radix(p, 16).ok())
                        .is_some_and(|p| !OWN_PORTS.contains(&p))
            })
        })
    })
}

fn forward(
    f: std::fs::File,
    events: super::EventSink,
    redactor: Arc<super::Redactor>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    use std::io::BufRead;
    std::thread::spawn(move || {
        let r = std::io::BufReader::new(f);
        for line in r.split(b'\n') {
            let Ok(line) = line else { return };
            let text = String::from_utf8_lossy(&redactor.redact(&line)).into_owned();
            {
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() == 20 {
                    t.pop_front();
                }
                t.push_back(text.clone());
            }
            events(BuildEvent::Output {
                line: format!("[start_cmd] {text}"),
            });
        }
    });
}
