//! One logical line into a FROM or an [`Instruction`], with Docker's per-instruction
//! argument rules (BuildKit `parser/line_parsers.go` and `instructions/parse.go`).

use super::expand::unquote;
use super::lexer::LogicalLine;
use super::mount::{parse_mount, parse_network};
use super::words::{
    FlagWord, JsonForm, extract_flags, heredoc_word, join_bare_openers, json_form,
    split_whitespace_at, split_words_at,
};
use super::{ArgDecl, Command, Copy, Fail, Instruction, Run};

/// What a line is.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Step(Instruction),
}

/// Flags Docker knows that this builder refuses, per instruction.
const REFUSED_FLAGS: &[(&str, &str)] = &[
    ("RUN", "security"),
    ("COPY", "parents"),
    ("COPY", "exclude"),
    ("ADD", "checksum"),
    ("ADD", "keep-git-dir"),
    ("ADD", "exclude"),
];

struct Ctx<'a> {
    line: &'a LogicalLine,
    kw: String,
    /// Offset of the text after the flags in `line.joined`.
    rest_off: usize,
    flags: Vec<FlagWord>,
    /// Offset of the arguments (flags included) in `line.joined`.
    args_off: usize,
    escape: char,
}

impl Ctx<'_> {
    fn fail(&self, message: impl Into<String>) -> Fail {
        Fail {
            loc: self.line.loc,
            message: message.into(),
        }
    }

    /// A failure at `off` bytes into the text after the flags.
    fn fail_rest(&self, off: usize, message: impl Into<String>) -> Fail {
        Fail {
            loc: self.line.loc_at(self.rest_off + off),
            message: message.into(),
        }
    }

    fn fail_flag(&self, f: &FlagWord, message: impl Into<String>) -> Fail {
        Fail {
            loc: self.line.loc_at(self.args_off + f.offset),
            message: message.into(),
        }
    }

    fn take_all(&mut self, name: &str) -> Vec<FlagWord> {
        let (taken, kept) = std::mem::take(&mut self.flags)
            .into_iter()
            .partition(|f| f.name == name);
        self.flags = kept;
        taken
    }

    fn take_one(&mut self, name: &str) -> Result<Option<FlagWord>, Fail> {
        let mut all = self.take_all(name);
        if all.len() > 1 {
            return Err(self.fail_flag(
                &all[1],
                format!("{} --{name} is given more than once", self.kw),
            ));
        }
        Ok(all.pop())
    }

    fn string_flag(&mut self, name: &str) -> Result<Option<String>, Fail> {
        match self.take_one(name)? {
            None => Ok(None),
            Some(FlagWord { value: Some(v), .. }) => Ok(Some(v)),
            Some(f) => Err(self.fail_flag(
                &f,
                format!("{} --{name} needs a value: --{name}=...", self.kw),
            )),
        }
    }

    fn bool_flag(&mut self, name: &str) -> Result<bool, Fail> {
        match self.take_one(name)? {
            None => Ok(false),
            Some(FlagWord { value: None, .. }) => Ok(true),
            Some(f) => match f.value.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("true") => Ok(true),
                Some("false") => Ok(false),
                _ => Err(self.fail_flag(&f, format!("{} --{name} takes true or false", self.kw))),
            },
        }
    }

    /// Refuses every flag not taken.
    fn no_more_flags(&self) -> Result<(), Fail> {
        let Some(f) = self.flags.first() else {
            return Ok(());
        };
        let kw = self.kw.as_str();
        let message = if REFUSED_FLAGS.contains(&(kw, f.name.as_str())) {
            format!("{kw} --{} is not supported by this builder", f.name)
        } else {
            format!("{kw} does not take the flag --{}", f.name)
        };
        Err(self.fail_flag(f, message))
    }

    fn unquote_at(&self, word: &str, off: usize) -> Result<String, Fail> {
        unquote(word, self.escape).map_err(|e| self.fail_rest(off, e.to_string()))
    }
}

/// Parses one logical line.
pub(crate) fn parse_line(line: &LogicalLine, escape: char) -> Result<Parsed, Fail> {
    let joined = line.joined.as_str();
    let kw_end = joined.find(char::is_whitespace).unwrap_or(joined.len());
    let after = &joined[kw_end..];
    let args_off = kw_end + (after.len() - after.trim_start().len());
    let (flags, rest_in_args) = extract_flags(&joined[args_off..]);
    let rest_off = args_off + rest_in_args;
    let mut cx = Ctx {
        line,
        kw: joined[..kw_end].to_ascii_uppercase(),
        rest_off,
        flags,
        args_off,
        escape,
    };
    let rest = &joined[rest_off..];
    let kw = cx.kw.clone();
    if matches!(kw.as_str(), "HEALTHCHECK" | "ONBUILD") {
        return Err(cx.fail(format!("{kw} is not supported by this builder")));
    }
    const KNOWN: &[&str] = &[
        "FROM",
        "ARG",
        "ENV",
        "LABEL",
        "MAINTAINER",
        "RUN",
        "COPY",
        "ADD",
        "WORKDIR",
        "USER",
        "SHELL",
        "CMD",
        "ENTRYPOINT",
        "EXPOSE",
        "VOLUME",
        "STOPSIGNAL",
    ];
    if !KNOWN.contains(&kw.as_str()) {
        let written = &joined[..kw_end];
        return Err(cx.fail(format!("{written} is not a Dockerfile instruction")));
    }
    let platform = if kw == "FROM" {
        cx.string_flag("platform")?
    } else {
        None
    };
    let instr = match kw.as_str() {
        "RUN" => Instruction::Run(run(&mut cx, rest)?),
        "COPY" | "ADD" => Instruction::Copy(copy(&mut cx, rest, kw == "ADD")?),
        _ => {
            cx.no_more_flags()?;
            if rest.is_empty() {
                return Err(cx.fail(format!("{kw} needs an argument")));
            }
            match kw.as_str() {
                "FROM" => return from(&cx, rest, platform),
                "ARG" => Instruction::Arg(args(&cx, rest)?),
                "ENV" => Instruction::Env(name_values(&cx, rest)?),
                "LABEL" => Instruction::Label(name_values(&cx, rest)?),
                "MAINTAINER" => Instruction::Label(vec![("maintainer".into(), rest.into())]),
                "WORKDIR" => Instruction::Workdir(rest.into()),
                "USER" => Instruction::User(rest.into()),
                "STOPSIGNAL" => Instruction::StopSignal(rest.into()),
                "CMD" => Instruction::Cmd(command(&cx, rest)?),
                "ENTRYPOINT" => Instruction::Entrypoint(command(&cx, rest)?),
                "SHELL" => match json_form(rest) {
                    JsonForm::Exec(v) if !v.is_empty() => Instruction::Shell(v),
                    _ => {
                        return Err(cx.fail_rest(
                            0,
                            r#"SHELL takes the JSON form: SHELL ["executable", "parameters"]"#,
                        ));
                    }
                },
                "EXPOSE" => Instruction::Expose(
                    split_whitespace_at(rest).into_iter().map(|w| w.0).collect(),
                ),
                _ => Instruction::Volume(volumes(&cx, rest)?),
            }
        }
    };
    Ok(Parsed::Step(instr))
}

fn from(cx: &Ctx<'_>, rest: &str, platform: Option<String>) -> Result<Parsed, Fail> {
    let words = split_whitespace_at(rest);
    let name = match words.as_slice() {
        [_] => None,
        [_, (as_kw, _), (name, off)] if as_kw.eq_ignore_ascii_case("as") => {
            let n = name.to_ascii_lowercase();
            let mut chars = n.chars();
            let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(cx.fail_rest(
                    *off,
                    format!(
                        "{name} is not a valid stage name: it must start with a letter and hold only letters, digits, '-', '_' and '.'"
                    ),
                ));
            }
            Some(n)
        }
        _ => {
            return Err(cx.fail(
                "FROM takes an image and optionally AS and a stage name: FROM [--platform=...] image [AS name]",
            ));
        }
    };
    Ok(Parsed::From {
        base: words[0].0.clone(),
        name,
        platform,
    })
}

fn args(cx: &Ctx<'_>, rest: &str) -> Result<Vec<ArgDecl>, Fail> {
    split_words_at(rest, cx.escape)
        .into_iter()
        .map(|(w, off)| {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_owned(), Some(d.to_owned())),
                None => (w.clone(), None),
            };
            if name.is_empty() {
                return Err(cx.fail_rest(off, "ARG names can not be blank"));
            }
            Ok(ArgDecl { name, default })
        })
        .collect()
}

/// ENV and LABEL: `k=v ...`, or the legacy `k value with spaces` when the first word has
/// no `=` (Docker's `parseNameVal`).
fn name_values(cx: &Ctx<'_>, rest: &str) -> Result<Vec<(String, String)>, Fail> {
    let kw = &cx.kw;
    let words = split_words_at(rest, cx.escape);
    if words.first().is_some_and(|(w, _)| !w.contains('=')) {
        let Some(ws) = rest.find(char::is_whitespace) else {
            return Err(cx.fail_rest(
                0,
                format!("{kw} {rest} has no value: write {kw} {rest}=value"),
            ));
        };
        let key = cx.unquote_at(&rest[..ws], 0)?;
        return Ok(vec![(key, rest[ws..].trim_start().to_owned())]);
    }
    words
        .into_iter()
        .map(|(w, off)| {
            let Some((k, v)) = w.split_once('=') else {
                return Err(cx.fail_rest(off, format!("{kw} {w} has no '=': write name=value")));
            };
            let key = cx.unquote_at(k, off)?;
            if key.is_empty() {
                return Err(cx.fail_rest(off, format!("{kw} names can not be blank")));
            }
            Ok((key, v.to_owned()))
        })
        .collect()
}

fn command(cx: &Ctx<'_>, rest: &str) -> Result<Command, Fail> {
    match json_form(rest) {
        JsonForm::Exec(v) => Ok(Command::Exec(v)),
        JsonForm::NotStrings => {
            Err(cx.fail_rest(0, format!("{} in the JSON form takes only strings", cx.kw)))
        }
        JsonForm::Shell => Ok(Command::Shell(rest.to_owned())),
    }
}

fn run(cx: &mut Ctx<'_>, rest: &str) -> Result<Run, Fail> {
    let mut mounts = Vec::new();
    let mut mount_values = Vec::new();
    for f in cx.take_all("mount") {
        let Some(v) = f.value.as_deref() else {
            return Err(cx.fail_flag(&f, "RUN --mount needs a value: --mount=type=..."));
        };
        mounts.push(parse_mount(v).map_err(|m| cx.fail_flag(&f, m))?);
        mount_values.push(v.to_owned());
    }
    let network = match cx.take_one("network")? {
        None => None,
        Some(f) => {
            let v = f.value.as_deref().unwrap_or_default();
            Some(parse_network(v).map_err(|m| cx.fail_flag(&f, m))?)
        }
    };
    cx.no_more_flags()?;
    if rest.is_empty() {
        return Err(cx.fail("RUN needs a command"));
    }
    let heredocs = cx.line.heredocs.clone();
    let command = match command(cx, rest)? {
        Command::Exec(_) if !heredocs.is_empty() => {
            return Err(cx.fail_rest(0, "RUN in the JSON form cannot read a heredoc"));
        }
        Command::Shell(s) if !heredocs.is_empty() && heredoc_word(&s, 0, cx.escape).is_some() => {
            Command::Shell(String::new())
        }
        c => c,
    };
    Ok(Run {
        mounts,
        mount_values,
        network,
        command,
        heredocs,
    })
}

fn is_url(src: &str) -> bool {
    let lower = src.to_ascii_lowercase();
    ["http://", "https://", "git://", "ssh://", "git@"]
        .iter()
        .any(|p| lower.starts_with(p))
}

fn copy(cx: &mut Ctx<'_>, rest: &str, add: bool) -> Result<Copy, Fail> {
    let from = if add { None } else { cx.string_flag("from")? };
    let chown = cx.string_flag("chown")?;
    let chmod = cx.string_flag("chmod")?;
    let link = cx.bool_flag("link")?;
    cx.no_more_flags()?;
    let kw = cx.kw.clone();
    let words = match json_form(rest) {
        JsonForm::Exec(v) => v.into_iter().map(|w| (w, 0)).collect(),
        JsonForm::NotStrings => {
            return Err(cx.fail_rest(0, format!("{kw} in the JSON form takes only strings")));
        }
        JsonForm::Shell => join_bare_openers(split_whitespace_at(rest)),
    };
    let Some(((dest, _), srcs)) = words.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(cx.fail(format!(
            "{kw} needs at least one source and a destination: {kw} src... dest"
        )));
    };
    let mut heredocs = cx.line.heredocs.iter();
    let mut sources = Vec::new();
    let mut docs = Vec::new();
    for (w, off) in srcs {
        if heredoc_word(w, *off, cx.escape).is_some()
            && let Some(h) = heredocs.next()
        {
            docs.push(h.clone());
            continue;
        }
        if add && is_url(w) {
            return Err(cx.fail_rest(
                *off,
                format!("ADD from a URL is not supported ({w}); use RUN curl or wget instead"),
            ));
        }
        sources.push(w.clone());
    }
    Ok(Copy {
        add,
        from,
        chown,
        chmod,
        link,
        sources,
        dest: dest.clone(),
        heredocs: docs,
    })
}

fn volumes(cx: &Ctx<'_>, rest: &str) -> Result<Vec<String>, Fail> {
    let list: Vec<String> = match json_form(rest) {
        JsonForm::Exec(v) => v,
        JsonForm::NotStrings => {
            return Err(cx.fail_rest(0, "VOLUME in the JSON form takes only strings"));
        }
        JsonForm::Shell => split_whitespace_at(rest).into_iter().map(|w| w.0).collect(),
    };
    if list.is_empty() || list.iter().any(|v| v.trim().is_empty()) {
        return Err(cx.fail_rest(0, "VOLUME paths can not be empty"));
    }
    Ok(list)
}
