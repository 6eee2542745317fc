//! Credentials and the registry's authentication challenge (distribution's token protocol):
//! a `401` carries `WWW-Authenticate: Bearer realm=...,service=...` (a token service to ask,
//! with Basic credentials when there are some) or `Basic realm=...` (send the credentials
//! with every request).

use std::fmt;

use serde::Deserialize;

use super::RegistryError;

/// The credentials a pull presents. Bearer tokens are not given here: they are obtained from
/// the token service the registry's challenge names, with these credentials or without.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials (public images; anonymous tokens where the registry hands them out).
    #[default]
    Anonymous,
    /// A user name and password (or access token), sent only over the registry's own scheme
    /// and only in an `Authorization` header.
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"redacted")
                .finish(),
        }
    }
}

/// What goes into the `Authorization` header of registry requests.
#[derive(Clone, Default)]
pub(crate) enum Authorization {
    /// Nothing.
    #[default]
    None,
    /// The pull's Basic credentials.
    Basic,
    /// A token from the token service.
    Bearer(String),
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Ask `realm` for a token.
    Bearer {
        realm: String,
        service: Option<String>,
    },
    /// Send Basic credentials.
    Basic,
}

impl Challenge {
    /// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`; `None`
    /// for a scheme this client does not speak.
    pub(crate) fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Self::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(params);
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        Some(Self::Bearer {
            realm: get("realm")?,
            service: get("service"),
        })
    }
}

/// `key="value", key=value` pairs; quoted values may hold commas and `\"`.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if chars.next() != Some('=') {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

/// The token service's answer (`token` per distribution, `access_token` per OAuth2).
#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

/// Asks the token service for a pull token for `repository`, with the Basic credentials of
/// `auth` if any. `plain_http` says the registry itself is spoken to over plain HTTP; when it
/// is not, credentials are not sent to a plain-HTTP realm.
///
/// # Errors
/// `CredentialsRefused`/`CredentialsRequired` on 401/403, `Unreachable` when the service
/// cannot be reached, `TokenService` for any other failure.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    registry: &str,
    repository: &str,
    auth: &Auth,
    plain_http: bool,
) -> Result<String, RegistryError> {
    let failed = |reason: String| RegistryError::TokenService {
        realm: realm.to_owned(),
        registry: registry.to_owned(),
        reason,
    };
    let mut url =
        reqwest::Url::parse(realm).map_err(|e| failed(format!("its realm is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        // Credentials for an HTTPS registry never travel in clear text to its token service.
        "http" if plain_http || matches!(auth, Auth::Anonymous) => {}
        "http" => {
            return Err(failed(
                "its realm is plain http and the registry is not: credentials are not sent there"
                    .to_owned(),
            ));
        }
        _ => return Err(failed("its realm is not an http(s) URL".to_owned())),
    }
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        query.append_pair("scope", &format!("repository:{repository}:pull"));
    }
    let mut request = http.get(url);
    if let Auth::Basic { username, password } = auth {
        request = request.basic_auth(username, Some(password));
    }
    let response = request.send().await.map_err(|source| {
        if source.is_connect() || source.is_timeout() || source.is_builder() {
            RegistryError::Unreachable {
                registry: format!("{registry} (its token service)"),
                address: realm.to_owned(),
                source,
            }
        } else {
            failed(format!("the request failed: {source}"))
        }
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(refused(registry, repository, auth));
    }
    if !status.is_success() {
        return Err(failed(format!("it answered {}", status.as_u16())));
    }
    let answer: TokenAnswer = response
        .json()
        .await
        .map_err(|e| failed(format!("its answer is not a token: {e}")))?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| failed("its answer holds no token".to_owned()))
}

/// The error for a 401/403: refused credentials, or none given.
pub(crate) fn refused(registry: &str, repository: &str, auth: &Auth) -> RegistryError {
    match auth {
        Auth::Anonymous => RegistryError::CredentialsRequired {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
        },
        Auth::Basic { .. } => RegistryError::CredentialsRefused {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        let unquoted = Challenge::parse("bearer realm=http://127.0.0.1:1/t, service=s");
        assert_eq!(
            unquoted,
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("s".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate abc"), None);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let auth = Auth::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
