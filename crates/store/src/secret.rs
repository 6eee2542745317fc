//! A string that must not reach logs: API key secrets and envd access tokens.

/// A secret string. Its `Debug` prints `"redacted"` and it has no `Display`, so it cannot
/// be logged by accident; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret text, for the few places that must send or show it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"redacted\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("bk_topsecret");
        assert_eq!(format!("{s:?}"), "\"redacted\"");
        assert_eq!(s.expose(), "bk_topsecret");
    }
}
