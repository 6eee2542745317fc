//! A template directory as users have it (E2B's format): `e2b.toml`, a Dockerfile, a
//! `.dockerignore`, a `.env`, and the files COPY takes.
//!
//! Contract:
//! - [`TemplateDir::load`] reads `e2b.toml` (optional) and the Dockerfile's text, and
//!   `.dockerignore` (`<Dockerfile>.dockerignore` beside the Dockerfile first, as BuildKit
//!   does). It never parses the Dockerfile ([`TemplateDir::dockerfile`] does) and never
//!   walks the context ([`context_files`] does).
//! - Keys of `e2b.toml` that Bulkhead does not use are listed in
//!   [`TemplateDir::ignored_keys`], never fatal; a wrong type, invalid TOML, a missing
//!   directory or Dockerfile, or a `dockerfile` outside the directory are
//!   [`TemplateDirError`]s whose messages name the file (and the line:col for syntax).
//! - [`context_files`] lists the context without following symlinks; [`match_sources`]
//!   resolves COPY sources against it, refusing paths outside it; [`hash_sources`] gives
//!   the content hash a step cache keys on (mtime ignored).
//! - Everything here is synchronous file I/O: call it off the async reactor.

mod config;
mod context;
mod dockerignore;
mod dotenv;
mod hash;
mod pattern;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::{E2bConfig, StorageDecl};
pub use context::{ContextEntry, EntryKind, context_files, match_sources};
pub use dockerignore::{DockerIgnore, InvalidPattern};
pub use dotenv::{load_dotenv, parse_dotenv};
pub use hash::hash_sources;

use crate::dockerfile::{self, Dockerfile, ParseError};

/// Why a template directory, its files or a COPY source were refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TemplateDirError {
    /// The directory does not exist.
    #[error("template directory {} does not exist", dir.display())]
    DirMissing {
        /// The directory given.
        dir: PathBuf,
    },
    /// The path is not a directory.
    #[error("{} is not a directory", dir.display())]
    NotADir {
        /// The path given.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// `e2b.toml` is not valid TOML.
    #[error("{file}:{line}:{col}: {message}")]
    ConfigSyntax {
        /// The file as shown to the user.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// The TOML parser's message.
        message: String,
    },
    /// A key of `e2b.toml` has a value of the wrong type or range.
    #[error("{file}: {key} must be {expected}")]
    ConfigValue {
        /// The file as shown to the user.
        file: String,
        /// The key (`storage.bucket` inside the table).
        key: String,
        /// What it must be.
        expected: String,
    },
    /// A required key of `e2b.toml` is missing.
    #[error("{file}: {key} is required")]
    ConfigMissing {
        /// The file as shown to the user.
        file: String,
        /// The key.
        key: String,
    },
    /// `dockerfile` in `e2b.toml` points outside the template directory.
    #[error("{file}: dockerfile {path} is outside the template directory")]
    DockerfileOutside {
        /// The file as shown to the user.
        file: String,
        /// The value of `dockerfile`.
        path: String,
    },
    /// No Dockerfile was found.
    #[error("no Dockerfile in {}: there is no {}", dir.display(), tried.join(" and no "))]
    DockerfileMissing {
        /// The template directory.
        dir: PathBuf,
        /// The names looked for.
        tried: Vec<String>,
    },
    /// A `.dockerignore` line Docker would refuse.
    #[error("{file}:{line}: {pattern} is not a valid pattern: {message}")]
    IgnoreSyntax {
        /// The file as shown to the user.
        file: String,
        /// 1-based line.
        line: usize,
        /// The line's pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// A COPY source climbs out of the context (`../x`).
    #[error("COPY source {pattern} is outside the build context")]
    SourceOutsideContext {
        /// The source as written.
        pattern: String,
    },
    /// A COPY source matched nothing left in the context.
    #[error("COPY source {pattern} matched no file in the build context")]
    NoMatch {
        /// The source as written.
        pattern: String,
    },
    /// A COPY source is not a valid pattern.
    #[error("COPY source {pattern} is not a valid pattern: {message}")]
    BadPattern {
        /// The source as written.
        pattern: String,
        /// Why.
        message: String,
    },
    /// A `.env` line could not be read.
    #[error("{file}:{line}: {message}")]
    Dotenv {
        /// The file as shown to the user.
        file: String,
        /// 1-based line.
        line: usize,
        /// Why.
        message: String,
    },
}

/// A loaded template directory.
#[derive(Debug, Clone)]
pub struct TemplateDir {
    /// The directory (the build context's root).
    pub dir: PathBuf,
    /// `e2b.toml`, or the defaults when there is none.
    pub config: E2bConfig,
    /// Keys of `e2b.toml` that are not used (`team_id`, `storage.x`), sorted per table.
    pub ignored_keys: Vec<String>,
    /// The Dockerfile's path.
    pub dockerfile_path: PathBuf,
    /// The Dockerfile's name for messages, relative to `dir` when it is inside it.
    pub dockerfile_name: String,
    /// The Dockerfile's text.
    pub dockerfile_text: String,
    /// The `.dockerignore` in effect (empty when there is none).
    pub ignore: DockerIgnore,
    /// Which file `ignore` came from.
    pub ignore_path: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Option<String>, TemplateDirError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TemplateDirError::Read {
            path: path.to_owned(),
            source: Arc::new(e),
        }),
    }
}

impl TemplateDir {
    /// Loads the template directory `dir`. `dockerfile_override` (the CLI's
    /// `--dockerfile`) replaces `e2b.toml`'s choice: relative paths are taken from `dir`,
    /// absolute ones as they are. See the module doc for what is read and refused.
    pub fn load(
        dir: &Path,
        dockerfile_override: Option<&Path>,
    ) -> Result<TemplateDir, TemplateDirError> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(TemplateDirError::NotADir { dir: dir.into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TemplateDirError::DirMissing { dir: dir.into() });
            }
            Err(e) => {
                return Err(TemplateDirError::Read {
                    path: dir.into(),
                    source: Arc::new(e),
                });
            }
        }
        let toml_path = dir.join("e2b.toml");
        let toml_name = toml_path.display().to_string();
        let parsed = match read(&toml_path)? {
            Some(text) => Some(config::parse_config(&toml_name, &text)?),
            None => None,
        };
        let (mut config, configured, ignored_keys) = match parsed {
            Some(p) => (p.config, p.dockerfile, p.ignored_keys),
            None => (default_config(), None, Vec::new()),
        };
        let (dockerfile_path, dockerfile_name) = match (dockerfile_override, configured) {
            (Some(p), _) => (dir.join(p), p.display().to_string()),
            (None, Some(d)) => {
                let cleaned = pattern::clean(&d);
                if d.starts_with('/') || cleaned == ".." || cleaned.starts_with("../") {
                    return Err(TemplateDirError::DockerfileOutside {
                        file: toml_name,
                        path: d,
                    });
                }
                (dir.join(&cleaned), d)
            }
            (None, None) => {
                let name = ["e2b.Dockerfile", "Dockerfile"]
                    .into_iter()
                    .find(|n| dir.join(n).is_file())
                    .unwrap_or("e2b.Dockerfile");
                (dir.join(name), name.to_owned())
            }
        };
        let Some(dockerfile_text) = read(&dockerfile_path)? else {
            let tried = if dockerfile_override.is_none() && dockerfile_name == "e2b.Dockerfile" {
                vec!["e2b.Dockerfile".to_owned(), "Dockerfile".to_owned()]
            } else {
                vec![dockerfile_name]
            };
            return Err(TemplateDirError::DockerfileMissing {
                dir: dir.into(),
                tried,
            });
        };
        config.dockerfile = dockerfile_name.clone();
        let mut ignore = DockerIgnore::default();
        let mut ignore_path = None;
        let mut beside = dockerfile_path.clone().into_os_string();
        beside.push(".dockerignore");
        for candidate in [PathBuf::from(beside), dir.join(".dockerignore")] {
            if let Some(text) = read(&candidate)? {
                ignore = DockerIgnore::try_parse(&text).map_err(|bad| {
                    TemplateDirError::IgnoreSyntax {
                        file: candidate.display().to_string(),
                        line: bad.line,
                        pattern: bad.pattern,
                        message: bad.message,
                    }
                })?;
                ignore_path = Some(candidate);
                break;
            }
        }
        Ok(TemplateDir {
            dir: dir.into(),
            config,
            ignored_keys,
            dockerfile_path,
            dockerfile_name,
            dockerfile_text,
            ignore,
            ignore_path,
        })
    }

    /// Parses the Dockerfile (errors are `name:line:col: sentence`).
    pub fn dockerfile(&self) -> Result<Dockerfile, ParseError> {
        dockerfile::parse(&self.dockerfile_name, &self.dockerfile_text)
    }

    /// The context's entries after `.dockerignore` ([`context_files`]).
    pub fn context_files(&self) -> Result<Vec<ContextEntry>, TemplateDirError> {
        context_files(&self.dir, &self.ignore)
    }
}

fn default_config() -> E2bConfig {
    E2bConfig {
        template_id: None,
        template_name: None,
        dockerfile: String::new(),
        start_cmd: None,
        ready_cmd: None,
        cpu_count: None,
        memory_mb: None,
        storage: None,
    }
}

#[cfg(test)]
mod tests;
