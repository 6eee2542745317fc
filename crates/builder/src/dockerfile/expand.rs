//! Docker's variable substitution and quote removal for one word (BuildKit's
//! `shell.Lex.ProcessWord`): what ENV, ARG, LABEL, WORKDIR, USER, COPY, ADD, FROM, EXPOSE and
//! VOLUME values become once the variables in scope are known.
//!
//! Rules, as Docker applies them:
//! - `$NAME` and `${NAME}` take the variable's value; an unset variable becomes empty.
//!   `$` not followed by a name stays `$` (`$.` is `$.`).
//! - `${NAME:-word}` word if unset or empty; `${NAME-word}` word if unset;
//!   `${NAME:+word}` word if set and non-empty; `${NAME+word}` word if set;
//!   `${NAME:?msg}` / `${NAME?msg}` fail with `msg` when unset (or empty, with `:`).
//!   `word` is itself expanded.
//! - Single quotes keep everything literal up to the next `'` (no escapes inside).
//! - Double quotes are removed; inside them `$` still expands and the escape character
//!   escapes only `"`, `$` and itself (any other escape stays as written).
//! - Outside quotes the escape character (`\`, or `` ` `` under `# escape=`` ` ``) makes
//!   the next character literal and is dropped; a trailing escape is dropped.
//! - Whitespace is kept: the whole input is one word.

/// Why a word could not be expanded. The message is Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${NAME:?msg}` or `${NAME?msg}` with the variable unset (or empty, for `:?`).
    #[error("{name}: {message}")]
    Required {
        /// The variable's name.
        name: String,
        /// The word after `?`, or Docker's default sentence.
        message: String,
    },
    /// A quote or `${` that never closes, or a modifier Docker does not know.
    #[error("{message}")]
    Syntax {
        /// What is wrong, in Docker's words.
        message: String,
    },
}

use super::shell_pattern::{ShellPattern, replace, trim_prefix, trim_suffix};

fn syntax(message: impl Into<String>) -> ExpandError {
    ExpandError::Syntax {
        message: message.into(),
    }
}

/// Expands `word` with the default escape character `\`. `vars` answers a variable's value,
/// `None` when it is unset (which is not the same as set to "" for `-`, `+` and `?`).
pub fn expand(word: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    expand_with_escape(word, '\\', vars)
}

/// [`expand`] with the Dockerfile's escape character (`Dockerfile::escape`).
pub fn expand_with_escape(
    word: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    Lexer::new(word, escape, Some(vars), true).stop_on(None)
}

/// The expansion BuildKit applies to the body of a COPY/ADD heredoc whose name was not
/// quoted ([`Heredoc::expand`](super::Heredoc::expand)): variables are substituted, quotes
/// are left alone (they belong to the file's content), the escape is always `\`.
pub fn expand_heredoc(
    body: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    Lexer::new(body, '\\', Some(vars), false).stop_on(None)
}

/// Quote and escape removal only: `$` stays literal. Used for heredoc names, label and env
/// keys, and flag values, where Docker's parser removes quotes before any variable is known.
pub fn unquote(word: &str, escape: char) -> Result<String, ExpandError> {
    Lexer::new(word, escape, None, true).stop_on(None)
}

/// How the lexer asks for a variable's value.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    /// `None`: no substitution, `$` is an ordinary character.
    vars: Option<Lookup<'a>>,
    /// Quotes are removed (false: they are ordinary characters).
    quotes: bool,
    /// Escapes are kept in the output (inside `#`, `%` and `/` patterns).
    raw_escapes: bool,
}

impl<'a> Lexer<'a> {
    fn new(word: &str, escape: char, vars: Option<Lookup<'a>>, quotes: bool) -> Lexer<'a> {
        Lexer {
            chars: word.chars().collect(),
            pos: 0,
            escape,
            vars,
            quotes,
            raw_escapes: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.vars.and_then(|v| v(name))
    }

    /// [`Lexer::stop_on`] with escapes kept or not.
    fn stop_on_raw(&mut self, stop: char, raw: bool) -> Result<String, ExpandError> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw);
        let r = self.stop_on(Some(stop));
        self.raw_escapes = saved;
        r
    }

    /// Reads up to `stop` (consumed) or the end. Hitting the end while looking for `stop`
    /// is Docker's "unexpected end of statement".
    fn stop_on(&mut self, stop: Option<char>) -> Result<String, ExpandError> {
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok(out);
            }
            match ch {
                '\'' if self.quotes => out.push_str(&self.single_quote()?),
                '"' if self.quotes => out.push_str(&self.double_quote()?),
                '$' if self.vars.is_some() => out.push_str(&self.dollar()?),
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.next() {
                            Some(c) => out.push(c),
                            None => break,
                        }
                    } else {
                        out.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(c) => Err(syntax(format!(
                "unexpected end of statement while looking for matching {c}"
            ))),
            None => Ok(out),
        }
    }

    fn single_quote(&mut self) -> Result<String, ExpandError> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(syntax(
                        "unexpected end of statement while looking for matching single-quote",
                    ));
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ExpandError> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(syntax(
                        "unexpected end of statement while looking for matching double-quote",
                    ));
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') if self.vars.is_some() => out.push_str(&self.dollar()?),
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(p) if p == '"' || p == '$' || p == self.escape => {
                                ch = p;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// A variable name: letters, digits and `_`; a leading digit run; or one special
    /// parameter character (`@*#?-$!0`), as Docker reads them.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && "@*#?-$!0".contains(ch) {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    /// A `}`-terminated word; running out of input is "missing '}'".
    fn braced_word(&mut self, raw: bool) -> Result<String, ExpandError> {
        self.stop_on_raw('}', raw).map_err(|e| match self.peek() {
            None => syntax("syntax error: missing '}'"),
            Some(_) => e,
        })
    }

    fn dollar(&mut self) -> Result<String, ExpandError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(self.lookup(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err(syntax("syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(syntax("syntax error: bad substitution")),
            Some(_) => {}
        }
        let name = self.name();
        let value = self.lookup(&name);
        let Some(ch) = self.next() else {
            return Err(syntax("syntax error: missing '}'"));
        };
        match ch {
            '}' => Ok(value.unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let (colon, modifier) = if ch == ':' {
                    (true, self.next())
                } else {
                    (false, Some(ch))
                };
                let shown = format!(
                    "{}{}",
                    if colon { ":" } else { "" },
                    modifier.map(String::from).unwrap_or_default()
                );
                let pattern = matches!(modifier, Some('#' | '%'));
                if colon && pattern {
                    return Err(unsupported(&shown));
                }
                let word = self.braced_word(pattern)?;
                let was_set = value.is_some();
                let value = value.unwrap_or_default();
                let unset = !was_set || (colon && value.is_empty());
                match modifier {
                    Some('-') => Ok(if unset { word } else { value }),
                    Some('+') => Ok(if unset { String::new() } else { word }),
                    Some('?') if !was_set => {
                        Err(required(name, word, "is not allowed to be unset"))
                    }
                    Some('?') if unset => Err(required(name, word, "is not allowed to be empty")),
                    Some('?') => Ok(value),
                    Some(m @ ('#' | '%')) => {
                        let (greedy, pat) = match word.strip_prefix(m) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        let pat = ShellPattern::new(pat).map_err(|e| bad_pattern(pat, &e))?;
                        Ok(if m == '#' {
                            trim_prefix(&pat, &value, greedy)
                        } else {
                            trim_suffix(&pat, &value, greedy)
                        })
                    }
                    _ => Err(unsupported(&shown)),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pat = self.stop_on_raw('/', true).map_err(|e| match self.peek() {
                    None => syntax("syntax error: missing '/' in ${}"),
                    Some(_) => e,
                })?;
                let repl = self.braced_word(true)?;
                let value = value.unwrap_or_default();
                let compiled = ShellPattern::new(&pat).map_err(|e| bad_pattern(&pat, &e))?;
                Ok(replace(&compiled, &value, &repl, all))
            }
            other => Err(unsupported(&other.to_string())),
        }
    }
}

fn required(name: String, word: String, default: &str) -> ExpandError {
    ExpandError::Required {
        name,
        message: if word.is_empty() {
            default.to_owned()
        } else {
            word
        },
    }
}

fn unsupported(modifier: &str) -> ExpandError {
    syntax(format!("unsupported modifier ({modifier}) in substitution"))
}

fn bad_pattern(pat: &str, why: &str) -> ExpandError {
    syntax(format!("invalid pattern ({pat}) in substitution: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PWD" => Some("/home".into()),
            "SHELL" => Some("bash".into()),
            "KOREAN" => Some("한국어".into()),
            "NULL" => Some(String::new()),
            _ => None,
        }
    }

    /// BuildKit's own table for its shell lexer (frontend/dockerfile/shell/envVarTest),
    /// the cases that do not need the newer `#`, `%` and `/` modifiers.
    #[test]
    fn buildkit_env_var_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("hello", Some("hello")),
            ("he'll'o", Some("hello")),
            ("he'llo", None),
            (r"he\'llo", Some("he'llo")),
            (r"he\\'llo", None),
            (r"abc\tdef", Some("abctdef")),
            (r#""abc\tdef""#, Some(r"abc\tdef")),
            (r#""abc\\tdef""#, Some(r"abc\tdef")),
            (r"'abc\tdef'", Some(r"abc\tdef")),
            (r"hello\", Some("hello")),
            (r"hello\\", Some(r"hello\")),
            (r#""hello"#, None),
            (r#""hello\""#, None),
            (r#""hel'lo""#, Some("hel'lo")),
            ("'hello", None),
            (r"'hello\'", Some(r"hello\")),
            (r"'hello\there'", Some(r"hello\there")),
            (r#""''""#, Some("''")),
            ("$.", Some("$.")),
            ("$1", Some("")),
            ("he$1x", Some("hex")),
            ("he$.x", Some("he$.x")),
            ("he$pwd.", Some("he.")),
            ("he$PWD", Some("he/home")),
            (r"he\$PWD", Some("he$PWD")),
            (r"he\\$PWD", Some(r"he\/home")),
            (r#""he\$PWD""#, Some("he$PWD")),
            (r"'he\$PWD'", Some(r"he\$PWD")),
            (r"he\${}", Some("he${}")),
            ("he${}", None),
            ("he${PWD", None),
            ("he${PWD}", Some("he/home")),
            ("he${hi}xx", Some("hexx")),
            ("he${.}", None),
            ("he${XXX:-000}xx", Some("he000xx")),
            ("he${PWD:-000}xx", Some("he/homexx")),
            ("he${XXX:-$PWD}xx", Some("he/homexx")),
            ("he${XXX:-${PWD:-yyy}}xx", Some("he/homexx")),
            ("he${XXX:-${YYY:-yyy}}xx", Some("heyyyxx")),
            ("he${XXX:YYY}", None),
            ("he${XXX?}", None),
            ("he${XXX:?}", None),
            ("he${PWD?}", Some("he/home")),
            ("he${PWD:?}", Some("he/home")),
            ("he${NULL?}", Some("he")),
            ("he${NULL:?}", None),
            ("he${XXX:+${PWD}}xx", Some("hexx")),
            ("he${PWD:+${XXX}}xx", Some("hexx")),
            ("he${PWD:+${SHELL}}xx", Some("hebashxx")),
            ("he${XXX:+000}xx", Some("hexx")),
            ("he${PWD:+000}xx", Some("he000xx")),
            ("he${NULL-x}", Some("he")),
            ("he${XXX-x}", Some("hex")),
            ("he${NULL+x}", Some("hex")),
            ("he${XXX+x}", Some("he")),
            ("'he${XX}'", Some("he${XX}")),
            (r#""he${PWD}""#, Some("he/home")),
            (r#""he'$PWD'""#, Some("he'/home'")),
            (r#""$PWD""#, Some("/home")),
            ("'$PWD'", Some("$PWD")),
            (r"'\$PWD'", Some(r"\$PWD")),
            (r#"'"hello"'"#, Some(r#""hello""#)),
            ("he${PWD:=000}xx", None),
            ("he${PWD:+${PWD}:}xx", Some("he/home:xx")),
            (r"he${XXX:-\$PWD:}xx", Some("he$PWD:xx")),
            (r"he${XXX:-\${PWD}z}xx", Some("he${PWDz}xx")),
            ("안'녕'하세요", Some("안녕하세요")),
            ("안'녕하세요", None),
            ("안녕$KOREAN", Some("안녕한국어")),
            ("a b  c", Some("a b  c")),
        ];
        for (input, want) in cases {
            let got = expand(input, &env);
            match want {
                Some(w) => assert_eq!(got.as_deref(), Ok(*w), "input {input:?}"),
                None => assert!(got.is_err(), "input {input:?} gave {got:?}"),
            }
        }
    }

    /// The Dockerfile reference's "Environment replacement" example.
    #[test]
    fn reference_example() {
        let vars = |n: &str| (n == "FOO").then(|| "/bar".to_owned());
        assert_eq!(expand("${FOO}", &vars).unwrap(), "/bar");
        assert_eq!(expand("$FOO", &vars).unwrap(), "/bar");
        assert_eq!(expand(r"\$FOO", &vars).unwrap(), "$FOO");
        assert_eq!(expand("${FOO:-x}/a", &vars).unwrap(), "/bar/a");
        assert_eq!(expand("${NOPE:+word}", &vars).unwrap(), "");
    }

    #[test]
    fn required_message() {
        let e = expand("${X:?set X with --build-arg}", &|_| None).unwrap_err();
        assert_eq!(e.to_string(), "X: set X with --build-arg");
        let e = expand("${X?}", &|_| None).unwrap_err();
        assert_eq!(e.to_string(), "X: is not allowed to be unset");
    }

    #[test]
    fn backtick_escape() {
        let got = expand_with_escape("a`$X`b", '`', &|_| Some("v".into())).unwrap();
        assert_eq!(got, "a$Xb");
        let got = expand_with_escape(r"C:\dir", '`', &|_| None).unwrap();
        assert_eq!(got, r"C:\dir");
    }

    /// The pattern modifiers current BuildKit adds to its lexer.
    #[test]
    fn pattern_modifiers() {
        let vars = |n: &str| match n {
            "PWD" => Some("/home".to_owned()),
            "FILE" => Some("a.tar.gz".to_owned()),
            _ => None,
        };
        let cases = [
            ("${PWD#/}", "home"),
            ("${PWD%e}", "/hom"),
            ("${PWD/o/0}", "/h0me"),
            ("${FILE%.*}", "a.tar"),
            ("${FILE%%.*}", "a"),
            ("${FILE#*.}", "tar.gz"),
            ("${FILE##*.}", "gz"),
            ("${FILE//a/A}", "A.tAr.gz"),
            ("${FILE/#/x}", "a.tar.gz"),
            ("${XXX#x}", ""),
            ("${FILE#a\\*}", "a.tar.gz"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &vars).as_deref(), Ok(want), "input {input:?}");
        }
        for bad in ["${PWD:#x}", "${PWD:%x}", "${PWD/x", "${PWD#\\q}", "${PWD%x"] {
            assert!(expand(bad, &vars).is_err(), "{bad}");
        }
    }

    /// COPY heredoc bodies: variables substituted, quotes kept as content.
    #[test]
    fn heredoc_bodies_keep_quotes() {
        let vars = |n: &str| (n == "X").then(|| "x".to_owned());
        let got = expand_heredoc("echo \"$X\" '$X' \\$X ${Y:-y}\n", &vars).unwrap();
        assert_eq!(got, "echo \"x\" 'x' $X y\n");
    }

    #[test]
    fn unquote_keeps_dollar() {
        assert_eq!(unquote(r#""EOF""#, '\\').unwrap(), "EOF");
        assert_eq!(unquote("'$X'y$Z", '\\').unwrap(), "$Xy$Z");
        assert!(unquote("'open", '\\').is_err());
    }
}
