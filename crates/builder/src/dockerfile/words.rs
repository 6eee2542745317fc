//! Splitting an instruction's arguments the way Docker's parser does: words with their
//! quotes kept (`parseWords`), leading `--flag` words (`extractBuilderFlags`), the JSON
//! (exec) form, and heredoc words (`<<EOF`).

use super::expand::unquote;

/// Splits `s` at unquoted whitespace, keeping quotes and escapes in the words (Docker's
/// `parseWords`, used for ENV, LABEL and ARG). `"a b"=c d` is `["\"a b\"=c", "d"]`.
pub fn split_words(s: &str) -> Vec<String> {
    split_words_at(s, '\\')
        .into_iter()
        .map(|(w, _)| w)
        .collect()
}

/// [`split_words`] with each word's byte offset in `s`.
pub(crate) fn split_words_at(s: &str, escape: char) -> Vec<(String, usize)> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut start = 0;
    let mut blank_ok = false;
    let mut it = s.char_indices().peekable();
    while let Some((pos, ch)) = it.next() {
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
            start = pos;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push((std::mem::take(&mut word), start));
                    }
                    phase = Phase::Spaces;
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    // An escape keeps itself and the next character, even a quote.
                    match it.next() {
                        None => continue,
                        Some((_, next)) => {
                            word.push(ch);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(ch);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                }
                if ch == escape && q != '\'' {
                    match it.next() {
                        None => {
                            phase = Phase::Word;
                            continue;
                        }
                        Some((_, next)) => {
                            word.push(ch);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(ch);
            }
            Phase::Spaces => {}
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push((word, start));
    }
    words
}

/// Splits at runs of whitespace with no quote handling (FROM, EXPOSE, COPY's shell form).
pub(crate) fn split_whitespace_at(s: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(st)) => {
                out.push((s[st..i].to_owned(), st));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((s[st..].to_owned(), st));
    }
    out
}

/// One `--name[=value]` word before an instruction's arguments, quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlagWord {
    pub name: String,
    pub value: Option<String>,
    /// Byte offset of the word in the arguments.
    pub offset: usize,
}

/// Takes the leading words that start with `--` (Docker's `extractBuilderFlags`, which
/// always uses `\` as its escape). Returns them and the offset where the rest begins.
pub(crate) fn extract_flags(args: &str) -> (Vec<FlagWord>, usize) {
    let mut flags = Vec::new();
    let chars: Vec<(usize, char)> = args.char_indices().collect();
    let mut i = 0;
    loop {
        while i < chars.len() && chars[i].1.is_whitespace() {
            i += 1;
        }
        let Some(&(start, _)) = chars.get(i) else {
            return (flags, args.len());
        };
        if !args[start..].starts_with("--") {
            return (flags, start);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&(_, ch)) = chars.get(i) {
            if quote.is_none() && ch.is_whitespace() {
                break;
            }
            i += 1;
            match (quote, ch) {
                (None, '\'' | '"') => quote = Some(ch),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => {
                    if let Some(&(_, next)) = chars.get(i) {
                        word.push(next);
                        i += 1;
                    }
                }
                (_, c) => word.push(c),
            }
        }
        if word == "--" {
            while i < chars.len() && chars[i].1.is_whitespace() {
                i += 1;
            }
            let rest = chars.get(i).map_or(args.len(), |&(o, _)| o);
            return (flags, rest);
        }
        let body = &word[2..];
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (body.to_owned(), None),
        };
        flags.push(FlagWord {
            name,
            value,
            offset: start,
        });
    }
}

/// How an argument string reads as Docker's exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonForm {
    /// Not a JSON array: the shell form.
    Shell,
    /// A JSON array of strings.
    Exec(Vec<String>),
    /// A JSON array with something other than strings in it: Docker refuses it.
    NotStrings,
}

/// Docker's `parseJSON`: the exec form is a valid JSON array whose items are all strings.
pub(crate) fn json_form(rest: &str) -> JsonForm {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return JsonForm::Shell;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Err(_) => JsonForm::Shell,
        Ok(items) => {
            let strings: Option<Vec<String>> = items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Some(s),
                    _ => None,
                })
                .collect();
            strings.map_or(JsonForm::NotStrings, JsonForm::Exec)
        }
    }
}

/// A heredoc opener found among an instruction's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeredocWord {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
    /// Byte offset of the word in the line it was found in.
    pub offset: usize,
    /// The word as written (`<<-"EOF"`).
    pub raw: String,
}

/// BuildKit's `ParseHeredoc`: a word `[fd]<<[-]NAME` where NAME may be quoted (then the
/// body is not expanded). `None` when the word is not a heredoc opener.
pub(crate) fn heredoc_word(word: &str, offset: usize, escape: char) -> Option<HeredocWord> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let after = word[digits..].strip_prefix("<<")?;
    // BuildKit's lexer keeps whitespace right after `<<` in the word (`<< EOF`).
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after.trim_start()),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = unquote(rest, escape).ok()?;
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return None;
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Some(HeredocWord {
        expand: quotes(&name) == quotes(rest),
        name,
        chomp,
        offset,
        raw: word.to_owned(),
    })
}

/// Whether `word` is `[fd]<<` alone, whose name is the next word (`<< EOF`).
pub(crate) fn is_bare_opener(word: &str) -> bool {
    word.trim_start_matches(|c: char| c.is_ascii_digit()) == "<<"
}

/// Joins each bare `<<` with the word after it, as BuildKit's lexer reads `<< EOF`.
pub(crate) fn join_bare_openers(words: Vec<(String, usize)>) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::with_capacity(words.len());
    let mut it = words.into_iter().peekable();
    while let Some((w, off)) = it.next() {
        if is_bare_opener(&w)
            && let Some((next, _)) = it.next_if(|_| true)
        {
            out.push((format!("{w} {next}"), off));
            continue;
        }
        out.push((w, off));
    }
    out
}

/// Every heredoc opener on a line, in order.
pub(crate) fn heredoc_words(line: &str, escape: char) -> Vec<HeredocWord> {
    join_bare_openers(split_words_at(line, escape))
        .into_iter()
        .filter_map(|(w, off)| heredoc_word(&w, off, escape))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            split_words(r#"A="a b" B=c\ d  'x y'"#),
            vec![r#"A="a b""#, r"B=c\ d", "'x y'"]
        );
        assert_eq!(split_words(r#"K="" L"#), vec![r#"K="""#, "L"]);
        assert_eq!(split_words("   "), Vec::<String>::new());
        let at = split_words_at("a  bc", '\\');
        assert_eq!(at, vec![("a".to_owned(), 0), ("bc".to_owned(), 3)]);
    }

    #[test]
    fn flags_before_the_command() {
        let (flags, rest) =
            extract_flags("--mount=type=secret,id=a --network=none  --link echo --x");
        let names: Vec<_> = flags.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["mount", "network", "link"]);
        assert_eq!(flags[0].value.as_deref(), Some("type=secret,id=a"));
        assert_eq!(flags[2].value, None);
        assert_eq!(flags[1].offset, 25);
        assert_eq!(rest, 48);
        let (flags, rest) = extract_flags(r#"--chown="a b" x"#);
        assert_eq!(flags[0].value.as_deref(), Some("a b"));
        assert_eq!(rest, 14);
        let (flags, rest) = extract_flags("-- --not-a-flag");
        assert!(flags.is_empty());
        assert_eq!(rest, 3);
    }

    #[test]
    fn json_or_shell() {
        assert_eq!(
            json_form(r#" ["a", "b c"]"#),
            JsonForm::Exec(vec!["a".into(), "b c".into()])
        );
        assert_eq!(json_form("[a, b]"), JsonForm::Shell);
        assert_eq!(json_form("echo [1]"), JsonForm::Shell);
        assert_eq!(json_form("[1, 2]"), JsonForm::NotStrings);
    }

    #[test]
    fn heredoc_openers() {
        let w = heredoc_words(r#"python3 <<EOF 2<<-"X" <<'Y' "<<NO" a<<NO"#, '\\');
        let got: Vec<_> = w
            .iter()
            .map(|h| (h.name.as_str(), h.expand, h.chomp))
            .collect();
        assert_eq!(
            got,
            [
                ("EOF", true, false),
                ("X", false, true),
                ("Y", false, false)
            ]
        );
        assert_eq!(w[0].offset, 8);
        assert!(heredoc_word("<<", 0, '\\').is_none());
        let w = heredoc_words("cat << EOF > f", '\\');
        assert_eq!((w[0].name.as_str(), w[0].offset), ("EOF", 4));
        assert!(heredoc_word("<<<EOF", 0, '\\').is_none());
    }
}
