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
    pub(super) storage_path: PathBuf,
    /// Bytes of the file written through the storage and read back.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub(super) storage_probe_size: usize,
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
pub(super) struct Report {
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
    pub(super) fn pass(&mut self, name: &'static str, detail: String) {
        self.push(name, State::Pass, detail, "");
    }
    pub(super) fn fail(&mut self, name: &'static str, detail: String, fix: &str) {
        self.push(name, State::Fail, detail, fix);
    }
    pub(super) fn not_run(&mut self, names: &[&'static str], why: &str) {
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
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// The server's `message`, else the body as text.
    pub(super) fn message(&self) -> String {
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

pub(super) struct Api {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    pub(super) async fn call(
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
    let mounted = super::validate_storage::mount_check(args, storage, &envd, r).await;
    if mounted {
        super::validate_storage::round_trip(args, &api, &id, storage, &envd, r).await;
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

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Quotes one argument for bash.
pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
