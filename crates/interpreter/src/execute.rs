//! Running one cell on a kernel and turning its messages into stream lines (spec §4.2):
//! `execute_input` → `number_of_executions`, `stream` → `stdout`/`stderr`, `execute_result` and
//! `display_data` → `result`, the first `error` → `error`; `status: idle` ends the cell.
//!
//! A deadline or a client that went away interrupts the cell (SIGINT); a cell that is still
//! busy `interrupt_grace` later is reported as unresponsive, for the caller to kill its kernel.

use std::time::Duration;

use bytes::Bytes;
use jupyter_protocol::{ExecuteRequest, JupyterMessage};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::KernelError;
use crate::kernel::{Kernel, KernelMessage};
use crate::mime::result_fields;
use crate::ndjson::OutputLine;

/// Why a cell was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The execution's deadline passed.
    Deadline,
    /// Nobody reads the stream any more.
    ClientGone,
}

/// How a cell ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CellEnd {
    /// The kernel went idle (after an interrupt, when `Some`).
    Finished(Option<Stop>),
    /// Interrupted, and still busy after the grace period.
    Unresponsive(Stop),
    /// The kernel process ended during the cell.
    KernelDied(String),
}

/// Where lines go: the response stream of one `/execute`, or nowhere (hidden cells).
pub(crate) struct Output {
    tx: Option<mpsc::Sender<Bytes>>,
    error_sent: bool,
    ended: bool,
}

impl Output {
    /// Lines go to `tx`.
    pub fn to(tx: mpsc::Sender<Bytes>) -> Self {
        Self {
            tx: Some(tx),
            error_sent: false,
            ended: false,
        }
    }

    /// Lines are dropped.
    pub fn discard() -> Self {
        Self {
            tx: None,
            error_sent: false,
            ended: true,
        }
    }

    /// Sends a line; only the first `error` of an execution is kept, as E2B does. A reader
    /// that went away is not an error (see [`Output::closed`]).
    pub async fn send(&mut self, line: OutputLine) {
        if matches!(line, OutputLine::Error { .. }) {
            if self.error_sent {
                return;
            }
            self.error_sent = true;
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(line.encode()).await;
        }
    }

    /// Sends `end_of_execution` (once) and detaches: later lines are dropped.
    pub async fn finish(&mut self) {
        if !self.ended {
            self.send(OutputLine::EndOfExecution).await;
            self.ended = true;
        }
        self.tx = None;
    }

    /// Whether the reader has gone away (never, for a discarding output).
    pub fn is_closed(&self) -> bool {
        self.tx.as_ref().is_some_and(mpsc::Sender::is_closed)
    }

    /// Resolves when the reader goes away.
    async fn closed(&self) {
        match &self.tx {
            Some(tx) => tx.closed().await,
            None => std::future::pending().await,
        }
    }

    fn streams(&self) -> bool {
        self.tx.is_some()
    }

    /// Drops the reader (it went away): nothing more is sent.
    fn detach(&mut self) {
        self.tx = None;
        self.ended = true;
    }
}

/// Timing of one cell.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// When to interrupt; `None` = never (only a client that goes away does).
    pub deadline: Option<Instant>,
    /// How long a cell interrupted at its deadline may take to stop before the stream ends
    /// with `TimeoutError` (the kernel keeps its chance to stop until `kill_after`).
    pub grace: Duration,
    /// How long an interrupted cell may take to stop before it is reported unresponsive
    /// (and its kernel killed by the caller).
    pub kill_after: Duration,
    /// Quiet interval before a `keepalive` line.
    pub keepalive: Duration,
    /// How long to keep reading after `status: idle` (0 for kernels that keep the
    /// protocol's order).
    pub settle: Duration,
}

/// Runs `code` and streams its lines to `out` (all but `end_of_execution`, which is the
/// caller's). A `silent` cell has no execution count and no history entry.
pub(crate) async fn run(
    kernel: &Kernel,
    code: &str,
    silent: bool,
    out: &mut Output,
    timing: Timing,
) -> Result<CellEnd, KernelError> {
    let message: JupyterMessage = ExecuteRequest {
        code: code.to_owned(),
        silent,
        store_history: !silent,
        user_expressions: None,
        allow_stdin: false,
        stop_on_error: true,
    }
    .into();
    let id = message.header.msg_id.clone();
    let mut rx = kernel.request(message).await?;
    let result = pump(kernel, &mut rx, out, timing).await;
    kernel.forget(&id);
    Ok(result)
}

async fn pump(
    kernel: &Kernel,
    rx: &mut mpsc::UnboundedReceiver<KernelMessage>,
    out: &mut Output,
    timing: Timing,
) -> CellEnd {
    let mut stopped: Option<(Stop, Instant)> = None;
    loop {
        let timer = match (stopped, timing.deadline) {
            (Some((Stop::Deadline, at)), _) if out.streams() => Some(at + timing.grace),
            (Some((_, at)), _) => Some(at + timing.kill_after),
            (None, d) => d,
        };
        let client_watch = stopped.is_none() && out.streams();
        tokio::select! {
            biased;
            m = rx.recv() => match m {
                Some(m) => {
                    if forward(&m, out).await {
                        // Kernels that publish a cell's last messages after going idle
                        // (Deno's) get a short while more.
                        if !timing.settle.is_zero() {
                            let until = tokio::time::Instant::now() + timing.settle;
                            while let Ok(Some(m)) = tokio::time::timeout_at(until, rx.recv()).await {
                                let _ = forward(&m, out).await;
                            }
                        }
                        return CellEnd::Finished(stopped.map(|(s, _)| s));
                    }
                }
                None => return CellEnd::KernelDied(kernel.exited().await),
            },
            () = sleep_until(timer) => match stopped {
                Some((stop, _)) if !out.streams() => return CellEnd::Unresponsive(stop),
                Some(_) => {
                    // The stream ends on time; the kernel still gets until `kill_after`.
                    out.send(OutputLine::server_error(
                        "TimeoutError",
                        "the execution passed its deadline and was interrupted; if it ignores the interrupt, the context's kernel is restarted and its state lost",
                    ))
                    .await;
                    out.finish().await;
                }
                None => {
                    kernel.interrupt();
                    stopped = Some((Stop::Deadline, Instant::now()));
                }
            },
            () = out.closed(), if client_watch => {
                kernel.interrupt();
                stopped = Some((Stop::ClientGone, Instant::now()));
                out.detach();
            },
            () = tokio::time::sleep(timing.keepalive), if out.streams() => {
                out.send(OutputLine::Keepalive).await;
            },
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Forwards one kernel message; true when it ends the cell (`status: idle`).
async fn forward(m: &KernelMessage, out: &mut Output) -> bool {
    let c = &m.content;
    let text = |key: &str| c.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    match m.msg_type.as_str() {
        "status" => return c.get("execution_state").and_then(Value::as_str) == Some("idle"),
        "execute_input" => {
            if let Some(n) = c.get("execution_count").and_then(Value::as_i64) {
                out.send(OutputLine::NumberOfExecutions { execution_count: n })
                    .await;
            }
        }
        "stream" => {
            let line = if text("name") == "stderr" {
                OutputLine::Stderr {
                    text: text("text"),
                    timestamp: m.date.clone(),
                }
            } else {
                OutputLine::Stdout {
                    text: text("text"),
                    timestamp: m.date.clone(),
                }
            };
            out.send(line).await;
        }
        "execute_result" | "display_data" => {
            if let Some(data) = c.get("data").and_then(Value::as_object) {
                let main = m.msg_type == "execute_result";
                out.send(OutputLine::Result(result_fields(data, main)))
                    .await;
            }
        }
        "error" => {
            let traceback = c
                .get("traceback")
                .and_then(Value::as_array)
                .map(|lines| {
                    lines
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            out.send(OutputLine::Error {
                name: text("ename"),
                value: text("evalue"),
                traceback,
            })
            .await;
        }
        _ => {}
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn lines_for(messages: Vec<(&str, Value)>) -> (Vec<Value>, bool) {
        let (tx, mut rx) = mpsc::channel(64);
        let mut out = Output::to(tx);
        let mut ended = false;
        for (t, content) in messages {
            let m = KernelMessage {
                msg_type: t.to_owned(),
                content,
                date: json!("2026-01-01T00:00:00.000000Z"),
            };
            ended = forward(&m, &mut out).await;
        }
        drop(out);
        let mut lines = Vec::new();
        while let Some(b) = rx.recv().await {
            lines.push(serde_json::from_slice(&b).expect("json"));
        }
        (lines, ended)
    }

    #[tokio::test]
    async fn a_cell_maps_to_the_e2b_lines() {
        let (lines, ended) = lines_for(vec![
            ("status", json!({"execution_state": "busy"})),
            ("execute_input", json!({"code": "x", "execution_count": 4})),
            ("stream", json!({"name": "stdout", "text": "hi\n"})),
            ("stream", json!({"name": "stderr", "text": "warn\n"})),
            (
                "display_data",
                json!({"data": {"image/png": "iVBOR", "text/plain": "<Figure>"}, "metadata": {}}),
            ),
            (
                "execute_result",
                json!({"data": {"text/plain": "2"}, "execution_count": 4}),
            ),
            (
                "error",
                json!({"ename": "ValueError", "evalue": "boom", "traceback": ["a", "b"]}),
            ),
            (
                "error",
                json!({"ename": "Second", "evalue": "dropped", "traceback": []}),
            ),
            ("status", json!({"execution_state": "idle"})),
        ])
        .await;
        assert!(ended);
        assert_eq!(
            lines,
            vec![
                json!({"type": "number_of_executions", "execution_count": 4}),
                json!({"type": "stdout", "text": "hi\n", "timestamp": "2026-01-01T00:00:00.000000Z"}),
                json!({"type": "stderr", "text": "warn\n", "timestamp": "2026-01-01T00:00:00.000000Z"}),
                json!({"type": "result", "png": "iVBOR", "text": "<Figure>", "extra": {}, "is_main_result": false}),
                json!({"type": "result", "text": "2", "extra": {}, "is_main_result": true}),
                json!({"type": "error", "name": "ValueError", "value": "boom", "traceback": "a\nb"}),
            ]
        );
    }

    #[tokio::test]
    async fn busy_and_unknown_messages_do_not_end_the_cell() {
        let (lines, ended) = lines_for(vec![
            ("status", json!({"execution_state": "busy"})),
            ("comm_open", json!({})),
            ("execute_reply", json!({"status": "ok"})),
        ])
        .await;
        assert!(!ended);
        assert!(lines.is_empty());
    }
}
