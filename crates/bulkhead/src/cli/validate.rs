//! `bulkhead validate [TEMPLATE]`: proves a template works end to end against a running
//! server, the way the seed's workload uses it: the server answers and takes the key, the
//! template exists, no credential the server holds is in any layer, config, history or
//! build log of it, a sandbox starts, the storage is mounted where the agent expects it and
//! lists, a file written there from the sandbox reads back identical in the sandbox and from
//! the bucket itself, `run_code` answers when the template has an interpreter, and the
//! sandbox is killed with nothing left.
//!
//! Why each check is strict: the seed's own validation could not fail (old SDK calls, most
//! checks skipped, a lower-cased `AKIA` grep). Every check here has a test that makes it
//! fail; a check that cannot run because an earlier one failed is shown as not run, and the
//! exit status is 1 whenever anything failed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bulkhead_envd::AccessToken;
use bulkhead_envd::client::{EnvdClient, RunOptions};
use clap::Args as ClapArgs;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::client::ServerArgs;

/// Prove a template works end to end: key, credentials, sandbox, storage, run_code.
#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Each check prints one ✓ or ✗ line with the reason (and, for ✗, what to do); \
a check that needs a failed one is shown as not run. The exit status is 0 when every check \
passed, 1 otherwise. The sandbox it starts is killed at the end, and the file it writes to \
the storage is removed."
)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Template name or id.
    #[arg(default_value = "base")]
    template: String,
    /// Where sandboxes must see the shared storage.
    #[arg(
        long,
        env = "STORAGE_BASE_PATH",
        default_value = "/opt/sentient",
        value_name = "PATH"
    )]
    storage_path: PathBuf,
    /// Bytes of the file written through the storage and read back.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    storage_probe_size: usize,
    /// One JSON object per check on stdout instead of the lines.
    #[arg(long)]
    json: bool,
}

/// The outcome of one check.
#[derive(Debug)]
struct Check {
    name: &'static str,
    state: State,
    detail: String,
    fix: String,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Pass,
    Fail,
    /// Not run, because a check it needs failed (or it does not apply).
    NotRun,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
    json: bool,
}

impl Report {
    fn push(&mut self, name: &'static str, state: State, detail: String, fix: &str) {
        let c = Check {
            name,
            state,
            detail,
            fix: fix.to_string(),
        };
        if self.json {
            println!(
                "{}",
                json!({"check": c.name, "ok": c.state != State::Fail,
                    "skipped": c.state == State::NotRun, "detail": c.detail,
                    "fix": (c.state == State::Fail).then_some(&c.fix)})
            );
        } else {
            match c.state {
                State::Pass => println!("✓ {}: {}", c.name, c.detail),
                State::Fail => println!("✗ {}: {} — fix: {}", c.name, c.detail, c.fix),
                State::NotRun => println!("- {}: not run ({})", c.name, c.detail),
            }
        }
        self.checks.push(c);
    }
    fn pass(&mut self, name: &'static str, detail: String) {
        self.push(name, State::Pass, detail, "");
    }
    fn fail(&mut self, name: &'static str, detail: String, fix: &str) {
        self.push(name, State::Fail, detail, fix);
    }
    fn not_run(&mut self, names: &[&'static str], why: &str) {
        for n in names {
            self.push(n, State::NotRun, why.to_string(), "");
        }
    }
    fn failed(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.state == State::Fail)
            .count()
    }
}

const AFTER_SANDBOX: &[&str] = &["storage mount", "storage round trip", "run_code", "cleanup"];

/// Runs the checks; exit status 1 when any fails.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut report = Report {
        json: args.json,
        ..Report::default()
    };
    rt.block_on(validate(&args, &mut report));
    let failed = report.failed();
    if !args.json {
        if failed == 0 {
            println!("template {} works end to end", args.template);
        } else {
            println!("{failed} check(s) failed");
        }
    }
    Ok(u8::from(failed > 0))
}

/// An HTTP answer: status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// The server's `message`, else the body as text.
    fn message(&self) -> String {
        self.json()
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(300)
                    .collect()
            })
    }
}

struct Api {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("x-api-key", &self.key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.map_err(|e| error_chain(&e))?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| error_chain(&e))?.to_vec();
        Ok(Answer { status, body })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

async fn validate(args: &Args, r: &mut Report) {
    let all_after_key: &[&str] = &[
        "template",
        "credentials",
        "sandbox",
        "storage mount",
        "storage round trip",
        "run_code",
        "cleanup",
    ];
    let url = args
        .server
        .server
        .clone()
        .or_else(|| std::env::var("E2B_API_URL").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "http://127.0.0.1:3000".into())
        .trim_end_matches('/')
        .to_string();
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(300))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            r.fail(
                "server",
                format!("cannot build an HTTP client: {e}"),
                "report this",
            );
            return;
        }
    };
    // 1. The server answers.
    match http.get(format!("{url}/health")).send().await {
        Ok(res) if res.status().is_success() => {
            r.pass("server", format!("{url} answers"));
        }
        Ok(res) => {
            r.fail(
                "server",
                format!(
                    "{url}/health answered {} (is this a Bulkhead server?)",
                    res.status()
                ),
                "point --server (or E2B_API_URL) at the URL `bulkhead serve` printed",
            );
            r.not_run(
                &[&["api key"], all_after_key].concat(),
                "the server is not reachable",
            );
            return;
        }
        Err(e) => {
            r.fail(
                "server",
                format!("cannot reach {url}: {}", error_chain(&e)),
                "start it (`bulkhead serve`), or point --server (or E2B_API_URL) at it",
            );
            r.not_run(
                &[&["api key"], all_after_key].concat(),
                "the server is not reachable",
            );
            return;
        }
    }
    // 2. The key.
    let key = match args.server.resolve() {
        Ok(s) => s.key,
        Err(e) => {
            r.fail(
                "api key",
                format!("{e:#}"),
                "set E2B_API_KEY (the key `bulkhead serve` printed) or pass --api-key-file FILE",
            );
            r.not_run(all_after_key, "no API key");
            return;
        }
    };
    let api = Api { http, url, key };
    match api.call(reqwest::Method::GET, "/templates", None).await {
        Ok(a) if a.status == 200 => r.pass("api key", "accepted".into()),
        Ok(a) if a.status == 401 || a.status == 403 => {
            r.fail(
                "api key",
                format!("the server refused the key ({}: {})", a.status, a.message()),
                "use a key of this server: E2B_API_KEY as `bulkhead serve` printed it, or `bulkhead key create`",
            );
            r.not_run(all_after_key, "the key was refused");
            return;
        }
        Ok(a) => {
            r.fail(
                "api key",
                format!("GET /templates answered {}: {}", a.status, a.message()),
                "see the server's log",
            );
            r.not_run(all_after_key, "the server could not list templates");
            return;
        }
        Err(e) => {
            r.fail("api key", e, "see the server's log");
            r.not_run(all_after_key, "the server could not list templates");
            return;
        }
    }
    // 3. The template, and 4. the credential audit (one request: the server scans).
    let name = &args.template;
    let audit = match api
        .call(
            reqwest::Method::POST,
            &format!("/bulkhead/v1/templates/{name}/audit"),
            None,
        )
        .await
    {
        Ok(a) if a.status == 200 => a.json(),
        Ok(a) if a.status == 404 => {
            r.fail(
                "template",
                format!("the server has no template {name:?}"),
                "`bulkhead template list` shows what it has; `bulkhead template build DIR` builds one",
            );
            r.not_run(&all_after_key[1..], "no such template");
            return;
        }
        Ok(a) => {
            r.fail(
                "template",
                format!(
                    "the audit of {name:?} answered {}: {}",
                    a.status,
                    a.message()
                ),
                "see the server's log",
            );
            r.not_run(&all_after_key[1..], "the template could not be audited");
            return;
        }
        Err(e) => {
            r.fail("template", e, "see the server's log");
            r.not_run(&all_after_key[1..], "the template could not be audited");
            return;
        }
    };
    let interpreter = audit["codeInterpreter"].as_bool().unwrap_or(false);
    let scanned = &audit["scanned"];
    r.pass(
        "template",
        format!(
            "{} ({} layer(s){}, code interpreter: {})",
            audit["templateID"].as_str().unwrap_or(name),
            scanned["layers"],
            if audit["built"].as_bool() == Some(true) {
                ", built here"
            } else {
                ", from a root filesystem"
            },
            if interpreter { "yes" } else { "no" }
        ),
    );
    credentials_check(&audit, r);
    let storage = &audit["storage"];
    // 5. A sandbox starts.
    let t0 = Instant::now();
    let created = api
        .call(
            reqwest::Method::POST,
            "/sandboxes",
            Some(json!({"templateID": name, "timeout": 300,
                "metadata": {"created-by": "bulkhead validate"}})),
        )
        .await;
    let (id, token) = match created {
        Ok(a) if a.status == 201 || a.status == 200 => {
            let v = a.json();
            match v["sandboxID"].as_str() {
                Some(id) => (
                    id.to_string(),
                    v["envdAccessToken"]
                        .as_str()
                        .map(|t| AccessToken::new(t.to_string())),
                ),
                None => {
                    r.fail(
                        "sandbox",
                        format!("the create answered without a sandbox id: {v}"),
                        "see the server's log",
                    );
                    r.not_run(AFTER_SANDBOX, "no sandbox");
                    return;
                }
            }
        }
        Ok(a) => {
            r.fail(
                "sandbox",
                format!("the create answered {}: {}", a.status, a.message()),
                "see the server's log (`bulkhead serve -v`) and `bulkhead doctor`",
            );
            r.not_run(AFTER_SANDBOX, "no sandbox");
            return;
        }
        Err(e) => {
            r.fail("sandbox", e, "see the server's log");
            r.not_run(AFTER_SANDBOX, "no sandbox");
            return;
        }
    };
    let envd = EnvdClient::new(&api.url, token.clone()).via_proxy(&id);
    let ready = envd.run("true", &RunOptions::default()).await;
    match ready {
        Ok(o) if o.exit_code == 0 => r.pass(
            "sandbox",
            format!(
                "{id} started and ran a command in {} ms",
                t0.elapsed().as_millis()
            ),
        ),
        Ok(o) => r.fail(
            "sandbox",
            format!("{id} started but `true` exited {}", o.exit_code),
            "see the server's log",
        ),
        Err(e) => r.fail(
            "sandbox",
            format!("{id} started but its envd does not answer: {e}"),
            "see the server's log",
        ),
    }
    let mounted = storage_mount_check(args, storage, &envd, r).await;
    if mounted {
        storage_round_trip(args, &api, &id, storage, &envd, r).await;
    } else {
        r.not_run(&["storage round trip"], "the storage is not mounted");
    }
    if interpreter {
        run_code_check(&api, &id, token.as_ref(), r).await;
    } else {
        r.not_run(&["run_code"], "the template has no code interpreter");
    }
    cleanup(&api, &id, r).await;
}

fn credentials_check(audit: &Value, r: &mut Report) {
    let creds: Vec<&str> = audit["credentials"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let findings = audit["findings"].as_array().cloned().unwrap_or_default();
    let s = &audit["scanned"];
    let covered = format!(
        "{} layer(s) ({} files, {} MiB){}{}",
        s["layers"],
        s["files"],
        s["bytes"].as_u64().unwrap_or(0) >> 20,
        if s["imageConfig"].as_bool() == Some(true) {
            format!(", the image config, {} history step(s)", s["historySteps"])
        } else {
            String::new()
        },
        if s["buildLog"].as_bool() == Some(true) {
            ", the build log"
        } else {
            ""
        }
    );
    if !findings.is_empty() {
        let shown: Vec<String> = findings
            .iter()
            .take(6)
            .map(|f| {
                format!(
                    "{} in {}",
                    f["credential"].as_str().unwrap_or("?"),
                    f["place"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let more = findings.len().saturating_sub(shown.len());
        r.fail(
            "credentials",
            format!(
                "{}{}",
                shown.join("; "),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            ),
            "rotate the key, then rebuild without it: keys go in `--secret` (RUN --mount=type=secret or [storage] *_secret), never in a build arg, ENV or a file of the context",
        );
    } else if creds.is_empty() {
        r.pass(
            "credentials",
            format!("the server holds no credential for this template; scanned {covered}"),
        );
    } else {
        r.pass(
            "credentials",
            format!(
                "none of {} ({}) in {covered}",
                creds.len(),
                creds.join(", ")
            ),
        );
    }
}

/// Whether the storage is where the agent expects it, a mount point, and lists.
async fn storage_mount_check(
    args: &Args,
    storage: &Value,
    envd: &EnvdClient,
    r: &mut Report,
) -> bool {
    let want = args.storage_path.display().to_string();
    if storage.is_null() {
        r.fail(
            "storage mount",
            format!("sandboxes of this template get no storage (expected at {want})"),
            "start `bulkhead serve` with --storage-bucket (keys in its environment), or declare [storage] in the template's e2b.toml",
        );
        return false;
    }
    let have = storage["path"].as_str().unwrap_or("");
    if have != want {
        r.fail(
            "storage mount",
            format!("sandboxes see the storage at {have}, not at {want}"),
            "set --storage-path (or STORAGE_BASE_PATH) to where the agent looks, or the server's --storage-path / the template's [storage] path",
        );
        return false;
    }
    let script = format!(
        "p={q}; [ -d \"$p\" ] || {{ echo 'no such directory'; exit 3; }}; \
         t=$(awk -v p=\"$p\" '$5==p {{for(i=7;i<=NF;i++) if($i==\"-\"){{print $(i+1); break}}}}' /proc/self/mountinfo | tail -n1); \
         [ -n \"$t\" ] || {{ echo 'a directory, not a mount point'; exit 4; }}; \
         out=$(ls -A \"$p\" 2>&1) || {{ echo \"cannot be listed: $out\"; exit 5; }}; \
         n=$(printf '%s\\n' \"$out\" | grep -c .); echo \"$t $n\"",
        q = shell_quote(&want)
    );
    match envd.run(&script, &RunOptions::default()).await {
        Ok(o) if o.exit_code == 0 => {
            let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let (fstype, n) = out.split_once(' ').unwrap_or((&out, "?"));
            let kind = storage["kind"].as_str().unwrap_or("?");
            let what = match kind {
                "bucket" => format!(
                    "bucket {}{}",
                    storage["bucket"].as_str().unwrap_or("?"),
                    storage["keyPrefix"]
                        .as_str()
                        .filter(|p| !p.is_empty())
                        .map(|p| format!(":{p}"))
                        .unwrap_or_default()
                ),
                _ => "a local directory of the server".into(),
            };
            r.pass(
                "storage mount",
                format!(
                    "{want} is a mount point ({fstype}, {what}{}) and lists ({n} entries)",
                    if storage["readOnly"].as_bool() == Some(true) {
                        ", read-only"
                    } else {
                        ""
                    }
                ),
            );
            true
        }
        Ok(o) => {
            let why = String::from_utf8_lossy(&o.stdout).trim().to_string();
            r.fail(
                "storage mount",
                format!("{want} in the sandbox: {why}"),
                "see the server's log: the storage mount (`bulkhead mount`) may have died; restarting `bulkhead serve` mounts it again",
            );
            false
        }
        Err(e) => {
            r.fail(
                "storage mount",
                format!("cannot run the check in the sandbox: {e}"),
                "see the server's log",
            );
            false
        }
    }
}

/// Writes a file under `executions/` from the sandbox, reads it back in the sandbox and from
/// the bucket (through the server), removes it and checks it is gone from the bucket.
async fn storage_round_trip(
    args: &Args,
    api: &Api,
    id: &str,
    storage: &Value,
    envd: &EnvdClient,
    r: &mut Report,
) {
    const NAME: &str = "storage round trip";
    if storage["readOnly"].as_bool() == Some(true) {
        r.not_run(&[NAME], "the storage is read-only");
        return;
    }
    let file = format!(
        "{}/executions/bulkhead-validate-{}.bin",
        args.storage_path.display(),
        &hex(&rand::random::<[u8; 6]>())
    );
    // Random bytes made in the sandbox, written and closed by one process, read back by
    // another; the sandbox reports their digest, compared with the bucket's copy below.
    let write = format!(
        "set -e; f={f}; d=\"$(dirname \"$f\")\"; [ -d \"$d\" ] || {{ mkdir -p \"$d\"; echo made-dir; }}; \
         head -c {n} /dev/urandom > \"$f\"; sha256sum \"$f\" | cut -d' ' -f1",
        f = shell_quote(&file),
        n = args.storage_probe_size
    );
    let opts = RunOptions::default();
    let t0 = Instant::now();
    let made_dir;
    let sum = match envd.run(&write, &opts).await {
        Ok(o) if o.exit_code == 0 => {
            let out = String::from_utf8_lossy(&o.stdout);
            made_dir = out.lines().any(|l| l == "made-dir");
            out.lines().last().unwrap_or("").trim().to_string()
        }
        Ok(o) => {
            r.fail(
                NAME,
                format!(
                    "writing {file} in the sandbox failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                "check that the bucket's keys may write (the server's log names the refused request)",
            );
            let _ = envd
                .run(&format!("rm -f {}", shell_quote(&file)), &opts)
                .await;
            return;
        }
        Err(e) => {
            r.fail(
                NAME,
                format!("cannot run the write in the sandbox: {e}"),
                "see the server's log",
            );
            return;
        }
    };
    let read = format!("sha256sum {} | cut -d' ' -f1", shell_quote(&file));
    let got = envd.run(&read, &opts).await;
    let in_sandbox = match &got {
        Ok(o) if o.exit_code == 0 => String::from_utf8_lossy(&o.stdout).trim() == sum,
        _ => false,
    };
    let rm = |r: &mut Report, why: String, fix: &str| r.fail(NAME, why, fix);
    if !in_sandbox {
        rm(
            r,
            format!("{file} read back in the sandbox differs from what was written"),
            "the mount lost data: see the server's log and `bulkhead mount` of the storage",
        );
        let _ = envd
            .run(&format!("rm -f {}", shell_quote(&file)), &opts)
            .await;
        return;
    }
    // From the bucket itself; the mount uploads at close, so it should be there at once —
    // a short wait covers a background release.
    let path = format!(
        "/bulkhead/v1/sandboxes/{id}/storage?path={}",
        urlencode(&file)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let outcome = loop {
        match api.call(reqwest::Method::GET, &path, None).await {
            Ok(a) if a.status == 404 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => break other,
        }
    };
    let ok = match outcome {
        Ok(a)
            if a.status == 200
                && a.body.len() == args.storage_probe_size
                && hex(&sha2::Sha256::digest(&a.body)) == sum =>
        {
            let ms = t0.elapsed().as_millis();
            r.pass(
                NAME,
                format!(
                    "{} bytes written to {file} in the sandbox read back identical there and from the bucket itself ({}) in {ms} ms",
                    args.storage_probe_size,
                    storage["bucket"].as_str().unwrap_or("?"),
                ),
            );
            true
        }
        Ok(a) if a.status == 200 => {
            rm(
                r,
                format!(
                    "the bucket's copy of {file} differs from what the sandbox wrote ({} bytes, {} written)",
                    a.body.len(),
                    args.storage_probe_size
                ),
                "the mount lost data: see the server's log",
            );
            false
        }
        Ok(a) if a.status == 409 => {
            rm(
                r,
                format!(
                    "{}: a file written there never reaches a bucket",
                    a.message()
                ),
                "start `bulkhead serve` with --storage-bucket (keys in its environment), or declare [storage] in the template's e2b.toml",
            );
            false
        }
        Ok(a) if a.status == 404 => {
            rm(
                r,
                format!(
                    "the bucket has no object for {file} 10 s after it was closed: {}",
                    a.message()
                ),
                "the mount is not uploading: see the server's log",
            );
            false
        }
        Ok(a) => {
            rm(
                r,
                format!(
                    "reading {file} from the bucket: {} {}",
                    a.status,
                    a.message()
                ),
                "check the bucket's keys and endpoint (serve's AWS_* environment or the template's --secret)",
            );
            false
        }
        Err(e) => {
            rm(
                r,
                format!("reading {file} from the bucket: {e}"),
                "see the server's log",
            );
            false
        }
    };
    // The file goes, and `executions/` too when this run made it (and it is still empty).
    let remove = format!(
        "rm -f {f}; {rmdir}true",
        f = shell_quote(&file),
        rmdir = if made_dir {
            format!(
                "rmdir {} 2>/dev/null; ",
                shell_quote(&format!("{}/executions", args.storage_path.display()))
            )
        } else {
            String::new()
        }
    );
    let _ = envd.run(&remove, &opts).await;
    if ok {
        // Removed from the bucket too.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match api.call(reqwest::Method::GET, &path, None).await {
                Ok(a) if a.status == 404 => break,
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                _ => {
                    r.fail(
                        "storage cleanup",
                        format!("{file} was removed in the sandbox but is still in the bucket after 10 s"),
                        "the mount does not delete: see the server's log",
                    );
                    break;
                }
            }
        }
    }
}

/// `run_code("1+1")` through the sandbox's interpreter on port 49999, as the SDK calls it.
async fn run_code_check(api: &Api, id: &str, token: Option<&AccessToken>, r: &mut Report) {
    let t0 = Instant::now();
    let mut rb = api
        .http
        .post(format!("{}/execute", api.url))
        .header("e2b-sandbox-id", id)
        .header("e2b-sandbox-port", "49999")
        .json(&json!({"code": "1+1"}));
    if let Some(t) = token {
        rb = rb.header("x-access-token", t.expose());
    }
    let res = match rb.send().await {
        Ok(res) => res,
        Err(e) => {
            r.fail(
                "run_code",
                format!("cannot reach the interpreter: {}", error_chain(&e)),
                "see the server's log",
            );
            return;
        }
    };
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if !status.is_success() {
        r.fail(
            "run_code",
            format!(
                "the interpreter answered {status}: {}",
                text.chars().take(300).collect::<String>()
            ),
            "see the sandbox's interpreter log and the server's log",
        );
        return;
    }
    let mut result = None;
    let mut error = None;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        match v["type"].as_str() {
            Some("result") if v["is_main_result"].as_bool() == Some(true) => {
                result = v["text"].as_str().map(str::to_string);
            }
            Some("error") => error = Some(format!("{}: {}", v["name"], v["value"])),
            _ => {}
        }
    }
    match (result, error) {
        (Some(t), None) if t == "2" => r.pass(
            "run_code",
            format!("run_code(\"1+1\") = 2 in {} ms", t0.elapsed().as_millis()),
        ),
        (res, err) => r.fail(
            "run_code",
            format!(
                "run_code(\"1+1\") gave {res:?}{}",
                err.map(|e| format!(", error {e}")).unwrap_or_default()
            ),
            "see the sandbox's interpreter log",
        ),
    }
}

async fn cleanup(api: &Api, id: &str, r: &mut Report) {
    match api
        .call(reqwest::Method::DELETE, &format!("/sandboxes/{id}"), None)
        .await
    {
        Ok(a) if a.status == 204 || a.status == 200 => {}
        Ok(a) => {
            r.fail(
                "cleanup",
                format!("killing {id} answered {}: {}", a.status, a.message()),
                &format!("kill it: bulkhead sandbox kill {id}"),
            );
            return;
        }
        Err(e) => {
            r.fail(
                "cleanup",
                format!("killing {id}: {e}"),
                &format!("kill it: bulkhead sandbox kill {id}"),
            );
            return;
        }
    }
    match api
        .call(reqwest::Method::GET, &format!("/sandboxes/{id}"), None)
        .await
    {
        Ok(a) if a.status == 404 => r.pass("cleanup", format!("{id} killed; nothing left")),
        Ok(a) => r.fail(
            "cleanup",
            format!("{id} still listed after the kill ({})", a.status),
            &format!("kill it: bulkhead sandbox kill {id}"),
        ),
        Err(e) => r.fail("cleanup", e, "see the server's log"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Quotes one argument for bash.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
