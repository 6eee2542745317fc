//! The Dockerfile of a template directory, parsed into stages and steps.
//!
//! Contract:
//! - [`parse`] reads Docker's syntax: case-insensitive instruction names, `#` comments,
//!   parser directives at the top (`# syntax=` ignored, `# escape=\` or `` ` ``), line
//!   continuation with the escape character (comment and blank lines inside a continuation
//!   skipped), the JSON (exec) form when the arguments are a JSON array of strings, and
//!   BuildKit heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, several per RUN, COPY or
//!   ADD).
//! - Nothing is expanded here: values are kept as written (quotes included) so the build
//!   can expand them with [`expand`] once the ARG and ENV values in scope are known, exactly
//!   where Docker does ([`Scope`] keeps that scope by Docker's rules, if the build wants
//!   it). Keys (ENV, LABEL) and flag values have their quotes removed.
//! - Anything this builder would not run as Docker does is refused, never skipped:
//!   HEALTHCHECK, ONBUILD, unknown instructions and flags, mount types other than secret and
//!   cache, ADD from a URL, an instruction other than ARG before the first FROM, a file
//!   with no FROM. Every refusal is a [`ParseError`] whose `Display` is
//!   `file:line:col: sentence`, the position being the instruction's or the bad token's.
//!
//! The lexer is written here rather than taken from `parse-dockerfile`: errors must point at
//! the token (a continuation line's column, a heredoc opener, a `--mount` flag) and the
//! rules above must match BuildKit's own parser line by line, which is easier to keep true
//! in ~1k lines we test than across a crate's different model.

mod expand;
mod instruction;
mod lexer;
mod mount;
mod scope;
mod shell_pattern;
mod words;

pub use expand::{ExpandError, expand, expand_heredoc, expand_with_escape, unquote};
pub use scope::{BuildArgs, Scope, global_args, global_lookup};
pub use words::split_words;

/// A position in the Dockerfile, 1-based (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loc {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// Why a Dockerfile was refused: a plain sentence at a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{}:{}: {message}", loc.line, loc.col)]
pub struct ParseError {
    /// The file name as given to [`parse`].
    pub file: String,
    /// The instruction's position, or the bad token's.
    pub loc: Loc,
    /// What is wrong.
    pub message: String,
}

/// A refusal before the file name is known.
#[derive(Debug, Clone)]
pub(crate) struct Fail {
    pub loc: Loc,
    pub message: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// ARGs before the first FROM (usable in FROM lines, and in a stage that re-declares them).
    pub global_args: Vec<ArgDecl>,
    /// The stages, in order; at least one.
    pub stages: Vec<Stage>,
    /// The escape character (`\`, or `` ` `` by directive): pass it to [`expand_with_escape`].
    pub escape: char,
}

/// One `FROM` and the steps after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based position among the stages (`COPY --from=0`).
    pub index: usize,
    /// The `AS` name, lowercased.
    pub name: Option<String>,
    /// The image word as written, not expanded (`python:${PY}-slim`, `scratch`, a stage name).
    pub base: String,
    /// `--platform=` as written.
    pub platform: Option<String>,
    /// Where the FROM is.
    pub loc: Loc,
    /// The instructions after FROM.
    pub steps: Vec<Step>,
}

/// One instruction of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Where the instruction's keyword is.
    pub loc: Loc,
    /// The instruction as written, continuation lines joined (escapes removed), followed for
    /// each heredoc by a newline, its body and its terminator line as written. For history
    /// (`created_by`) and cache keys.
    pub text: String,
    /// What it means.
    pub instr: Instruction,
}

/// `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// The default as written (quotes kept; [`expand`] removes them), if any.
    pub default: Option<String>,
}

/// An instruction other than FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `ARG A B=2`: one or more declarations.
    Arg(Vec<ArgDecl>),
    /// `ENV K=V K2="v 2"` or the legacy `ENV K value with spaces`. Keys unquoted, values as
    /// written (expand each with [`expand`], which also removes the quotes as Docker does).
    Env(Vec<(String, String)>),
    /// `LABEL k=v ...` (and `MAINTAINER x`, as the label `maintainer`). As ENV.
    Label(Vec<(String, String)>),
    /// `RUN`.
    Run(Run),
    /// `COPY` and `ADD` (see [`Copy::add`]).
    Copy(Copy),
    /// `WORKDIR path`, as written.
    Workdir(String),
    /// `USER user[:group]`, as written.
    User(String),
    /// `SHELL ["exe", "-c"]` (the JSON form only, as Docker).
    Shell(Vec<String>),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `EXPOSE 80 53/udp`, each as written.
    Expose(Vec<String>),
    /// `VOLUME /a /b` or `VOLUME ["/a"]`, each as written.
    Volume(Vec<String>),
    /// `STOPSIGNAL SIGTERM`, as written.
    StopSignal(String),
}

/// A command in Docker's two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The shell form: run with the stage's SHELL (default `/bin/sh -c`). Empty for a RUN
    /// whose whole command is one heredoc: then the heredoc's body is the script.
    Shell(String),
    /// The exec (JSON) form: argv as given, no shell.
    Exec(Vec<String>),
}

/// `RUN [--mount=...]... [--network=...] command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Every `--mount`, in order, as parsed from the text as written.
    pub mounts: Vec<RunMount>,
    /// Every `--mount` value as written: one that names a variable (`id=$SECRET_ID`,
    /// `target=$HOME/.cache`) is expanded with the ARG and ENV values of its step and parsed
    /// again at build time ([`Run::expanded_mounts`]), as BuildKit does.
    pub mount_values: Vec<String>,
    /// `--network=default|none|host`.
    pub network: Option<String>,
    /// `Shell("")` with one heredoc: the heredoc is the script. `Shell("python3 <<EOF")`:
    /// the command reads the heredoc on its stdin; run it with the shell and the heredocs
    /// appended as [`Run::shell_script`] does.
    pub command: Command,
    /// The heredoc bodies, in the order they were opened.
    pub heredocs: Vec<Heredoc>,
}

impl Run {
    /// [`Run::mounts`] with variables expanded by `expand` (each value that names one is
    /// parsed again after expansion; the others are kept as parsed).
    pub fn expanded_mounts(
        &self,
        expand: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Vec<RunMount>, String> {
        self.mounts
            .iter()
            .zip(
                self.mount_values
                    .iter()
                    .map(Some)
                    .chain(std::iter::repeat(None)),
            )
            .map(|(m, raw)| match raw {
                Some(raw) if raw.contains('$') => {
                    let value = expand(raw)?;
                    mount::parse_mount(&value).map_err(|e| format!("--mount={value}: {e}"))
                }
                _ => Ok(m.clone()),
            })
            .collect()
    }

    /// The text to give the shell (`sh -c TEXT`) for a shell-form RUN: the command itself;
    /// the heredoc's body when it is the whole command (BuildKit runs a body starting
    /// with `#!` as a file instead: check [`Heredoc::body`] first); or the command line
    /// followed by each heredoc body and terminator, which the shell then reads as a
    /// heredoc. `None` for the exec form.
    pub fn shell_script(&self) -> Option<String> {
        let Command::Shell(cmd) = &self.command else {
            return None;
        };
        if cmd.is_empty() {
            return Some(
                self.heredocs
                    .first()
                    .map(|h| h.body.clone())
                    .unwrap_or_default(),
            );
        }
        let mut script = cmd.clone();
        for h in &self.heredocs {
            script.push('\n');
            script.push_str(&h.body);
            script.push_str(&h.name);
        }
        Some(script)
    }
}

/// A heredoc's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, quotes removed (`EOF`).
    pub name: String,
    /// The lines between the opener and the terminator, each ending in `\n`. With
    /// `chomp_tabs`, leading tabs are already removed from every line.
    pub body: String,
    /// `false` when the name was quoted (`<<"EOF"`, `<<'EOF'`): the body is literal.
    pub expand: bool,
    /// `<<-EOF`: leading tabs stripped from the body and the terminator.
    pub chomp_tabs: bool,
}

/// A RUN mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// `type=secret`.
    Secret(SecretMount),
    /// `type=cache`.
    Cache(CacheMount),
}

/// `RUN --mount=type=secret,...`, with BuildKit's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    /// The secret's id (default: basename of `target`).
    pub id: String,
    /// The file to mount; default `/run/secrets/<id>`, `None` when `env=` is given
    /// without a target (then there is no file at all).
    pub target: Option<String>,
    /// The environment variable that holds the value during the step.
    pub env: Option<String>,
    /// A missing secret fails the step (default false: the step runs without it).
    pub required: bool,
    /// File mode (default 0o400).
    pub mode: u32,
    /// File owner (default 0).
    pub uid: u32,
    /// File group (default 0).
    pub gid: u32,
}

/// `RUN --mount=type=cache,...`, with BuildKit's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMount {
    /// The cache's id as given; `None` means the target is the id ([`CacheMount::key`]).
    pub id: Option<String>,
    /// Where it is mounted.
    pub target: String,
    /// How concurrent builds share it.
    pub sharing: Sharing,
    /// Mode of a new cache directory (default 0o755).
    pub mode: u32,
    /// Owner of a new cache directory (default 0).
    pub uid: u32,
    /// Group of a new cache directory (default 0).
    pub gid: u32,
    /// Mounted read-only.
    pub readonly: bool,
}

impl CacheMount {
    /// The cache's identity: the id, or the target when no id is given (BuildKit's rule).
    pub fn key(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.target)
    }
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Concurrent builds use it at once (default).
    Shared,
    /// A concurrent build gets a fresh cache of its own.
    Private,
    /// Concurrent builds wait for each other.
    Locked,
}

/// `COPY` or `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// `ADD` (local sources only: a URL source is refused; a local tar archive is the
    /// build's to unpack).
    pub add: bool,
    /// `--from=stage|index|image`, as written.
    pub from: Option<String>,
    /// `--chown=user[:group]`, as written.
    pub chown: Option<String>,
    /// `--chmod=0755`, as written.
    pub chmod: Option<String>,
    /// `--link` (or `--link=true`).
    pub link: bool,
    /// Sources as written (globs allowed), heredoc openers excluded.
    pub sources: Vec<String>,
    /// The destination as written.
    pub dest: String,
    /// Heredocs among the sources: each becomes a file named after it in `dest`.
    pub heredocs: Vec<Heredoc>,
}

/// Parses a Dockerfile. `file_name` is only used in error messages.
///
/// Errors: see the module doc. Never panics on any input.
pub fn parse(file_name: &str, text: &str) -> Result<Dockerfile, ParseError> {
    let in_file = |f: Fail| ParseError {
        file: file_name.to_owned(),
        loc: f.loc,
        message: f.message,
    };
    let lexed = lexer::lex(text).map_err(in_file)?;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in &lexed.lines {
        match instruction::parse_line(line, lexed.escape).map_err(in_file)? {
            instruction::Parsed::From {
                base,
                name,
                platform,
            } => {
                if let Some(n) = &name
                    && stages.iter().any(|s| s.name.as_ref() == Some(n))
                {
                    return Err(in_file(Fail {
                        loc: line.loc,
                        message: format!("the stage name {n} is used twice"),
                    }));
                }
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    base,
                    platform,
                    loc: line.loc,
                    steps: Vec::new(),
                });
            }
            instruction::Parsed::Step(instr) => match (stages.last_mut(), instr) {
                (Some(stage), instr) => stage.steps.push(Step {
                    loc: line.loc,
                    text: line.text.clone(),
                    instr,
                }),
                (None, Instruction::Arg(args)) => global_args.extend(args),
                (None, _) => {
                    let kw = line.joined.split_whitespace().next().unwrap_or_default();
                    return Err(in_file(Fail {
                        loc: line.loc,
                        message: format!(
                            "{} comes before the first FROM; only ARG may come before FROM",
                            kw.to_ascii_uppercase()
                        ),
                    }));
                }
            },
        }
    }
    if stages.is_empty() {
        let loc = lexed
            .lines
            .last()
            .map_or(Loc { line: 1, col: 1 }, |l| l.loc);
        return Err(in_file(Fail {
            loc,
            message: "the Dockerfile has no FROM instruction".into(),
        }));
    }
    Ok(Dockerfile {
        global_args,
        stages,
        escape: lexed.escape,
    })
}

#[cfg(test)]
mod tests;
