//! S3 credentials: held by the mount, never printed.

use std::fmt;
use std::path::Path;

use crate::error::CredentialsError;

/// An access key pair (and optional session token). `Debug` prints "redacted" so that the
/// secret never reaches a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(redacted)")
    }
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }

    /// Reads `[profile]` from an AWS shared credentials file (INI: `aws_access_key_id`,
    /// `aws_secret_access_key`, optional `aws_session_token`). The `profile ` prefix used by
    /// `~/.aws/config` sections is accepted too.
    ///
    /// # Errors
    /// [`CredentialsError::Read`] when the file cannot be read, [`CredentialsError::Profile`]
    /// when the profile or one of its two keys is missing. Neither carries a secret.
    pub fn from_shared_file(path: &Path, profile: &str) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_shared(&text, profile).ok_or_else(|| CredentialsError::Profile {
            path: path.to_path_buf(),
            profile: profile.to_string(),
        })
    }

    fn parse_shared(text: &str, profile: &str) -> Option<Self> {
        let mut in_section = false;
        let (mut id, mut secret, mut token) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.trim();
                let name = name.strip_prefix("profile ").unwrap_or(name).trim();
                in_section = name == profile;
                continue;
            }
            if !in_section {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim().to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "aws_access_key_id" => id = Some(v),
                    "aws_secret_access_key" => secret = Some(v),
                    "aws_session_token" => token = Some(v),
                    _ => {}
                }
            }
        }
        Some(Self::new(id?, secret?, token))
    }

    /// The access key id (not secret; may appear in diagnostics).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Each part of the credentials by name (`access key id`, `secret access key`, `session
    /// token`), for leak scans that look for them by value (`bulkhead validate`). Whoever
    /// calls it must never print the values.
    pub fn parts_for_leak_scan(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![
            ("access key id", self.access_key_id.as_str()),
            ("secret access key", self.secret_access_key.as_str()),
        ];
        if let Some(t) = &self.session_token {
            out.push(("session token", t.as_str()));
        }
        out
    }

    pub(crate) fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    pub(crate) fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let c = Credentials::new("AKID", "very-secret", Some("tok".into()));
        let s = format!("{c:?} {:?}", Some(&c));
        assert!(!s.contains("very-secret") && !s.contains("tok") && s.contains("redacted"));
    }

    #[test]
    fn shared_file_profiles() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key=B\n\n[profile dev]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=E\n";
        let d = Credentials::parse_shared(text, "default");
        assert_eq!(d, Some(Credentials::new("A", "B", None)));
        let dev = Credentials::parse_shared(text, "dev");
        assert_eq!(dev, Some(Credentials::new("C", "D", Some("E".into()))));
        assert_eq!(Credentials::parse_shared(text, "nope"), None);
    }
}
