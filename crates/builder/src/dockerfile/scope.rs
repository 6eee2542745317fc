//! Docker's ARG and ENV scoping, for a build that walks a stage's steps in order (optional:
//! a build may do this itself, this is what the Dockerfile reference and BuildKit specify):
//!
//! - ARGs before the first FROM ([`Dockerfile::global_args`]) take their `--build-arg`
//!   value, else their default expanded with the global ARGs before them. Only FROM lines
//!   see them ([`global_lookup`]).
//! - Inside a stage an ARG is visible from its own line on. Its value is the `--build-arg`,
//!   else its default (expanded with the scope at that line), else, with no default, the
//!   global ARG of the same name. A global ARG not re-declared in the stage is not visible.
//! - ENV values are expanded with the scope before the instruction (`ENV a=b c=$a` sees
//!   the old `a`), and an ENV always wins over an ARG of the same name.
//! - A RUN sees every ENV and every ARG with a value; ARGs are not kept in the image.

use super::expand::{ExpandError, expand_with_escape};
use super::{ArgDecl, Dockerfile};

/// What a build arg lookup answers (`--build-arg K=V` as given).
pub type BuildArgs<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The values of the global ARGs, in order (`None`: declared without default or
/// `--build-arg`, so unset).
pub fn global_args(
    df: &Dockerfile,
    build_args: BuildArgs<'_>,
) -> Result<Vec<(String, Option<String>)>, ExpandError> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for decl in &df.global_args {
        let value = match (build_args(&decl.name), &decl.default) {
            (Some(v), _) => Some(v),
            (None, Some(d)) => Some(expand_with_escape(d, df.escape, &|n| {
                lookup_pairs(&out, n)
            })?),
            (None, None) => None,
        };
        set(&mut out, &decl.name, value);
    }
    Ok(out)
}

/// The lookup to expand a FROM line (base and `--platform`) with.
pub fn global_lookup(globals: &[(String, Option<String>)]) -> impl Fn(&str) -> Option<String> {
    move |name| lookup_pairs(globals, name)
}

fn lookup_pairs(pairs: &[(String, Option<String>)], name: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.clone())
}

fn set<V>(pairs: &mut Vec<(String, V)>, key: &str, value: V) {
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => pairs.push((key.to_owned(), value)),
    }
}

/// The variables in scope at one step of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The stage's environment so far, the base image's first; keys unique, in order.
    pub env: Vec<(String, String)>,
    /// The ARGs declared in the stage so far, with their values.
    pub args: Vec<(String, Option<String>)>,
    escape: char,
}

impl Scope {
    /// The scope at the start of a stage whose base image has `image_env`.
    pub fn new(escape: char, image_env: Vec<(String, String)>) -> Scope {
        let mut env = Vec::new();
        for (k, v) in image_env {
            set(&mut env, &k, v);
        }
        Scope {
            env,
            args: Vec::new(),
            escape,
        }
    }

    /// A variable's value: ENV first, then a declared ARG with a value.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| lookup_pairs(&self.args, name))
    }

    /// Expands a word of this step ([`expand_with_escape`] with this scope).
    pub fn expand(&self, word: &str) -> Result<String, ExpandError> {
        expand_with_escape(word, self.escape, &|n| self.lookup(n))
    }

    /// Applies an `ARG` step (see the module doc for where each value comes from).
    pub fn declare(
        &mut self,
        decls: &[ArgDecl],
        globals: &[(String, Option<String>)],
        build_args: BuildArgs<'_>,
    ) -> Result<(), ExpandError> {
        for decl in decls {
            let value = match (build_args(&decl.name), &decl.default) {
                (Some(v), _) => Some(v),
                (None, Some(d)) => Some(self.expand(d)?),
                (None, None) => lookup_pairs(globals, &decl.name),
            };
            set(&mut self.args, &decl.name, value);
        }
        Ok(())
    }

    /// Applies an `ENV` step: every value expanded with the scope before the step. Returns
    /// the pairs as set, for the image config.
    pub fn set_env(
        &mut self,
        pairs: &[(String, String)],
    ) -> Result<Vec<(String, String)>, ExpandError> {
        let expanded = pairs
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.expand(v)?)))
            .collect::<Result<Vec<_>, ExpandError>>()?;
        for (k, v) in &expanded {
            set(&mut self.env, k, v.clone());
        }
        Ok(expanded)
    }

    /// The ARGs with a value, in declaration order: what BuildKit writes before a RUN's
    /// command in its history (`RUN |2 A=1 B=2 ...`) and keys its cache on.
    pub fn args_with_values(&self) -> Vec<(String, String)> {
        self.args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect()
    }

    /// The environment of a RUN: the ENV, then each ARG with a value that no ENV shadows.
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut out = self.env.clone();
        for (k, v) in self.args_with_values() {
            if !out.iter().any(|(e, _)| *e == k) {
                out.push((k, v));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Instruction, parse};
    use super::*;

    fn build_args(name: &str) -> Option<String> {
        match name {
            "AWS_REGION" => Some("eu-west-1".into()),
            "S3_BUCKET_NAME" => Some("bucket".into()),
            _ => None,
        }
    }

    /// Walks each stage as a build would, returning each RUN's environment.
    fn walk(src: &str) -> Vec<Vec<(String, String)>> {
        let df = parse("Dockerfile", src).unwrap();
        let globals = global_args(&df, &build_args).unwrap();
        let mut runs = Vec::new();
        for stage in &df.stages {
            let mut scope = Scope::new(df.escape, vec![("PATH".into(), "/bin".into())]);
            for step in &stage.steps {
                match &step.instr {
                    Instruction::Arg(d) => scope.declare(d, &globals, &build_args).unwrap(),
                    Instruction::Env(p) => {
                        scope.set_env(p).unwrap();
                    }
                    Instruction::Run(_) => runs.push(scope.run_env()),
                    _ => {}
                }
            }
        }
        runs
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn globals_from_defaults_and_build_args() {
        let df = parse(
            "Dockerfile",
            "ARG PY=3.12\nARG IMG=python:${PY}-slim\nARG AWS_REGION=us-east-1\nARG NONE\nFROM $IMG",
        )
        .unwrap();
        let g = global_args(&df, &build_args).unwrap();
        assert_eq!(g[1], ("IMG".into(), Some("python:3.12-slim".into())));
        assert_eq!(g[2], ("AWS_REGION".into(), Some("eu-west-1".into())));
        assert_eq!(g[3], ("NONE".into(), None));
        let base = expand_with_escape(&df.stages[0].base, df.escape, &global_lookup(&g));
        assert_eq!(base.unwrap(), "python:3.12-slim");
    }

    /// The Dockerfile reference's examples for ARG scope and ENV precedence.
    #[test]
    fn reference_scoping() {
        let runs = walk(
            "ARG GLOBAL=g\nFROM a\nRUN one\nARG GLOBAL\nARG USER=${USER:-some_user}\nRUN two\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nRUN three\n",
        );
        assert_eq!(runs[0], pairs(&[("PATH", "/bin")]));
        assert_eq!(
            runs[1],
            pairs(&[("PATH", "/bin"), ("GLOBAL", "g"), ("USER", "some_user")])
        );
        assert_eq!(
            runs[2],
            pairs(&[
                ("PATH", "/bin"),
                ("CONT_IMG_VER", "v1.0.0"),
                ("GLOBAL", "g"),
                ("USER", "some_user")
            ])
        );
        let runs = walk(
            "FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nARG AWS_REGION=x\nRUN r\n",
        );
        assert_eq!(
            runs[0],
            pairs(&[
                ("PATH", "/bin"),
                ("abc", "bye"),
                ("def", "hello"),
                ("ghi", "bye"),
                ("AWS_REGION", "eu-west-1")
            ])
        );
    }

    #[test]
    fn args_for_history_and_stage_isolation() {
        let df = parse(
            "Dockerfile",
            "ARG A=1\nFROM x AS one\nARG A\nARG B=$A-2\nFROM y\nRUN z\n",
        )
        .unwrap();
        let globals = global_args(&df, &|_| None).unwrap();
        let mut s = Scope::new('\\', Vec::new());
        for step in &df.stages[0].steps {
            if let Instruction::Arg(d) = &step.instr {
                s.declare(d, &globals, &|_| None).unwrap();
            }
        }
        assert_eq!(s.args_with_values(), pairs(&[("A", "1"), ("B", "1-2")]));
        // The second stage re-declares nothing: the global A is not visible there.
        assert_eq!(Scope::new('\\', Vec::new()).lookup("A"), None);
        let e = s.expand("${MISSING:?set it}").unwrap_err();
        assert_eq!(e.to_string(), "MISSING: set it");
    }
}
