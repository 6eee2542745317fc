//! Why a build failed, in terms the user can act on: the step (`file:line`), what it ran,
//! and its last lines of output.

use std::path::PathBuf;

/// A failed build. Nothing half-built is registered.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The template directory or its Dockerfile is invalid.
    #[error(transparent)]
    TemplateDir(#[from] crate::template_dir::TemplateDirError),
    /// The Dockerfile does not parse.
    #[error(transparent)]
    Parse(#[from] crate::dockerfile::ParseError),
    /// A value could not be expanded (`${VAR:?message}`).
    #[error("{at}: {message}")]
    Expand { at: String, message: String },
    /// Something the Dockerfile asks for cannot be done (an unknown stage, a missing secret).
    #[error("{at}: {message}")]
    Step { at: String, message: String },
    /// A RUN step's command failed.
    #[error("{at}: `{command}` exited with {status}{}", tail(.last_lines))]
    RunFailed {
        at: String,
        command: String,
        status: String,
        last_lines: Vec<String>,
    },
    /// The `start_cmd` failed or never became ready.
    #[error("start_cmd `{command}` {reason}{}", tail(.last_lines))]
    StartCmd {
        command: String,
        reason: String,
        last_lines: Vec<String>,
    },
    /// A layer would have kept a secret's value.
    #[error(
        "{at}: the layer of this step contains the value of secret {id:?}; a secret must not be written to the image (remove the file in the same RUN step, or use it from /run/secrets only)"
    )]
    SecretInLayer { at: String, id: String },
    /// The image store refused or failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Pulling the base image failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// A build sandbox could not be started or used.
    #[error("{at}: build sandbox: {message}")]
    Sandbox { at: String, message: String },
    /// Another build of the same template is running.
    #[error("template {0:?} is already being built: wait for that build to finish")]
    Busy(String),
    /// A host file operation failed.
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; last lines:\n  {}", lines.join("\n  "))
    }
}

impl BuildError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BuildError::Io { what, path, source }
    }
}
