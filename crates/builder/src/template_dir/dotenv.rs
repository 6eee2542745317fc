//! `.env` files, read as a shell would source them (the seed's `setup.sh` did
//! `source .env`), without touching the process environment:
//!
//! - `KEY=VALUE` per line, `export KEY=VALUE` too; blank lines and `#` comment lines skipped.
//! - `KEY` is letters, digits, `_` and `.`, not starting with a digit.
//! - Unquoted values end at the line's end or at ` #` (a comment); surrounding spaces trimmed.
//! - `'...'` is literal; `"..."` understands `\n`, `\t`, `\r`, `\"`, `\\`, `\$`; both may
//!   span lines.
//! - `$NAME` and `${NAME}` in unquoted and double-quoted values take the value of a key set
//!   earlier in the same file, else empty (the process environment is never read).
//! - A key set twice keeps its first position and its last value.

use std::path::Path;
use std::sync::Arc;

use super::TemplateDirError;

/// Reads and parses the `.env` file at `path` (see the module doc for the rules).
///
/// Errors: [`TemplateDirError::Read`]; [`TemplateDirError::Dotenv`] with the line.
pub fn load_dotenv(path: &Path) -> Result<Vec<(String, String)>, TemplateDirError> {
    let text = std::fs::read_to_string(path).map_err(|e| TemplateDirError::Read {
        path: path.to_owned(),
        source: Arc::new(e),
    })?;
    parse_dotenv(&path.display().to_string(), &text)
}

/// Parses `.env` text; `file` names it in errors.
pub fn parse_dotenv(file: &str, text: &str) -> Result<Vec<(String, String)>, TemplateDirError> {
    let mut p = Parser {
        s: text.chars().collect(),
        i: 0,
        line: 1,
        file,
        out: Vec::new(),
    };
    p.run()?;
    Ok(p.out)
}

struct Parser<'a> {
    s: Vec<char>,
    i: usize,
    line: usize,
    file: &'a str,
    out: Vec<(String, String)>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn fail(&self, line: usize, message: impl Into<String>) -> TemplateDirError {
        TemplateDirError::Dotenv {
            file: self.file.to_owned(),
            line,
            message: message.into(),
        }
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    fn lookup(&self, name: &str) -> String {
        self.out
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn run(&mut self) -> Result<(), TemplateDirError> {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Ok(()),
                Some('\n') => {
                    self.bump();
                    continue;
                }
                Some('#') => {
                    self.skip_line();
                    continue;
                }
                Some(_) => {}
            }
            let line = self.line;
            let mut key = self.word();
            if key == "export" && matches!(self.peek(), Some(' ' | '\t')) {
                self.skip_blanks();
                key = self.word();
            }
            let valid = key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !valid {
                return Err(self.fail(
                    line,
                    "expected KEY=VALUE with a name of letters, digits and _",
                ));
            }
            self.skip_blanks();
            if self.bump() != Some('=') {
                return Err(self.fail(line, format!("{key} has no '=': write {key}=value")));
            }
            self.skip_blanks();
            let value = self.value(line)?;
            match self.out.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => self.out.push((key, value)),
            }
        }
    }

    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self.peek().filter(|c| !c.is_whitespace() && *c != '=') {
            w.push(c);
            self.bump();
        }
        w
    }

    /// The value, then the rest of its (last) line, which may only hold a comment.
    fn value(&mut self, line: usize) -> Result<String, TemplateDirError> {
        let value = match self.peek() {
            Some('\'') => {
                self.bump();
                let mut v = String::new();
                loop {
                    match self.bump() {
                        None => return Err(self.fail(line, "a single quote is never closed")),
                        Some('\'') => break,
                        Some(c) => v.push(c),
                    }
                }
                v
            }
            Some('"') => {
                self.bump();
                let mut v = String::new();
                loop {
                    match self.bump() {
                        None => return Err(self.fail(line, "a double quote is never closed")),
                        Some('"') => break,
                        Some('\\') => match self.bump() {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some('r') => v.push('\r'),
                            Some(c @ ('"' | '\\' | '$')) => v.push(c),
                            Some(c) => {
                                v.push('\\');
                                v.push(c);
                            }
                            None => return Err(self.fail(line, "a double quote is never closed")),
                        },
                        Some('$') => v.push_str(&self.variable()),
                        Some(c) => v.push(c),
                    }
                }
                v
            }
            _ => {
                let mut v = String::new();
                while let Some(c) = self.peek() {
                    if c == '\n' || (c == '#' && v.ends_with([' ', '\t'])) {
                        break;
                    }
                    self.bump();
                    if c == '$' {
                        v.push_str(&self.variable());
                    } else {
                        v.push(c);
                    }
                }
                return Ok(v.trim_end().to_owned());
            }
        };
        self.skip_blanks();
        match self.peek() {
            None | Some('\n' | '#') => {
                self.skip_line();
                Ok(value)
            }
            Some(_) => Err(self.fail(self.line, "unexpected text after a closing quote")),
        }
    }

    /// After a `$`: `NAME` or `{NAME}`, else a literal `$`.
    fn variable(&mut self) -> String {
        let braced = self.peek() == Some('{');
        let start = self.i;
        if braced {
            self.bump();
        }
        let mut name = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            name.push(c);
            self.bump();
        }
        if braced {
            if self.peek() == Some('}') && !name.is_empty() {
                self.bump();
            } else {
                self.i = start;
                return "$".to_owned();
            }
        }
        if name.is_empty() {
            return "$".to_owned();
        }
        self.lookup(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse_dotenv(".env", text).unwrap()
    }

    #[test]
    fn the_seed_env() {
        let text = "E2B_API_KEY=e2b_123\nAWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=abc/def+ghi\nAWS_REGION=us-east-1\nROMA_S3_BUCKET=your-bucket-name\n";
        let got = kv(text);
        assert_eq!(got.len(), 5);
        assert_eq!(
            got[2],
            ("AWS_SECRET_ACCESS_KEY".into(), "abc/def+ghi".into())
        );
    }

    #[test]
    fn quotes_comments_export_expansion() {
        let text = r#"
# comment
export A=1
B = two words   # trailing comment
C='lit $A # not a comment'
D="x\ty\n$A ${B}\$A"
E=a#b
F=$A$A${NOPE}
G="multi
line"  # ok
A=3
H=
"#;
        let got = kv(text);
        let map: std::collections::HashMap<_, _> = got.iter().cloned().collect();
        assert_eq!(got[0].0, "A");
        assert_eq!(map["A"], "3");
        assert_eq!(map["B"], "two words");
        assert_eq!(map["C"], "lit $A # not a comment");
        assert_eq!(map["D"], "x\ty\n1 two words$A");
        assert_eq!(map["E"], "a#b");
        assert_eq!(map["F"], "11");
        assert_eq!(map["G"], "multi\nline");
        assert_eq!(map["H"], "");
    }

    #[test]
    fn refusals_name_the_line() {
        let e = parse_dotenv(".env", "A=1\nnot a pair\n").unwrap_err();
        assert_eq!(e.to_string(), ".env:2: not has no '=': write not=value");
        let e = parse_dotenv(".env", "A=1\n\nB=\"open\n").unwrap_err();
        assert_eq!(e.to_string(), ".env:3: a double quote is never closed");
        let e = parse_dotenv(".env", "1A=x").unwrap_err();
        assert!(e.to_string().starts_with(".env:1: expected KEY=VALUE"));
        assert!(parse_dotenv(".env", "A='x' y").is_err());
    }
}
