//! Lines into logical instructions, as Docker's parser reads them: parser directives at the
//! top, comments, line continuations (comment and blank lines inside a continuation are
//! skipped), and heredoc bodies after the line that opens them. Each logical line keeps a
//! map from its offsets back to source line and column, so later errors can point at a token.

use super::words::heredoc_words;
use super::{Fail, Heredoc, Loc};

/// The directives and logical lines of one Dockerfile.
#[derive(Debug, Clone)]
pub(crate) struct Lexed {
    pub escape: char,
    pub lines: Vec<LogicalLine>,
}

/// One instruction: its continuation lines joined, heredoc bodies read.
#[derive(Debug, Clone)]
pub(crate) struct LogicalLine {
    /// Where the instruction's keyword is.
    pub loc: Loc,
    /// Leading whitespace and continuation escapes removed, trailing whitespace trimmed.
    pub joined: String,
    /// `joined`, then each heredoc's body and terminator as written.
    pub text: String,
    pub heredocs: Vec<Heredoc>,
    segs: Vec<Seg>,
}

/// A run of `joined` that comes from one source line.
#[derive(Debug, Clone)]
struct Seg {
    start: usize,
    line: usize,
    col: usize,
}

impl LogicalLine {
    /// Source position of byte `offset` of `joined`.
    pub fn loc_at(&self, offset: usize) -> Loc {
        let offset = offset.min(self.joined.len());
        let seg = self
            .segs
            .iter()
            .rev()
            .find(|s| s.start <= offset)
            .unwrap_or(&self.segs[0]);
        let chars = self
            .joined
            .get(seg.start..offset)
            .map_or(0, |s| s.chars().count());
        Loc {
            line: seg.line,
            col: seg.col + chars,
        }
    }
}

fn fail(line: usize, col: usize, message: impl Into<String>) -> Fail {
    Fail {
        loc: Loc { line, col },
        message: message.into(),
    }
}

/// `# name=value` at the top of the file (Docker's directive pattern).
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let rest = rest.trim_start_matches([' ', '\t']);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_alphanumeric())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, after) = rest.split_at(name_len);
    let value = after
        .trim_start_matches([' ', '\t'])
        .strip_prefix('=')?
        .trim_matches([' ', '\t']);
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_owned()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a continuation escape (the escape character, then only spaces or tabs) from the
/// end of `line`; `true` when there was one.
fn continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(head) => (head, true),
        None => (line, false),
    }
}

fn can_have_heredoc(joined: &str) -> bool {
    let kw = joined.split_whitespace().next().unwrap_or_default();
    ["RUN", "COPY", "ADD"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(kw))
}

/// Reads directives and logical lines. Fails on a repeated or invalid directive and on an
/// unterminated heredoc.
pub(crate) fn lex(text: &str) -> Result<Lexed, Fail> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let raw: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut escape = '\\';
    let mut seen: Vec<String> = Vec::new();
    let mut directives_done = false;
    let mut lines = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let line_no = i + 1;
        let line = raw[i];
        i += 1;
        if !directives_done {
            match directive(line) {
                Some((name, value)) if ["syntax", "escape", "check"].contains(&name.as_str()) => {
                    if seen.contains(&name) {
                        return Err(fail(
                            line_no,
                            1,
                            format!("only one {name} parser directive can be used"),
                        ));
                    }
                    if name == "escape" {
                        escape = match value.as_str() {
                            "\\" => '\\',
                            "`" => '`',
                            _ => {
                                return Err(fail(
                                    line_no,
                                    1,
                                    format!(
                                        "invalid escape token {value:?}: the escape directive takes \\ or `"
                                    ),
                                ));
                            }
                        };
                    }
                    seen.push(name);
                    continue;
                }
                _ => directives_done = true,
            }
        }
        let stripped = line.trim_start();
        if stripped.is_empty() || stripped.starts_with('#') {
            continue;
        }
        let lead = line.chars().count() - stripped.chars().count();
        let (head, mut more) = continuation(stripped, escape);
        let mut joined = head.to_owned();
        let mut segs = vec![Seg {
            start: 0,
            line: line_no,
            col: lead + 1,
        }];
        while more && i < raw.len() {
            let next = raw[i];
            i += 1;
            if is_comment(next) || next.trim().is_empty() {
                continue;
            }
            let (head, m) = continuation(next, escape);
            more = m;
            segs.push(Seg {
                start: joined.len(),
                line: i,
                col: 1,
            });
            joined.push_str(head);
        }
        let trimmed_len = joined.trim_end().len();
        joined.truncate(trimmed_len);
        if joined.trim().is_empty() {
            continue;
        }
        let mut logical = LogicalLine {
            loc: Loc {
                line: line_no,
                col: lead + 1,
            },
            text: joined.clone(),
            joined,
            heredocs: Vec::new(),
            segs,
        };
        if can_have_heredoc(&logical.joined) && logical.joined.contains("<<") {
            for word in heredoc_words(&logical.joined, escape) {
                let mut body = String::new();
                let mut raw_body = String::new();
                let mut terminated = false;
                while i < raw.len() {
                    let l = raw[i];
                    i += 1;
                    let candidate = if word.chomp {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    if candidate == word.name {
                        raw_body.push_str(l);
                        terminated = true;
                        break;
                    }
                    raw_body.push_str(l);
                    raw_body.push('\n');
                    body.push_str(candidate);
                    body.push('\n');
                }
                if !terminated {
                    let at = logical.loc_at(word.offset);
                    return Err(fail(
                        at.line,
                        at.col,
                        format!(
                            "heredoc {} is never terminated: no line reads {}",
                            word.raw, word.name
                        ),
                    ));
                }
                logical.text.push('\n');
                logical.text.push_str(&raw_body);
                logical.heredocs.push(Heredoc {
                    name: word.name,
                    body,
                    expand: word.expand,
                    chomp_tabs: word.chomp,
                });
            }
        }
        lines.push(logical);
    }
    Ok(Lexed { escape, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_only_at_the_top() {
        let l = lex("# syntax=docker/dockerfile:1\n#escape=`\nFROM a\n# escape=\\\nRUN x `\n y")
            .unwrap();
        assert_eq!(l.escape, '`');
        assert_eq!(l.lines.len(), 2);
        assert_eq!(l.lines[1].joined, "RUN x  y");
        // An unknown directive ends the directives: the escape below is a comment.
        let l = lex("# unknown=x\n# escape=`\nFROM a").unwrap();
        assert_eq!(l.escape, '\\');
        let e = lex("# escape=\\\n# escape=`\nFROM a").unwrap_err();
        assert_eq!(e.loc, Loc { line: 2, col: 1 });
        assert!(lex("# escape=x\nFROM a").is_err());
    }

    #[test]
    fn continuations_skip_comments_and_blank_lines() {
        let src = "FROM a\n  RUN apt-get update && \\\n# comment\n\n    apt-get install -y x \\  \n  && true\n";
        let l = lex(src).unwrap();
        let run = &l.lines[1];
        assert_eq!(
            run.joined,
            "RUN apt-get update &&     apt-get install -y x   && true"
        );
        assert_eq!(run.loc, Loc { line: 2, col: 3 });
        let at = run.joined.find("install").unwrap();
        assert_eq!(run.loc_at(at), Loc { line: 5, col: 13 });
        let at = run.joined.find("true").unwrap();
        assert_eq!(run.loc_at(at), Loc { line: 6, col: 6 });
    }

    #[test]
    fn heredoc_bodies() {
        let src = "FROM a\nRUN <<EOF\necho hi\n# not a comment\nEOF\nCOPY <<-A <<\"B\" /d/\n\tone\n\tA\ntwo $X\nB\nRUN x\r\n";
        let l = lex(src).unwrap();
        assert_eq!(l.lines.len(), 4);
        let run = &l.lines[1];
        assert_eq!(run.heredocs[0].body, "echo hi\n# not a comment\n");
        assert!(run.heredocs[0].expand);
        assert_eq!(run.text, "RUN <<EOF\necho hi\n# not a comment\nEOF");
        let copy = &l.lines[2];
        assert_eq!(copy.heredocs[0].body, "one\n");
        assert!(copy.heredocs[0].chomp_tabs);
        assert_eq!(copy.heredocs[1].body, "two $X\n");
        assert!(!copy.heredocs[1].expand);
        assert_eq!(l.lines[3].joined, "RUN x");
        let e = lex("FROM a\nRUN cat <<EOF\nno end\n").unwrap_err();
        assert_eq!(e.loc, Loc { line: 2, col: 9 });
    }
}
