//! Glob patterns as Docker uses them: Go's `filepath.Match` for one path element (COPY
//! sources are matched element by element, as BuildKit's copy does), and `.dockerignore`
//! patterns (moby `patternmatcher`: `*` and `?` never cross `/`, `**` crosses any number of
//! elements), plus Go's `path.Clean`.

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters other than `/`.
    Star,
    /// `?`: one character other than `/`.
    Any,
    /// `[...]` / `[^...]`: one character in (or not in) the ranges, never `/`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**/` or an inner `**`: nothing, or anything ending in `/`.
    DoubleStar,
    /// A final `**`: anything.
    Rest,
}

/// Go's `getEsc`: one class character, maybe escaped.
fn class_char(p: &[char], i: &mut usize) -> Result<char, String> {
    let bad = || "a character class is not closed or has a bad range".to_owned();
    let c = *p.get(*i).ok_or_else(bad)?;
    if c == '-' || c == ']' {
        return Err(bad());
    }
    let c = if c == '\\' {
        *i += 1;
        *p.get(*i).ok_or_else(bad)?
    } else {
        c
    };
    *i += 1;
    if *i >= p.len() {
        return Err(bad());
    }
    Ok(c)
}

/// Parses `[...]` starting after the `[` at `*i`; leaves `*i` after the `]`.
fn class(p: &[char], i: &mut usize) -> Result<Tok, String> {
    let mut negated = false;
    if p.get(*i) == Some(&'^') {
        negated = true;
        *i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if p.get(*i) == Some(&']') && !ranges.is_empty() {
            *i += 1;
            return Ok(Tok::Class { negated, ranges });
        }
        let lo = class_char(p, i)?;
        let mut hi = lo;
        if p.get(*i) == Some(&'-') {
            *i += 1;
            hi = class_char(p, i)?;
        }
        ranges.push((lo, hi));
    }
}

/// A pattern for one path element with Go's `filepath.Match` syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    toks: Vec<Tok>,
}

impl Glob {
    /// Compiles `pat`; refuses what Go refuses (`ErrBadPattern`).
    pub fn element(pat: &str) -> Result<Glob, String> {
        let p: Vec<char> = pat.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < p.len() {
            let c = p[i];
            i += 1;
            toks.push(match c {
                '*' => Tok::Star,
                '?' => Tok::Any,
                '[' => class(&p, &mut i)?,
                '\\' => {
                    let Some(&e) = p.get(i) else {
                        return Err("the pattern ends with an escape".into());
                    };
                    i += 1;
                    Tok::Lit(e)
                }
                c => Tok::Lit(c),
            });
        }
        Ok(Glob { toks })
    }

    /// Whether the element `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        match_toks(&self.toks, &s)
    }
}

/// A `.dockerignore` pattern (already cleaned, without its `!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IgnorePattern {
    toks: Vec<Tok>,
    /// moby's "suffix match": `**` first, then only literal text, matched as a plain suffix.
    suffix: Option<String>,
}

impl IgnorePattern {
    /// Compiles a cleaned pattern. Go's `filepath.Match` syntax is checked first, as moby
    /// does, so a pattern Go refuses is refused here too.
    pub fn compile(pat: &str) -> Result<IgnorePattern, String> {
        for element in pat.split('/') {
            Glob::element(element)?;
        }
        let p: Vec<char> = pat.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < p.len() {
            let c = p[i];
            i += 1;
            match c {
                '*' if p.get(i) == Some(&'*') => {
                    i += 1;
                    if p.get(i) == Some(&'/') {
                        i += 1;
                    }
                    toks.push(if i >= p.len() {
                        Tok::Rest
                    } else {
                        Tok::DoubleStar
                    });
                }
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '[' => toks.push(class(&p, &mut i)?),
                '\\' => match p.get(i) {
                    Some(&e) => {
                        i += 1;
                        toks.push(Tok::Lit(e));
                    }
                    None => toks.push(Tok::Lit('\\')),
                },
                c => toks.push(Tok::Lit(c)),
            }
        }
        let suffix = pat
            .strip_prefix("**")
            .filter(|rest| !rest.is_empty() && !rest.contains(['*', '?', '[', ']', '\\']));
        Ok(IgnorePattern {
            suffix: suffix.map(str::to_owned),
            toks,
        })
    }

    /// Whether the slash-separated relative `path` matches the whole pattern.
    pub fn matches(&self, path: &str) -> bool {
        if let Some(sfx) = &self.suffix {
            return path.ends_with(sfx.as_str())
                || sfx.strip_prefix('/').is_some_and(|s| path == s);
        }
        let s: Vec<char> = path.chars().collect();
        match_toks(&self.toks, &s)
    }
}

fn match_toks(toks: &[Tok], s: &[char]) -> bool {
    let Some((tok, rest)) = toks.split_first() else {
        return s.is_empty();
    };
    match tok {
        Tok::Lit(c) => s.first() == Some(c) && match_toks(rest, &s[1..]),
        Tok::Any => s.first().is_some_and(|c| *c != '/') && match_toks(rest, &s[1..]),
        Tok::Class { negated, ranges } => {
            s.first().is_some_and(|c| {
                *c != '/' && ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
            }) && match_toks(rest, &s[1..])
        }
        Tok::Star => {
            for i in 0..=s.len() {
                if match_toks(rest, &s[i..]) {
                    return true;
                }
                if s.get(i) == Some(&'/') {
                    break;
                }
            }
            false
        }
        Tok::DoubleStar => {
            match_toks(rest, s)
                || s.iter()
                    .enumerate()
                    .any(|(i, c)| *c == '/' && match_toks(rest, &s[i + 1..]))
        }
        Tok::Rest => true,
    }
}

/// Go's `path.Clean`: one `/` between elements, no `.` elements, `..` resolved where it
/// can be (kept at the start of a relative path, dropped at the root), no trailing `/`;
/// the empty path is `.`.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for el in path.split('/') {
        match el {
            "" | "." => {}
            ".." => match out.last() {
                Some(&last) if last != ".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(".."),
            },
            el => out.push(el),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from Go's `filepath.Match` tests.
    #[test]
    fn go_filepath_match() {
        let cases: &[(&str, &str, Option<bool>)] = &[
            ("abc", "abc", Some(true)),
            ("*", "abc", Some(true)),
            ("*c", "abc", Some(true)),
            ("a*", "a", Some(true)),
            ("a*", "abc", Some(true)),
            ("a*/b", "abc/b", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
            ("ab[c]", "abc", Some(true)),
            ("ab[b-d]", "abc", Some(true)),
            ("ab[e-g]", "abc", Some(false)),
            ("ab[^c]", "abc", Some(false)),
            ("ab[^b-d]", "abc", Some(false)),
            ("ab[^e-g]", "abc", Some(true)),
            ("a\\*b", "a*b", Some(true)),
            ("a\\*b", "ab", Some(false)),
            ("a?b", "a☺b", Some(true)),
            ("a[^a]b", "a☺b", Some(true)),
            ("a???b", "a☺b", Some(false)),
            ("a[!a]b", "a!b", Some(true)),
            ("[a-ζ]*", "α", Some(true)),
            ("*[a-ζ]", "A", Some(false)),
            ("a?b", "a/b", Some(false)),
            ("a*b", "a/b", Some(false)),
            ("[\\]a]", "]", Some(true)),
            ("[\\-]", "-", Some(true)),
            ("[x\\-]", "x", Some(true)),
            ("[x\\-]", "-", Some(true)),
            ("[x\\-]", "z", Some(false)),
            ("[\\-x]", "x", Some(true)),
            ("[\\-x]", "a", Some(false)),
            ("[]a]", "]", None),
            ("[-]", "-", None),
            ("[x-]", "x", None),
            ("[-x]", "x", None),
            ("\\", "a", None),
            ("[a-b-c]", "a", None),
            ("[", "a", None),
            ("[^", "a", None),
            ("[^bc", "a", None),
            ("a[", "a", None),
            ("*x", "xxx", Some(true)),
        ];
        for (pat, name, want) in cases {
            // Go matches whole paths; split like the pattern for the "/" cases.
            let got: Result<bool, String> = (|| {
                let pe: Vec<&str> = pat.split('/').collect();
                let ne: Vec<&str> = name.split('/').collect();
                let globs = pe
                    .iter()
                    .map(|p| Glob::element(p))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(pe.len() == ne.len() && globs.iter().zip(&ne).all(|(g, n)| g.matches(n)))
            })();
            match want {
                Some(w) => assert_eq!(got, Ok(*w), "{pat} ~ {name}"),
                None => assert!(got.is_err(), "{pat} should be refused"),
            }
        }
    }

    #[test]
    fn ignore_double_star() {
        let m = |p: &str, path: &str| IgnorePattern::compile(p).unwrap().matches(path);
        assert!(m("**/*.go", "a/b/c.go"));
        assert!(m("**/*.go", "c.go"));
        assert!(!m("**/*.go", "c.goo"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(!m("a/**/b", "a/xb"));
        assert!(m("a/**", "a/x/y"));
        assert!(m("**", "anything/at/all"));
        assert!(m("**foo", "xfoo"));
        assert!(m("**/foo", "foo"));
        assert!(!m("**/foo", "xfoo"));
        assert!(m("*/temp*", "somedir/temporary.txt"));
        assert!(!m("*/temp*", "a/b/temp"));
        assert!(m("temp?", "tempa"));
        assert!(m("dir/\\*x", "dir/*x"));
    }

    #[test]
    fn go_path_clean() {
        for (i, o) in [
            ("", "."),
            ("abc", "abc"),
            ("abc/", "abc"),
            ("a//b", "a/b"),
            ("./a/./b/", "a/b"),
            ("a/../b", "b"),
            ("a/../../b", "../b"),
            ("/../x", "/x"),
            ("/", "/"),
            ("..", ".."),
            ("../../a/..", "../.."),
        ] {
            assert_eq!(clean(i), o, "{i:?}");
        }
    }
}
