//! The lines of the `/execute` response stream (E2B wire contract, spec §4.2): one JSON object
//! per line, each ended by `\n`, never a blank line.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

/// One line of the stream. Serialised with a `type` tag; field names as on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputLine {
    /// Text the cell wrote to stdout (may hold several lines).
    Stdout {
        /// The text.
        text: String,
        /// The kernel message's ISO-8601 date, passed through.
        timestamp: Value,
    },
    /// Text the cell wrote to stderr.
    Stderr {
        /// The text.
        text: String,
        /// The kernel message's ISO-8601 date, passed through.
        timestamp: Value,
    },
    /// A rich result: the MIME fields of [`crate::mime::result_fields`] and `is_main_result`.
    Result(Map<String, Value>),
    /// The cell raised.
    Error {
        /// Exception class, e.g. `ValueError`.
        name: String,
        /// Exception message.
        value: String,
        /// The traceback lines joined with `\n`.
        traceback: String,
    },
    /// The cell's execution count.
    NumberOfExecutions {
        /// Jupyter's `execution_count`.
        execution_count: i64,
    },
    /// Sent after a quiet interval so that a client that went away is noticed.
    Keepalive,
    /// Always the last line of a stream that ended normally.
    EndOfExecution,
}

impl OutputLine {
    /// The line as sent: compact JSON and one `\n`. JSON never contains a raw newline, so
    /// a line is never split or blank.
    pub fn encode(&self) -> Bytes {
        // Serialising these types cannot fail: every key is a string and no value is a
        // float NaN (they come from parsed JSON or from our own integers and strings).
        let mut buf = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"type":"error","name":"EncodingError","value":"unencodable output","traceback":""}"#.to_vec()
        });
        buf.push(b'\n');
        Bytes::from(buf)
    }

    /// An error line made by the server itself (not by the kernel).
    pub fn server_error(name: &str, value: impl Into<String>) -> Self {
        Self::Error {
            name: name.to_owned(),
            value: value.into(),
            traceback: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(line: &OutputLine) -> Value {
        let bytes = line.encode();
        assert!(bytes.ends_with(b"\n"));
        let body = &bytes[..bytes.len() - 1];
        assert!(!body.contains(&b'\n'), "a line must not contain a newline");
        serde_json::from_slice(body).expect("valid JSON")
    }

    #[test]
    fn stdout_keeps_newlines_inside_the_json_string() {
        let line = OutputLine::Stdout {
            text: "a\nb\n".into(),
            timestamp: json!("2026-01-01T00:00:00.000000Z"),
        };
        assert_eq!(
            decode(&line),
            json!({"type": "stdout", "text": "a\nb\n", "timestamp": "2026-01-01T00:00:00.000000Z"})
        );
    }

    #[test]
    fn stderr_is_tagged_stderr() {
        let line = OutputLine::Stderr {
            text: "oops".into(),
            timestamp: Value::Null,
        };
        assert_eq!(decode(&line)["type"], "stderr");
    }

    #[test]
    fn result_fields_are_flattened_beside_the_tag() {
        let mut m = Map::new();
        m.insert("text".into(), json!("2"));
        m.insert("is_main_result".into(), json!(true));
        m.insert("extra".into(), json!({}));
        assert_eq!(
            decode(&OutputLine::Result(m)),
            json!({"type": "result", "text": "2", "is_main_result": true, "extra": {}})
        );
    }

    #[test]
    fn error_has_name_value_and_one_traceback_string() {
        let line = OutputLine::Error {
            name: "ValueError".into(),
            value: "boom".into(),
            traceback: "Traceback\nValueError: boom".into(),
        };
        assert_eq!(
            decode(&line),
            json!({"type": "error", "name": "ValueError", "value": "boom",
                   "traceback": "Traceback\nValueError: boom"})
        );
    }

    #[test]
    fn control_lines_match_the_reference() {
        assert_eq!(
            decode(&OutputLine::NumberOfExecutions { execution_count: 3 }),
            json!({"type": "number_of_executions", "execution_count": 3})
        );
        assert_eq!(decode(&OutputLine::Keepalive), json!({"type": "keepalive"}));
        assert_eq!(
            decode(&OutputLine::EndOfExecution),
            json!({"type": "end_of_execution"})
        );
    }

    #[test]
    fn hostile_text_round_trips() {
        let text = "quote ' \" $(rm -rf /) \u{0} \r\n \u{2028} é";
        let line = OutputLine::Stdout {
            text: text.into(),
            timestamp: Value::Null,
        };
        assert_eq!(decode(&line)["text"], text);
    }
}
