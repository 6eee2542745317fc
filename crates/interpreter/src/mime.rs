//! From a Jupyter MIME bundle to the fields of a `result` line (spec §4.2), as E2B's server
//! names them.

use serde_json::{Map, Value};

/// MIME type → result field, in the order E2B documents them. Everything else goes to
/// `extra`.
const FIELDS: &[(&str, &str)] = &[
    ("text/plain", "text"),
    ("text/html", "html"),
    ("text/markdown", "markdown"),
    ("image/svg+xml", "svg"),
    ("image/png", "png"),
    ("image/jpeg", "jpeg"),
    ("application/pdf", "pdf"),
    ("text/latex", "latex"),
    ("application/json", "json"),
    ("application/javascript", "javascript"),
    ("e2b/data", "data"),
    ("e2b/chart", "chart"),
];

/// The fields of one `result` line for a bundle (`data` of `execute_result` or
/// `display_data`). Null values are left out; `extra` is always present (`{}` when every
/// MIME type had a field of its own); `is_main_result` is set. `text` loses one pair of
/// surrounding single quotes, as E2B's server does (a Python `str` repr).
pub fn result_fields(data: &Map<String, Value>, is_main_result: bool) -> Map<String, Value> {
    let mut out = Map::new();
    let mut extra = Map::new();
    for (mime, value) in data {
        if value.is_null() {
            continue;
        }
        match FIELDS.iter().find(|(m, _)| m == mime) {
            Some((_, "text")) => {
                out.insert("text".into(), Value::String(strip_quotes(value)));
            }
            Some((_, field)) => {
                out.insert((*field).into(), join_lines(value));
            }
            None => {
                extra.insert(mime.clone(), value.clone());
            }
        }
    }
    out.insert("extra".into(), Value::Object(extra));
    out.insert("is_main_result".into(), Value::Bool(is_main_result));
    out
}

/// Jupyter allows multi-line strings as arrays of lines; the SDKs want one string.
fn join_lines(value: &Value) -> Value {
    match value {
        Value::Array(parts) if parts.iter().all(Value::is_string) => {
            Value::String(parts.iter().filter_map(Value::as_str).collect())
        }
        other => other.clone(),
    }
}

fn strip_quotes(value: &Value) -> String {
    let text = match join_lines(value) {
        Value::String(s) => s,
        other => other.to_string(),
    };
    if text.len() >= 2 && text.starts_with('\'') && text.ends_with('\'') {
        text[1..text.len() - 1].to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn every_documented_mime_type_gets_its_field() {
        let data = bundle(json!({
            "text/plain": "1", "text/html": "<b>", "text/markdown": "# m", "image/svg+xml": "<svg/>",
            "image/png": "iVBOR", "image/jpeg": "/9j/", "application/pdf": "JVBE", "text/latex": "$x$",
            "application/json": {"a": 1}, "application/javascript": "alert(1)",
            "e2b/data": {"x": [1]}, "e2b/chart": {"type": "line", "elements": []},
        }));
        let out = result_fields(&data, true);
        for field in [
            "text",
            "html",
            "markdown",
            "svg",
            "png",
            "jpeg",
            "pdf",
            "latex",
            "json",
            "javascript",
            "data",
            "chart",
        ] {
            assert!(out.contains_key(field), "{field} missing");
        }
        assert_eq!(out["json"], json!({"a": 1}));
        assert_eq!(out["extra"], json!({}));
        assert_eq!(out["is_main_result"], json!(true));
    }

    #[test]
    fn unknown_types_go_to_extra_and_nulls_are_dropped() {
        let data =
            bundle(json!({"application/vnd.plotly.v1+json": {"data": []}, "text/html": null}));
        let out = result_fields(&data, false);
        assert_eq!(
            out["extra"],
            json!({"application/vnd.plotly.v1+json": {"data": []}})
        );
        assert!(!out.contains_key("html"));
        assert_eq!(out["is_main_result"], json!(false));
    }

    #[test]
    fn text_loses_one_pair_of_single_quotes_only() {
        let t = |s: &str| result_fields(&bundle(json!({"text/plain": s})), true)["text"].clone();
        assert_eq!(t("'abc'"), json!("abc"));
        assert_eq!(t("\"it's\""), json!("\"it's\""));
        assert_eq!(t("'"), json!("'"));
        assert_eq!(t("21"), json!("21"));
    }

    #[test]
    fn multi_line_arrays_are_joined() {
        let out = result_fields(&bundle(json!({"text/html": ["<p>", "x</p>"]})), false);
        assert_eq!(out["html"], json!("<p>x</p>"));
    }
}
