//! Environment variables for one execution, set and restored by hidden cells that never
//! splice a name or value into code: the variables travel as base64 of JSON (Python) or of
//! NUL-separated `KEY=VALUE` records (bash), and base64's alphabet cannot end a string literal.

use std::collections::BTreeMap;

use base64::Engine;

/// Why a set of variables is refused before anything runs.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// Empty, or containing `=` or NUL (no process environment can hold it).
    #[error("invalid environment variable name {0:?}")]
    Name(String),
    /// A value containing NUL.
    #[error("the value of {0} contains a NUL byte")]
    Value(String),
}

/// Checks names and values. Bash gets shell identifiers only: `export` evaluates array
/// subscripts in a name, so `a[$(cmd)]` must never reach it.
pub fn validate(vars: &BTreeMap<String, String>, language: &str) -> Result<(), EnvError> {
    for (k, v) in vars {
        let plain = !k.is_empty() && !k.contains('=') && !k.contains('\0');
        let identifier = k
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
        if !plain || (language == "bash" && !identifier) {
            return Err(EnvError::Name(k.clone()));
        }
        if v.contains('\0') {
            return Err(EnvError::Value(k.clone()));
        }
    }
    Ok(())
}

/// Hidden cells for one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvCells {
    /// Sets the variables, remembering what they were.
    pub set: String,
    /// Puts back what `set` remembered (removing variables that did not exist).
    pub restore: String,
}

/// The cells that set `vars` for one execution and restore them afterwards, or `None` for a
/// language without per-execution variables.
pub fn cells(language: &str, vars: &BTreeMap<String, String>) -> Option<EnvCells> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match language {
        "python" => {
            let blob = b64.encode(serde_json::to_vec(vars).ok()?);
            Some(EnvCells {
                set: format!(
                    "(lambda os, new: (setattr(os, '_bulkhead_saved_env', {{k: os.environ.get(k) for k in new}}), os.environ.update(new)))(__import__('os'), __import__('json').loads(__import__('base64').b64decode('{blob}').decode('utf-8')))"
                ),
                restore: "(lambda os: [os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v) for k, v in os.__dict__.pop('_bulkhead_saved_env', {}).items()])(__import__('os'))".to_owned(),
            })
        }
        "bash" => {
            let mut records = Vec::new();
            for (k, v) in vars {
                records.extend_from_slice(k.as_bytes());
                records.push(b'=');
                records.extend_from_slice(v.as_bytes());
                records.push(0);
            }
            let blob = b64.encode(records);
            Some(EnvCells {
                set: format!(
                    "__bh_saved=(); while IFS= read -r -d '' __bh_kv; do __bh_k=${{__bh_kv%%=*}}; if [[ -v $__bh_k ]]; then __bh_saved+=(\"$__bh_k=${{!__bh_k}}\"); else __bh_saved+=(\"$__bh_k\"); fi; export \"$__bh_kv\"; done < <(printf %s '{blob}' | base64 -d); unset __bh_kv __bh_k"
                ),
                restore: "for __bh_kv in \"${__bh_saved[@]}\"; do if [[ $__bh_kv == *=* ]]; then export \"$__bh_kv\"; else unset \"$__bh_kv\"; fi; done; unset __bh_saved __bh_kv".to_owned(),
            })
        }
        _ => None,
    }
}

/// A hidden cell that sets the sandbox-wide variables for good (first use of a context).
pub fn global_cell(language: &str, vars: &BTreeMap<String, String>) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match language {
        "python" => {
            let blob = b64.encode(serde_json::to_vec(vars).ok()?);
            Some(format!(
                "__import__('os').environ.update(__import__('json').loads(__import__('base64').b64decode('{blob}').decode('utf-8')))"
            ))
        }
        "bash" => cells(language, vars).map(|c| format!("{}; unset __bh_saved", c.set)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn hostile_values_never_appear_in_the_code() {
        let hostile = "'); import os; os.system('id') #\n\"$(id)\"`id`\\";
        let v = vars(&[("X", hostile)]);
        for lang in ["python", "bash"] {
            let c = cells(lang, &v).expect("supported");
            assert!(
                !c.set.contains("os.system"),
                "{lang}: value spliced into code"
            );
            assert!(!c.set.contains("$(id)"), "{lang}: value spliced into code");
            assert!(!c.set.contains('\n'), "{lang}: the cell is one line");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate(&vars(&[("A_1", "x")]), "python"), Ok(()));
        assert!(validate(&vars(&[("", "x")]), "python").is_err());
        assert!(validate(&vars(&[("A=B", "x")]), "python").is_err());
        assert!(validate(&vars(&[("A", "x\0y")]), "python").is_err());
        assert_eq!(validate(&vars(&[("my-var", "x")]), "python"), Ok(()));
        assert!(validate(&vars(&[("my-var", "x")]), "bash").is_err());
        assert!(validate(&vars(&[("a[$(id)]", "x")]), "bash").is_err());
        assert!(validate(&vars(&[("1A", "x")]), "bash").is_err());
    }

    #[test]
    fn other_languages_have_no_cells() {
        assert!(cells("r", &vars(&[("A", "b")])).is_none());
    }
}
