//! `e2b.toml`: E2B's keys (`template_id`, `template_name`, `dockerfile`, `start_cmd`,
//! `ready_cmd`, `cpu_count`, `memory_mb`) and Bulkhead's own `[storage]` table. Any other
//! key (E2B's `team_id`, a typo) is listed as ignored, never fatal.

use toml::{Table, Value};

use super::TemplateDirError;

/// The template's settings from `e2b.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct E2bConfig {
    /// `template_id`.
    pub template_id: Option<String>,
    /// `template_name`.
    pub template_name: Option<String>,
    /// The Dockerfile used, relative to the template directory: `dockerfile` from
    /// `e2b.toml`, else `e2b.Dockerfile`, else `Dockerfile` (E2B's order), or the override
    /// given to [`TemplateDir::load`](super::TemplateDir::load) as written.
    pub dockerfile: String,
    /// `start_cmd`: run once after the last step, before the snapshot.
    pub start_cmd: Option<String>,
    /// `ready_cmd`: polled until it exits 0.
    pub ready_cmd: Option<String>,
    /// `cpu_count` (at least 1).
    pub cpu_count: Option<u32>,
    /// `memory_mb` (at least 1).
    pub memory_mb: Option<u64>,
    /// `[storage]`.
    pub storage: Option<StorageDecl>,
}

/// `[storage]`: the bucket every sandbox of the template gets. String values are kept as
/// written: they may hold `${ARG}` references that the build expands with its build args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageDecl {
    /// `bucket` (required).
    pub bucket: String,
    /// `prefix` inside the bucket.
    pub prefix: Option<String>,
    /// `region`.
    pub region: Option<String>,
    /// `endpoint` (an S3-compatible service).
    pub endpoint: Option<String>,
    /// `path` in the sandbox, default `/opt/sentient`.
    pub path: String,
    /// `read_only`, default false.
    pub read_only: bool,
    /// `access_key_secret`: the id of the build secret holding the access key id.
    pub access_key_secret: Option<String>,
    /// `secret_key_secret`: the id of the build secret holding the secret access key.
    pub secret_key_secret: Option<String>,
    /// `session_token_secret`: the id of the build secret holding a session token.
    pub session_token_secret: Option<String>,
}

/// `e2b.toml` read, the Dockerfile not yet resolved.
#[derive(Debug, Clone)]
pub(crate) struct ParsedConfig {
    pub config: E2bConfig,
    pub dockerfile: Option<String>,
    pub ignored_keys: Vec<String>,
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Reader<'a> {
    file: &'a str,
    prefix: &'static str,
}

impl Reader<'_> {
    fn wrong(&self, key: &str, expected: &str) -> TemplateDirError {
        TemplateDirError::ConfigValue {
            file: self.file.to_owned(),
            key: format!("{}{key}", self.prefix),
            expected: expected.to_owned(),
        }
    }

    fn string(&self, t: &mut Table, key: &str) -> Result<Option<String>, TemplateDirError> {
        match t.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    fn positive(&self, t: &mut Table, key: &str) -> Result<Option<u64>, TemplateDirError> {
        match t.remove(key) {
            None => Ok(None),
            Some(Value::Integer(n)) if n >= 1 => Ok(u64::try_from(n).ok()),
            Some(_) => Err(self.wrong(key, "a whole number of at least 1")),
        }
    }

    fn boolean(&self, t: &mut Table, key: &str) -> Result<Option<bool>, TemplateDirError> {
        match t.remove(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(b)),
            Some(_) => Err(self.wrong(key, "true or false")),
        }
    }
}

/// Parses `e2b.toml` text; `file` names it in errors.
pub(crate) fn parse_config(file: &str, text: &str) -> Result<ParsedConfig, TemplateDirError> {
    let mut t: Table = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        TemplateDirError::ConfigSyntax {
            file: file.to_owned(),
            line,
            col,
            message: e.message().trim_end_matches('.').to_owned(),
        }
    })?;
    let r = Reader { file, prefix: "" };
    let cpu_count = match r.positive(&mut t, "cpu_count")? {
        None => None,
        Some(n) => Some(u32::try_from(n).map_err(|_| r.wrong("cpu_count", "at most 4294967295"))?),
    };
    let mut config = E2bConfig {
        template_id: r.string(&mut t, "template_id")?,
        template_name: r.string(&mut t, "template_name")?,
        dockerfile: String::new(),
        start_cmd: r.string(&mut t, "start_cmd")?,
        ready_cmd: r.string(&mut t, "ready_cmd")?,
        cpu_count,
        memory_mb: r.positive(&mut t, "memory_mb")?,
        storage: None,
    };
    let dockerfile = r.string(&mut t, "dockerfile")?;
    let mut ignored_keys = Vec::new();
    match t.remove("storage") {
        None => {}
        Some(Value::Table(mut s)) => {
            config.storage = Some(storage(file, &mut s)?);
            ignored_keys.extend(s.keys().map(|k| format!("storage.{k}")));
        }
        Some(_) => return Err(r.wrong("storage", "a table ([storage])")),
    }
    ignored_keys.splice(0..0, t.keys().cloned());
    Ok(ParsedConfig {
        config,
        dockerfile,
        ignored_keys,
    })
}

fn storage(file: &str, s: &mut Table) -> Result<StorageDecl, TemplateDirError> {
    let r = Reader {
        file,
        prefix: "storage.",
    };
    let Some(bucket) = r.string(s, "bucket")? else {
        return Err(TemplateDirError::ConfigMissing {
            file: file.to_owned(),
            key: "storage.bucket".into(),
        });
    };
    Ok(StorageDecl {
        bucket,
        prefix: r.string(s, "prefix")?,
        region: r.string(s, "region")?,
        endpoint: r.string(s, "endpoint")?,
        path: r
            .string(s, "path")?
            .unwrap_or_else(|| "/opt/sentient".to_owned()),
        read_only: r.boolean(s, "read_only")?.unwrap_or(false),
        access_key_secret: r.string(s, "access_key_secret")?,
        secret_key_secret: r.string(s, "secret_key_secret")?,
        session_token_secret: r.string(s, "session_token_secret")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e2b_keys_and_ignored_ones() {
        let text = r#"
# This is a config for E2B sandbox template.
team_id = "f317d0d2"
dockerfile = "e2b.Dockerfile"
template_name = "roma-dspy-sandbox"
template_id = "tbjhnhg5e3bd22i8jqgk"
start_cmd = "/home/user/start-up.sh"
ready_cmd = "test -d /opt/sentient"
cpu_count = 2
memory_mb = 1024
colour = "blue"
"#;
        let p = parse_config("e2b.toml", text).unwrap();
        let c = &p.config;
        assert_eq!(c.template_name.as_deref(), Some("roma-dspy-sandbox"));
        assert_eq!(c.template_id.as_deref(), Some("tbjhnhg5e3bd22i8jqgk"));
        assert_eq!(c.start_cmd.as_deref(), Some("/home/user/start-up.sh"));
        assert_eq!(c.ready_cmd.as_deref(), Some("test -d /opt/sentient"));
        assert_eq!((c.cpu_count, c.memory_mb), (Some(2), Some(1024)));
        assert_eq!(p.dockerfile.as_deref(), Some("e2b.Dockerfile"));
        assert_eq!(p.ignored_keys, ["colour", "team_id"]);
        assert_eq!(c.storage, None);
    }

    #[test]
    fn storage_table() {
        let text = r#"
[storage]
bucket = "${S3_BUCKET_NAME}"
region = "${AWS_REGION}"
access_key_secret = "aws_access_key_id"
secret_key_secret = "aws_secret_access_key"
mode = "fast"
"#;
        let p = parse_config("e2b.toml", text).unwrap();
        let s = p.config.storage.unwrap();
        assert_eq!(s.bucket, "${S3_BUCKET_NAME}");
        assert_eq!(s.region.as_deref(), Some("${AWS_REGION}"));
        assert_eq!(s.path, "/opt/sentient");
        assert!(!s.read_only);
        assert_eq!(s.access_key_secret.as_deref(), Some("aws_access_key_id"));
        assert_eq!(p.ignored_keys, ["storage.mode"]);
    }

    #[test]
    fn refusals_name_the_file_and_key() {
        let e = parse_config("t/e2b.toml", "a = 1\nb = \n").unwrap_err();
        assert!(e.to_string().starts_with("t/e2b.toml:2:"), "{e}");
        let e = parse_config("e2b.toml", "cpu_count = \"2\"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "e2b.toml: cpu_count must be a whole number of at least 1"
        );
        let e = parse_config("e2b.toml", "memory_mb = 0").unwrap_err();
        assert!(e.to_string().contains("memory_mb"));
        let e = parse_config("e2b.toml", "start_cmd = 3").unwrap_err();
        assert_eq!(e.to_string(), "e2b.toml: start_cmd must be a string");
        let e = parse_config("e2b.toml", "[storage]\nregion = \"x\"").unwrap_err();
        assert_eq!(e.to_string(), "e2b.toml: storage.bucket is required");
        let e =
            parse_config("e2b.toml", "[storage]\nbucket = \"b\"\nread_only = \"yes\"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "e2b.toml: storage.read_only must be true or false"
        );
        let e = parse_config("e2b.toml", "storage = 1").unwrap_err();
        assert!(e.to_string().contains("storage must be a table"));
    }
}
