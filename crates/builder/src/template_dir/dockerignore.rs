//! `.dockerignore` with Docker's semantics (moby `ignorefile.ReadAll` and
//! `patternmatcher.MatchesOrParentMatches`):
//!
//! - A line starting with `#` is a comment (only at column 1: `  #x` is a pattern); blank
//!   lines are skipped; surrounding whitespace is trimmed.
//! - `!pattern` re-includes what earlier lines excluded. Later lines win.
//! - Patterns are cleaned like Go's `filepath.Clean` (`./a/` is `a`), and a leading `/` is
//!   dropped: every pattern is relative to the context root.
//! - `*` and `?` stay within one path element, `[...]` is a class, `\` escapes, `**`
//!   spans any number of elements (`**/*.go` is every `.go` file).
//! - A path is excluded when it or one of its parent directories matches: `build`
//!   excludes `build/x/y`, unless a later `!` line re-includes `build/x/y` itself.
//! - There are no directory-only patterns: Docker cleans the trailing `/` away.

use std::path::{Component, Path};

use super::pattern::{IgnorePattern, clean};

/// One line of `.dockerignore` Docker would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPattern {
    /// 1-based line.
    pub line: usize,
    /// The pattern as written.
    pub pattern: String,
    /// Why.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    exclusion: bool,
    cleaned: String,
    pattern: IgnorePattern,
}

/// The parsed `.dockerignore` of a context. The default ignores nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
    invalid: Vec<InvalidPattern>,
}

impl DockerIgnore {
    /// Parses `.dockerignore` text. Lines Docker would refuse are left out and listed in
    /// [`DockerIgnore::invalid`] (Docker fails the build on them: so does
    /// [`TemplateDir::load`](super::TemplateDir::load), through [`DockerIgnore::try_parse`]).
    pub fn parse(text: &str) -> DockerIgnore {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut out = DockerIgnore::default();
        for (i, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let mut pattern = raw.trim();
            if pattern.is_empty() {
                continue;
            }
            let exclusion = pattern.starts_with('!');
            if exclusion {
                pattern = pattern[1..].trim();
            }
            let invalid = |message: &str| InvalidPattern {
                line: i + 1,
                pattern: raw.trim().to_owned(),
                message: message.to_owned(),
            };
            if pattern.is_empty() {
                out.invalid.push(invalid("a lone ! excludes nothing"));
                continue;
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            match IgnorePattern::compile(&cleaned) {
                Ok(p) => out.rules.push(Rule {
                    exclusion,
                    cleaned,
                    pattern: p,
                }),
                Err(m) => out.invalid.push(invalid(&m)),
            }
        }
        out
    }

    /// [`DockerIgnore::parse`], failing on the first line Docker would refuse.
    pub fn try_parse(text: &str) -> Result<DockerIgnore, InvalidPattern> {
        let parsed = DockerIgnore::parse(text);
        match parsed.invalid.first() {
            Some(bad) => Err(bad.clone()),
            None => Ok(parsed),
        }
    }

    /// The lines left out by [`DockerIgnore::parse`].
    pub fn invalid(&self) -> &[InvalidPattern] {
        &self.invalid
    }

    /// The patterns as cleaned, `!` kept, in order.
    pub fn patterns(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|r| {
                if r.exclusion {
                    format!("!{}", r.cleaned)
                } else {
                    r.cleaned.clone()
                }
            })
            .collect()
    }

    /// Whether some `!` line could re-include a path below an excluded directory (then a
    /// walk must look inside excluded directories).
    pub fn has_exclusions(&self) -> bool {
        self.rules.iter().any(|r| r.exclusion)
    }

    /// Whether `rel_path` (relative to the context root, `/` or `./` prefixes allowed) is
    /// excluded from the context. `is_dir` is accepted for callers' convenience; Docker's
    /// patterns do not depend on it.
    pub fn matches(&self, rel_path: &Path, is_dir: bool) -> bool {
        let _ = is_dir;
        let parts: Vec<String> = rel_path
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                Component::ParentDir => Some("..".to_owned()),
                _ => None,
            })
            .collect();
        if parts.is_empty() {
            return false;
        }
        let file = parts.join("/");
        let mut matched = false;
        for rule in &self.rules {
            // An inclusion cannot change an already excluded path and an exclusion cannot
            // change one not excluded yet (moby skips them the same way).
            if rule.exclusion != matched {
                continue;
            }
            let hit = rule.pattern.matches(&file)
                || (1..parts.len()).any(|n| rule.pattern.matches(&parts[..n].join("/")));
            if hit {
                matched = !rule.exclusion;
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(text: &str, path: &str) -> bool {
        DockerIgnore::parse(text).matches(Path::new(path), false)
    }

    /// The example of the Dockerfile reference's ".dockerignore file" section.
    #[test]
    fn reference_example() {
        let text = "# comment\n*/temp*\n*/*/temp*\ntemp?\n";
        assert!(ignored(text, "somedir/temporary.txt"));
        assert!(ignored(text, "somedir/temp"));
        assert!(ignored(text, "somedir/subdir/temporary.txt"));
        assert!(ignored(text, "tempa"));
        assert!(ignored(text, "tempb"));
        assert!(!ignored(text, "temp"));
        assert!(!ignored(text, "temporary.txt"));
        assert!(!ignored(text, "# comment"));
    }

    #[test]
    fn exceptions_later_lines_win() {
        assert!(!ignored("*.md\n!README.md", "README.md"));
        assert!(ignored("*.md\n!README.md", "CHANGES.md"));
        let t = "*.md\n!README*.md\nREADME-secret.md";
        assert!(ignored(t, "README-secret.md"));
        assert!(!ignored(t, "README-public.md"));
        let t = "*.md\nREADME-secret.md\n!README*.md";
        assert!(!ignored(t, "README-secret.md"));
    }

    #[test]
    fn double_star_and_parents() {
        assert!(ignored("**/*.go", "a/b/main.go"));
        assert!(ignored("**/*.go", "main.go"));
        assert!(ignored("node_modules", "node_modules/x/index.js"));
        assert!(ignored("/build/", "build/out/a.o"));
        assert!(ignored("./secrets", "secrets"));
        assert!(!ignored("build\n!build/keep", "build/keep"));
        assert!(!ignored("build\n!build/keep", "build/keep/inner"));
        assert!(ignored("build\n!build/keep", "build/other"));
        assert!(ignored("a/*", "a/b/c"));
        assert!(!ignored("a/*", "a"));
        assert!(ignored("  #x  ", "#x"));
        assert!(!ignored("x", ""));
        assert!(ignored("*", "./any"));
    }

    #[test]
    fn refused_lines() {
        let d = DockerIgnore::parse("ok\n[bad\n!\n");
        assert_eq!(d.patterns(), ["ok"]);
        assert_eq!(d.invalid().len(), 2);
        assert_eq!(d.invalid()[0].line, 2);
        let e = DockerIgnore::try_parse("a\n\n  [x-]\n").unwrap_err();
        assert_eq!((e.line, e.pattern.as_str()), (3, "[x-]"));
        assert!(DockerIgnore::parse("!a").has_exclusions());
    }
}
