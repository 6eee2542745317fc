//! E2B's template build API, as `Template.build()` of the official SDKs drives it (spec
//! section 2.7): `POST /v3/templates` opens a build of a name, each `COPY` step's files are
//! asked for by hash (`GET /templates/{id}/files/{hash}`) and `PUT` to the URL answered, then
//! `POST /v2/templates/{id}/builds/{build}` gives the steps and `GET .../status` is polled for
//! the logs and the end.
//!
//! The steps become a template directory the builder already knows: an `e2b.Dockerfile`
//! ([`dockerfile_of`]), the uploaded files under `files/<hash>/` of the context, and an
//! `e2b.toml` with the start and ready commands and the requested CPUs and memory. So a
//! template built from the SDK has every property a template directory has (the step cache,
//! the layer scan, the `start_cmd` snapshot, the team's ownership).
//!
//! Uploads go to `<builder work dir>/sdk-files/<team digest>/<hash>`: a cache per team (the
//! SDK skips an upload the server says it has), lost with the work directory, which only
//! costs an upload. The upload URL carries a random token, the only credential a plain
//! `PUT` brings (the SDK sends no API key there), valid for one hash of one build.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

/// A step of `TemplateBuildStartV2`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// `RUN`, `COPY`, `ENV`, `WORKDIR` or `USER`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The step's arguments (per kind; see [`dockerfile_of`]).
    #[serde(default)]
    pub args: Vec<String>,
    /// The uploaded files of a `COPY`.
    #[serde(default)]
    pub files_hash: Option<String>,
    /// Build this step (and the ones after it) again.
    #[serde(default)]
    pub force: Option<bool>,
}

/// `POST /v2/templates/{id}/builds/{build}`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StartRequest {
    /// A registry reference.
    #[serde(default)]
    pub from_image: Option<String>,
    /// A template of this server.
    #[serde(default)]
    pub from_template: Option<String>,
    /// Registry credentials (not taken: the server's own registry settings apply).
    #[serde(default)]
    pub from_image_registry: Option<serde_json::Value>,
    /// Rebuild every step.
    #[serde(default)]
    pub force: Option<bool>,
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Run once at the end of the build; its result is snapshotted.
    #[serde(default)]
    pub start_cmd: Option<String>,
    /// Polled until it succeeds before the snapshot.
    #[serde(default)]
    pub ready_cmd: Option<String>,
}

/// A JSON string (Dockerfile exec forms and quoted values accept JSON's escapes).
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The Dockerfile of `steps` on the base image `from`: each step in order, a step's `user`
/// for that step only (as E2B runs it), COPY sources from `files/<filesHash>/` of the
/// context. The step kinds and their arguments are the SDKs':
///
/// | step | args | Dockerfile |
/// |---|---|---|
/// | `RUN` | `[command, user?]` | `RUN ["/bin/sh", "-c", command]` (as `user` when given) |
/// | `COPY` | `[src, dest, user?, mode?]` | `COPY [--chown=user] [--chmod=mode] ["files/<hash>/src", dest]` |
/// | `ENV` | `[k1, v1, k2, v2, ...]` | `ENV k1="v1" k2="v2"` |
/// | `WORKDIR` | `[path]` | `WORKDIR path` |
/// | `USER` | `[user]` | `USER user` |
///
/// # Errors
/// A step of another kind, or arguments that do not fit it, as a sentence naming the step.
pub fn dockerfile_of(from: &str, steps: &[Step]) -> Result<String, String> {
    if from.contains(['\n', '\r']) {
        return Err("the base image name holds a line break".into());
    }
    let mut out = format!("FROM {from}\n");
    let mut user: Option<String> = None;
    let one_line = |i: usize, what: &str, v: &str| {
        if v.contains(['\n', '\r']) {
            Err(format!("step {}: the {what} holds a line break", i + 1))
        } else {
            Ok(())
        }
    };
    for (i, s) in steps.iter().enumerate() {
        let n = i + 1;
        match s.kind.to_ascii_uppercase().as_str() {
            "RUN" => {
                let cmd = s
                    .args
                    .first()
                    .ok_or_else(|| format!("step {n}: RUN needs a command"))?;
                let as_user = s.args.get(1).filter(|u| !u.is_empty());
                if let Some(u) = as_user {
                    one_line(i, "user", u)?;
                    out.push_str(&format!("USER {u}\n"));
                }
                out.push_str(&format!("RUN [\"/bin/sh\", \"-c\", {}]\n", quoted(cmd)));
                if as_user.is_some() {
                    out.push_str(&format!("USER {}\n", user.as_deref().unwrap_or("root")));
                }
            }
            "COPY" => {
                let (Some(src), Some(dest)) = (s.args.first(), s.args.get(1)) else {
                    return Err(format!("step {n}: COPY needs a source and a destination"));
                };
                let hash = s
                    .files_hash
                    .as_deref()
                    .ok_or_else(|| format!("step {n}: COPY has no filesHash"))?;
                if !valid_hash(hash) {
                    return Err(format!("step {n}: filesHash {hash:?} is not a hex digest"));
                }
                let src = src.trim_start_matches("./");
                if src.starts_with('/') || src.split('/').any(|c| c == "..") {
                    return Err(format!(
                        "step {n}: COPY source {src:?} must be relative to the template's directory"
                    ));
                }
                let mut flags = String::new();
                if let Some(u) = s.args.get(2).filter(|u| !u.is_empty()) {
                    one_line(i, "user", u)?;
                    flags.push_str(&format!("--chown={u} "));
                }
                if let Some(m) = s.args.get(3).filter(|m| !m.is_empty()) {
                    if !m.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                        return Err(format!("step {n}: COPY mode {m:?} is not octal"));
                    }
                    flags.push_str(&format!("--chmod={m} "));
                }
                out.push_str(&format!(
                    "COPY {flags}[{}, {}]\n",
                    quoted(&format!("files/{hash}/{src}")),
                    quoted(dest)
                ));
            }
            "ENV" => {
                if s.args.is_empty() || s.args.len() % 2 != 0 {
                    return Err(format!("step {n}: ENV needs name and value pairs"));
                }
                let pairs: Vec<String> = s
                    .args
                    .chunks(2)
                    .map(|kv| {
                        let ok = !kv[0].is_empty()
                            && kv[0]
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
                        if ok {
                            Ok(format!("{}={}", kv[0], quoted(&kv[1])))
                        } else {
                            Err(format!("step {n}: {:?} is not a variable name", kv[0]))
                        }
                    })
                    .collect::<Result<_, _>>()?;
                out.push_str(&format!("ENV {}\n", pairs.join(" ")));
            }
            "WORKDIR" => {
                let p = s
                    .args
                    .first()
                    .ok_or_else(|| format!("step {n}: WORKDIR needs a path"))?;
                one_line(i, "path", p)?;
                out.push_str(&format!("WORKDIR {p}\n"));
            }
            "USER" => {
                let u = s
                    .args
                    .first()
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| format!("step {n}: USER needs a user"))?;
                one_line(i, "user", u)?;
                out.push_str(&format!("USER {u}\n"));
                user = Some(u.clone());
            }
            other => {
                return Err(format!(
                    "step {n}: {other} steps are not supported here (RUN, COPY, ENV, WORKDIR and USER are)"
                ));
            }
        }
    }
    Ok(out)
}

/// An `e2b.toml` for the build (TOML strings are JSON strings for our purpose: the same
/// escapes).
pub fn e2b_toml(
    name: &str,
    req: &StartRequest,
    cpu_count: Option<u32>,
    memory_mb: Option<u32>,
) -> String {
    let mut t = format!(
        "template_name = {}\ndockerfile = \"e2b.Dockerfile\"\n",
        quoted(name)
    );
    if let Some(c) = &req.start_cmd {
        t.push_str(&format!("start_cmd = {}\n", quoted(c)));
    }
    if let Some(c) = &req.ready_cmd {
        t.push_str(&format!("ready_cmd = {}\n", quoted(c)));
    }
    if let Some(c) = cpu_count {
        t.push_str(&format!("cpu_count = {c}\n"));
    }
    if let Some(m) = memory_mb {
        t.push_str(&format!("memory_mb = {m}\n"));
    }
    t
}

/// Whether `h` can name an upload (the SDK sends a hex SHA-256).
pub fn valid_hash(h: &str) -> bool {
    (8..=128).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where a build is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Opened; waiting for its steps.
    Waiting,
    /// Running.
    Building,
    /// Built and served.
    Ready,
    /// Failed.
    Error,
}

impl Status {
    /// E2B's word for it.
    pub fn word(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Building => "building",
            Status::Ready => "ready",
            Status::Error => "error",
        }
    }
}

/// One log line of a build.
#[derive(Debug, Clone)]
pub struct Line {
    /// RFC 3339.
    pub timestamp: String,
    /// `info` or `error`.
    pub level: &'static str,
    /// The text.
    pub message: String,
}

/// A build opened by `POST /v3/templates`.
#[derive(Debug)]
pub struct Session {
    /// Its id.
    pub build_id: String,
    /// The template (its name, which is its id here).
    pub template_id: String,
    /// The team that opened it.
    pub team: String,
    /// `cpuCount` asked for.
    pub cpu_count: Option<u32>,
    /// `memoryMB` asked for.
    pub memory_mb: Option<u32>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    status: Status,
    lines: Vec<Line>,
    reason: Option<String>,
}

impl Session {
    /// Appends a log line.
    pub fn log(&self, level: &'static str, message: impl Into<String>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.lines.len() < MAX_LINES {
            st.lines.push(Line {
                timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                level,
                message: message.into(),
            });
        }
    }

    /// Moves the build on; `reason` for a failure.
    pub fn set_status(&self, status: Status, reason: Option<String>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.status = status;
        st.reason = reason;
    }

    /// Status, the lines from `offset` (at most `limit`), and the failure's reason.
    pub fn view(&self, offset: usize, limit: usize) -> (Status, Vec<Line>, Option<String>) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let lines = st.lines.iter().skip(offset).take(limit).cloned().collect();
        (st.status, lines, st.reason.clone())
    }

    /// Whether its steps may still be given.
    pub fn is_waiting(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).status == Status::Waiting
    }
}

/// The most lines kept per build.
const MAX_LINES: usize = 100_000;

/// How many builds are kept for their status (the oldest finished ones go first).
const MAX_SESSIONS: usize = 256;

/// How many upload tokens may be out at once.
const MAX_TOKENS: usize = 10_000;

/// The open and recent builds, and the upload tokens.
#[derive(Debug, Default)]
pub struct SdkBuilds {
    sessions: Mutex<Vec<Arc<Session>>>,
    /// token → (build id, files hash).
    tokens: Mutex<HashMap<String, (String, String)>>,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

impl SdkBuilds {
    /// Opens a build of `template_id` for `team`; `None` when the server holds as many open
    /// builds as it keeps and none can give way.
    pub fn open(
        &self,
        template_id: &str,
        team: &str,
        cpu_count: Option<u32>,
        memory_mb: Option<u32>,
    ) -> Option<Arc<Session>> {
        let s = Arc::new(Session {
            build_id: random_hex(16),
            template_id: template_id.to_string(),
            team: team.to_string(),
            cpu_count,
            memory_mb,
            state: Mutex::new(State {
                status: Status::Waiting,
                lines: Vec::new(),
                reason: None,
            }),
        });
        let mut all = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= MAX_SESSIONS {
            // The oldest finished build goes; failing that, the oldest waiting one of the
            // same team (one team's burst never drops another team's open build).
            let finished = all
                .iter()
                .position(|s| matches!(s.view(0, 0).0, Status::Ready | Status::Error));
            let own_waiting = || {
                all.iter()
                    .position(|s| s.team == team && s.view(0, 0).0 == Status::Waiting)
            };
            match finished.or_else(own_waiting) {
                Some(i) => {
                    all.remove(i);
                }
                None => return None,
            }
        }
        all.push(Arc::clone(&s));
        Some(s)
    }

    /// The team's build `build_id` of `template_id`.
    pub fn get(&self, team: &str, template_id: &str, build_id: &str) -> Option<Arc<Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|s| s.build_id == build_id && s.template_id == template_id && s.team == team)
            .cloned()
    }

    /// The newest waiting build of `template_id` of `team` (file uploads name no build).
    pub fn waiting(&self, team: &str, template_id: &str) -> Option<Arc<Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|s| s.template_id == template_id && s.team == team && s.is_waiting())
            .cloned()
    }

    /// A token for one upload of `hash` to build `build_id` (an earlier unused token of the
    /// same build and hash is replaced); `None` when [`MAX_TOKENS`] are out.
    pub fn upload_token(&self, build_id: &str, hash: &str) -> Option<String> {
        let token = random_hex(24);
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, (b, h)| !(b == build_id && h == hash));
        if tokens.len() >= MAX_TOKENS {
            return None;
        }
        tokens.insert(token.clone(), (build_id.to_string(), hash.to_string()));
        Some(token)
    }

    /// What `token` lets upload: (the build's session, the hash). The token is used up.
    pub fn take_token(&self, token: &str) -> Option<(Arc<Session>, String)> {
        let (build_id, hash) = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token)?;
        let s = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|s| s.build_id == build_id)
            .cloned()?;
        Some((s, hash))
    }

    /// Forgets the tokens of `build_id` (its steps were given: no more uploads).
    pub fn end_uploads(&self, build_id: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (b, _)| b != build_id);
    }
}

/// Where `team`'s uploaded files of `hash` are kept, under the builder's work directory.
pub fn upload_path(work: &Path, team: &str, hash: &str) -> PathBuf {
    use sha2::Digest as _;
    let team_dir = hex::encode(&sha2::Sha256::digest(team.as_bytes())[..8]);
    work.join("sdk-files").join(team_dir).join(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: &str, args: &[&str], hash: Option<&str>) -> Step {
        Step {
            kind: kind.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            files_hash: hash.map(str::to_string),
            force: None,
        }
    }

    #[test]
    fn the_sdks_steps_become_a_dockerfile() {
        let d = dockerfile_of(
            "bulkhead-template/base:latest",
            &[
                step("RUN", &["echo \"a\" && echo $HOME\nsecond line"], None),
                step("RUN", &["whoami", "user"], None),
                step(
                    "COPY",
                    &["app/", "/opt/app", "user", "0755"],
                    Some("abcdef0123"),
                ),
                step("ENV", &["A", "1", "B", "with \"quotes\""], None),
                step("WORKDIR", &["/opt/app"], None),
                step("USER", &["user"], None),
                step("RUN", &["id", "root"], None),
            ],
        )
        .unwrap();
        assert_eq!(
            d,
            "FROM bulkhead-template/base:latest\n\
             RUN [\"/bin/sh\", \"-c\", \"echo \\\"a\\\" && echo $HOME\\nsecond line\"]\n\
             USER user\nRUN [\"/bin/sh\", \"-c\", \"whoami\"]\nUSER root\n\
             COPY --chown=user --chmod=0755 [\"files/abcdef0123/app/\", \"/opt/app\"]\n\
             ENV A=\"1\" B=\"with \\\"quotes\\\"\"\n\
             WORKDIR /opt/app\nUSER user\n\
             USER root\nRUN [\"/bin/sh\", \"-c\", \"id\"]\nUSER user\n"
        );
    }

    #[test]
    fn steps_that_do_not_fit_are_refused_with_their_number() {
        for (steps, want) in [
            (vec![step("ADD", &["x", "y"], None)], "step 1: ADD"),
            (
                vec![step("COPY", &["../x", "/y"], Some("abcdef0123"))],
                "relative",
            ),
            (vec![step("COPY", &["x", "/y"], Some("../../etc"))], "hex"),
            (vec![step("COPY", &["x", "/y"], None)], "filesHash"),
            (vec![step("ENV", &["A"], None)], "pairs"),
            (vec![step("ENV", &["A B", "1"], None)], "variable name"),
            (vec![step("WORKDIR", &["/a\nRUN evil"], None)], "line break"),
            (
                vec![step("COPY", &["x", "/y", "", "9"], Some("abcdef0123"))],
                "octal",
            ),
        ] {
            let err = dockerfile_of("img", &steps).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn tokens_are_used_once_and_end_with_the_uploads() {
        let b = SdkBuilds::default();
        let s = b.open("t", "team", None, None).unwrap();
        let tok = b.upload_token(&s.build_id, "abcdef0123").unwrap();
        assert_eq!(
            b.take_token(&tok).map(|(_, h)| h).as_deref(),
            Some("abcdef0123")
        );
        assert!(b.take_token(&tok).is_none());
        let tok = b.upload_token(&s.build_id, "abcdef0123").unwrap();
        b.end_uploads(&s.build_id);
        assert!(b.take_token(&tok).is_none());
        assert!(b.get("other", "t", &s.build_id).is_none());
        assert!(b.waiting("team", "t").is_some());
    }
}
