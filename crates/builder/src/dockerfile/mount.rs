//! `RUN --mount=...` and `RUN --network=...`, with BuildKit's semantics for the two mount
//! types this builder runs (BuildKit `instructions/commands_runmount.go` and
//! `dockerfile2llb/convert_secrets.go`):
//!
//! - `type=secret`: `id` (alias `source`/`src`) defaults to the basename of `target`; one of
//!   them is required. `target` (alias `dst`, `destination`) defaults to
//!   `/run/secrets/<basename of id>`, unless `env=` is given without a target: then no file
//!   is mounted at all. `required` alone means true (`required=true|false` also read),
//!   default false. `mode` is octal, default 0400; `uid`, `gid` default 0.
//! - `type=cache`: `target` required; `id` defaults to the target; `sharing` is
//!   `shared` (default), `private` or `locked`; `mode` default 0755; `uid`, `gid` default 0;
//!   `ro`/`readonly` (alone or `=bool`) and `rw`/`readwrite`.
//!
//! Any other type (BuildKit's default, `bind`, included), and keys these types do not take,
//! are refused with a sentence naming them.

use super::{CacheMount, RunMount, SecretMount, Sharing};

/// `type=X` with no supported meaning here.
fn unsupported_type(t: &str) -> String {
    format!("RUN --mount type={t} is not supported; supported: secret, cache")
}

/// Splits a mount value at commas, as a CSV record: a field that starts with `"` runs to
/// its closing quote (`""` is a quote).
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("RUN --mount has a quote that is never closed".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None | Some(',') => {}
                Some(_) => return Err("RUN --mount has text after a quoted field".into()),
            }
            fields.push(field);
            if chars.peek().is_none() && !s.ends_with(',') {
                return Ok(fields);
            }
            continue;
        }
        loop {
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => break,
                Some(c) => field.push(c),
            }
        }
        fields.push(field);
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "RUN --mount {key}={v} is not a boolean (true or false)"
        )),
    }
}

fn parse_num(key: &str, v: &str, radix: u32) -> Result<u32, String> {
    u32::from_str_radix(v, radix).map_err(|_| {
        let kind = if radix == 8 { "an octal" } else { "a decimal" };
        format!("RUN --mount {key}={v} is not {kind} number")
    })
}

fn basename(p: &str) -> String {
    let t = p.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some((_, b)) => b.to_owned(),
        None if t.is_empty() => "/".to_owned(),
        None => t.to_owned(),
    }
}

/// Parses one `--mount` value. The error is a sentence without location.
pub(crate) fn parse_mount(value: &str) -> Result<RunMount, String> {
    let fields = csv_fields(value)?;
    let mut kind: Option<String> = None;
    for f in &fields {
        if let Some((k, v)) = f.split_once('=')
            && k.eq_ignore_ascii_case("type")
        {
            kind = Some(v.to_ascii_lowercase());
        }
    }
    let kind = kind.unwrap_or_else(|| "bind".to_owned());
    let mut id = None;
    let mut target = None;
    let mut env = None;
    let mut required = false;
    let mut mode = None;
    let mut uid = 0;
    let mut gid = 0;
    let mut sharing = None;
    let mut readonly = false;
    let mut source = None;
    match kind.as_str() {
        "secret" | "cache" => {}
        other => return Err(unsupported_type(other)),
    }
    let secret = kind == "secret";
    for field in fields.iter().filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        match (key.as_str(), value) {
            ("type", _) => {}
            ("required", None) if secret => required = true,
            ("required", Some(v)) if secret => required = parse_bool("required", v)?,
            ("ro" | "readonly", None) if !secret => readonly = true,
            ("ro" | "readonly", Some(v)) if !secret => readonly = parse_bool(&key, v)?,
            ("rw" | "readwrite", None) if !secret => readonly = false,
            ("rw" | "readwrite", Some(v)) if !secret => readonly = !parse_bool(&key, v)?,
            ("required" | "ro" | "readonly" | "rw" | "readwrite", None) => {
                return Err(format!(
                    "RUN --mount key {key} is not supported for type={kind}"
                ));
            }
            (_, None) => {
                return Err(format!(
                    "RUN --mount field {field:?} must be a key=value pair"
                ));
            }
            ("id", Some(v)) => id = Some(v.to_owned()),
            ("source" | "src", Some(v)) if secret => source = Some(v.to_owned()),
            ("target" | "dst" | "destination", Some(v)) => target = Some(v.to_owned()),
            ("env", Some(v)) if secret => env = Some(v.to_owned()),
            ("mode", Some(v)) => mode = Some(parse_num("mode", v, 8)?),
            ("uid", Some(v)) => uid = parse_num("uid", v, 10)?,
            ("gid", Some(v)) => gid = parse_num("gid", v, 10)?,
            ("sharing", Some(v)) if !secret => {
                sharing = Some(match v.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(format!(
                            "RUN --mount sharing={v} is not one of shared, private, locked"
                        ));
                    }
                });
            }
            (k, Some(_)) => {
                let supported = if secret {
                    "id, target, env, required, mode, uid, gid"
                } else {
                    "id, target, sharing, mode, uid, gid, ro"
                };
                return Err(format!(
                    "RUN --mount key {k} is not supported for type={kind}; supported: {supported}"
                ));
            }
        }
    }
    if secret {
        if source.is_some() && id.is_some() {
            return Err("RUN --mount type=secret takes source or id, not both".into());
        }
        let id = match source.or(id) {
            Some(id) => id,
            None => match &target {
                Some(t) => basename(t),
                None => return Err("RUN --mount type=secret needs an id or a target".into()),
            },
        };
        let target = match (target, &env) {
            (Some(t), _) => Some(t),
            (None, Some(_)) => None,
            (None, None) => Some(format!("/run/secrets/{}", basename(&id))),
        };
        return Ok(RunMount::Secret(SecretMount {
            id,
            target,
            env,
            required,
            mode: mode.unwrap_or(0o400),
            uid,
            gid,
        }));
    }
    let Some(target) = target else {
        return Err("RUN --mount type=cache needs a target".into());
    };
    Ok(RunMount::Cache(CacheMount {
        id: id.filter(|i| !i.is_empty()),
        target,
        sharing: sharing.unwrap_or(Sharing::Shared),
        mode: mode.unwrap_or(0o755),
        uid,
        gid,
        readonly,
    }))
}

/// `--network=default|none|host`.
pub(crate) fn parse_network(value: &str) -> Result<String, String> {
    match value {
        "default" | "none" | "host" => Ok(value.to_owned()),
        _ => Err(format!(
            "RUN --network={value} is not supported; supported: default, none, host"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(v: &str) -> SecretMount {
        match parse_mount(v).unwrap() {
            RunMount::Secret(s) => s,
            other => panic!("not a secret: {other:?}"),
        }
    }

    fn cache(v: &str) -> CacheMount {
        match parse_mount(v).unwrap() {
            RunMount::Cache(c) => c,
            other => panic!("not a cache: {other:?}"),
        }
    }

    #[test]
    fn secret_defaults() {
        let s = secret("type=secret,id=aws_access_key_id");
        assert_eq!(s.id, "aws_access_key_id");
        assert_eq!(s.target.as_deref(), Some("/run/secrets/aws_access_key_id"));
        assert_eq!((s.required, s.mode, s.uid, s.gid), (false, 0o400, 0, 0));
        assert_eq!(s.env, None);
    }

    #[test]
    fn secret_id_from_target_and_env_without_file() {
        let s = secret("type=secret,target=/root/.aws/credentials");
        assert_eq!(s.id, "credentials");
        assert_eq!(s.target.as_deref(), Some("/root/.aws/credentials"));
        let s = secret("type=secret,id=tok,env=TOKEN");
        assert_eq!(s.target, None);
        assert_eq!(s.env.as_deref(), Some("TOKEN"));
        let s = secret("type=secret,id=tok,env=TOKEN,dst=/t");
        assert_eq!(s.target.as_deref(), Some("/t"));
        let s = secret("type=secret,src=a/b");
        assert_eq!(
            (s.id.as_str(), s.target.as_deref()),
            ("a/b", Some("/run/secrets/b"))
        );
    }

    #[test]
    fn secret_required_mode_uid_gid() {
        let s = secret("type=secret,id=a,required,mode=0440,uid=1000,gid=100");
        assert_eq!((s.required, s.mode, s.uid, s.gid), (true, 0o440, 1000, 100));
        assert!(!secret("type=secret,id=a,required=false").required);
        assert!(secret("type=secret,id=a,required=true").required);
        assert!(secret("TYPE=SECRET,ID=a").id == "a");
    }

    #[test]
    fn cache_defaults_and_options() {
        let c = cache("type=cache,target=/var/cache/apt");
        assert_eq!(c.id, None);
        assert_eq!((c.mode, c.uid, c.gid, c.readonly), (0o755, 0, 0, false));
        assert!(matches!(c.sharing, Sharing::Shared));
        let c = cache("type=cache,dst=/root/.cache/pip,id=pip,sharing=locked,ro,mode=700");
        assert_eq!(c.id.as_deref(), Some("pip"));
        assert!(matches!(c.sharing, Sharing::Locked));
        assert!(c.readonly && c.mode == 0o700);
        let c = cache("type=cache,destination=/x,sharing=private,readonly=false");
        assert!(matches!(c.sharing, Sharing::Private) && !c.readonly);
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let e = parse_mount("type=ssh").unwrap_err();
        assert_eq!(
            e,
            "RUN --mount type=ssh is not supported; supported: secret, cache"
        );
        assert!(parse_mount("target=/x").unwrap_err().contains("type=bind"));
        assert!(parse_mount("type=tmpfs,target=/x").is_err());
        assert!(
            parse_mount("type=cache")
                .unwrap_err()
                .contains("needs a target")
        );
        assert!(
            parse_mount("type=secret")
                .unwrap_err()
                .contains("needs an id")
        );
        let e = parse_mount("type=cache,target=/x,from=stage").unwrap_err();
        assert!(
            e.contains("key from is not supported for type=cache"),
            "{e}"
        );
        let e = parse_mount("type=secret,id=a,sharing=locked").unwrap_err();
        assert!(e.contains("key sharing"), "{e}");
        assert!(parse_mount("type=secret,id=a,mode=9").is_err());
        assert!(parse_mount("type=secret,id=a,required=maybe").is_err());
        assert!(parse_mount("type=cache,target=/x,sharing=odd").is_err());
        assert!(parse_mount("type=secret,id=a,bogus").is_err());
        let e = parse_mount("type=cache,target=/x,required").unwrap_err();
        assert_eq!(
            e,
            "RUN --mount key required is not supported for type=cache"
        );
        assert!(parse_mount("type=secret,id=a,src=b").is_err());
    }

    #[test]
    fn quoted_csv_fields() {
        let s = secret(r#"type=secret,"target=/a,b""#);
        assert_eq!(s.target.as_deref(), Some("/a,b"));
        assert!(parse_mount(r#"type=secret,"id=a"#).is_err());
    }

    #[test]
    fn network_values() {
        assert_eq!(parse_network("none").unwrap(), "none");
        assert!(
            parse_network("bridge")
                .unwrap_err()
                .contains("default, none, host")
        );
    }
}
