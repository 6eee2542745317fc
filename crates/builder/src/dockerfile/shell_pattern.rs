//! The shell patterns of `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/repl}` as BuildKit
//! reads them (`convertShellPatternToRegex`): `*` any run, `?` one character, `\*`, `\?`
//! and `\\` literal, `\}` and `\/` the bare character; no bracket expressions. Matching
//! follows the backtracking order of a regex engine (greedy stars try the longest run
//! first, lazy ones the shortest), which is what decides `#` against `##`.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    One,
    Star,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct ShellPattern {
    toks: Vec<Tok>,
}

impl ShellPattern {
    /// Compiles `pat`; an escape of anything but `*`, `?`, `\`, `}` or `/` is refused.
    pub fn new(pat: &str) -> Result<ShellPattern, String> {
        let mut toks = Vec::new();
        let mut it = pat.chars().peekable();
        while let Some(c) = it.next() {
            toks.push(match c {
                '*' => Tok::Star,
                '?' => Tok::One,
                '\\' => match it.next() {
                    Some(e @ ('*' | '?' | '\\' | '}' | '/')) => Tok::Lit(e),
                    Some(e) => return Err(format!("invalid escape '\\{e}'")),
                    None => return Err("invalid escape at the end".into()),
                },
                c => Tok::Lit(c),
            });
        }
        Ok(ShellPattern { toks })
    }

    /// The end of the first match starting at `start`, in backtracking order.
    fn match_at(&self, s: &[char], start: usize, greedy: bool) -> Option<usize> {
        fn go(toks: &[Tok], s: &[char], pos: usize, greedy: bool) -> Option<usize> {
            let Some((t, rest)) = toks.split_first() else {
                return Some(pos);
            };
            match t {
                Tok::Lit(c) => (s.get(pos) == Some(c))
                    .then(|| go(rest, s, pos + 1, greedy))
                    .flatten(),
                Tok::One => (pos < s.len())
                    .then(|| go(rest, s, pos + 1, greedy))
                    .flatten(),
                Tok::Star => {
                    if greedy {
                        (pos..=s.len()).rev().find_map(|p| go(rest, s, p, greedy))
                    } else {
                        (pos..=s.len()).find_map(|p| go(rest, s, p, greedy))
                    }
                }
            }
        }
        go(&self.toks, s, start, greedy)
    }

    fn reversed(&self) -> ShellPattern {
        ShellPattern {
            toks: self.toks.iter().rev().cloned().collect(),
        }
    }
}

/// `${VAR#pat}` (`greedy`: `##`): `value` without the shortest (longest) prefix matching.
pub(crate) fn trim_prefix(pat: &ShellPattern, value: &str, greedy: bool) -> String {
    let s: Vec<char> = value.chars().collect();
    match pat.match_at(&s, 0, greedy) {
        Some(end) => s[end..].iter().collect(),
        None => value.to_owned(),
    }
}

/// `${VAR%pat}` (`greedy`: `%%`): `value` without the shortest (longest) suffix matching.
pub(crate) fn trim_suffix(pat: &ShellPattern, value: &str, greedy: bool) -> String {
    let reversed: String = value.chars().rev().collect();
    trim_prefix(&pat.reversed(), &reversed, greedy)
        .chars()
        .rev()
        .collect()
}

/// `${VAR/pat/repl}` (`all`: `//`): the leftmost (every) match replaced by `repl`.
pub(crate) fn replace(pat: &ShellPattern, value: &str, repl: &str, all: bool) -> String {
    let s: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut pos = 0;
    let mut replaced = false;
    let mut last_end = None;
    while pos <= s.len() {
        if replaced && !all {
            break;
        }
        // No empty match right after a match (as Go's regexp replaces).
        let found = pat
            .match_at(&s, pos, true)
            .filter(|&end| !(end == pos && last_end == Some(pos)));
        match found {
            Some(end) => {
                last_end = Some(end);
                out.push_str(repl);
                replaced = true;
                if end == pos {
                    // An empty match: keep the character and move on, as a regex does.
                    if let Some(c) = s.get(pos) {
                        out.push(*c);
                    }
                    pos += 1;
                } else {
                    pos = end;
                }
            }
            None => {
                if let Some(c) = s.get(pos) {
                    out.push(*c);
                }
                pos += 1;
            }
        }
    }
    if pos < s.len() {
        out.extend(&s[pos..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ShellPattern {
        ShellPattern::new(s).unwrap()
    }

    #[test]
    fn prefix_suffix_replace() {
        assert_eq!(trim_prefix(&p("*/"), "a/b/c", false), "b/c");
        assert_eq!(trim_prefix(&p("*/"), "a/b/c", true), "c");
        assert_eq!(trim_suffix(&p("/*"), "a/b/c", false), "a/b");
        assert_eq!(trim_suffix(&p("/*"), "a/b/c", true), "a");
        assert_eq!(trim_suffix(&p(".tar.gz"), "x.tar.gz", false), "x");
        assert_eq!(trim_prefix(&p("nomatch"), "abc", false), "abc");
        assert_eq!(trim_prefix(&p("a?c"), "abcd", false), "d");
        assert_eq!(replace(&p("o"), "foo boo", "0", false), "f0o boo");
        assert_eq!(replace(&p("o"), "foo boo", "0", true), "f00 b00");
        assert_eq!(replace(&p("b*"), "abcb", "X", false), "aX");
        assert_eq!(replace(&p("*"), "abc", "X", true), "X");
        assert_eq!(trim_prefix(&p("\\*"), "*a", false), "a");
        assert!(ShellPattern::new("\\x").is_err());
    }
}
