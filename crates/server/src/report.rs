//! Errors as one line for the log: the error and each of its sources, joined by ": ".

use std::error::Error;

/// `e` and its whole `source()` chain, e.g. `"envd setup failed: connecting to envd:
/// connection refused"`.
pub(crate) fn chain(e: &(dyn Error + 'static)) -> String {
    std::iter::successors(Some(e), |e| (*e).source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
