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
    let mut lex = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        vars: Some(vars),
    };
    lex.stop_on(None)
}

/// Quote and escape removal only: `$` stays literal. Used for heredoc names, label and env
/// keys, and flag values, where Docker's parser removes quotes before any variable is known.
pub fn unquote(word: &str, escape: char) -> Result<String, ExpandError> {
    let mut lex = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        vars: None,
    };
    lex.stop_on(None)
}

/// How the lexer asks for a variable's value.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    /// `None`: no substitution, `$` is an ordinary character.
    vars: Option<Lookup<'a>>,
}

impl Lexer<'_> {
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
                '\'' => out.push_str(&self.single_quote()?),
                '"' => out.push_str(&self.double_quote()?),
                '$' if self.vars.is_some() => out.push_str(&self.dollar()?),
                _ => {
                    self.next();
                    if ch == self.escape {
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
        match self.next() {
            Some('}') => Ok(value.unwrap_or_default()),
            Some('?') => {
                let word = self.stop_on(Some('}'))?;
                match value {
                    Some(v) => Ok(v),
                    None => Err(required(name, word, "is not allowed to be unset")),
                }
            }
            Some(':') => {
                let modifier = self.next();
                let word = self.stop_on(Some('}')).map_err(|e| match self.peek() {
                    None => syntax("syntax error: missing '}'"),
                    Some(_) => e,
                })?;
                let value = value.unwrap_or_default();
                match modifier {
                    Some('+') => Ok(if value.is_empty() {
                        String::new()
                    } else {
                        word
                    }),
                    Some('-') => Ok(if value.is_empty() { word } else { value }),
                    Some('?') if value.is_empty() => {
                        Err(required(name, word, "is not allowed to be empty"))
                    }
                    Some('?') => Ok(value),
                    other => Err(unsupported(other)),
                }
            }
            Some('+') => {
                let word = self.stop_on(Some('}'))?;
                Ok(if value.is_some() { word } else { String::new() })
            }
            Some('-') => {
                let word = self.stop_on(Some('}'))?;
                Ok(value.unwrap_or(word))
            }
            None => Err(syntax("syntax error: missing '}'")),
            other => Err(unsupported(other)),
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

fn unsupported(modifier: Option<char>) -> ExpandError {
    let m = modifier.map(String::from).unwrap_or_default();
    syntax(format!("unsupported modifier ({m}) in substitution"))
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

    #[test]
    fn unquote_keeps_dollar() {
        assert_eq!(unquote(r#""EOF""#, '\\').unwrap(), "EOF");
        assert_eq!(unquote("'$X'y$Z", '\\').unwrap(), "$Xy$Z");
        assert!(unquote("'open", '\\').is_err());
    }
}
