//! JSON messages of the `process.Process` service (proto3-JSON field names; requests accept
//! the snake_case spellings too).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::connect::json::{b64_opt, de_opt_u32, de_u32};

/// What to run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ProcessConfig {
    /// Executable (looked up in `PATH` when it has no `/`).
    pub cmd: String,
    /// Arguments after the executable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables (win over the sandbox's).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub envs: BTreeMap<String, String>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// Terminal size.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Size {
    /// Columns.
    #[serde(default, deserialize_with = "de_u32")]
    pub cols: u32,
    /// Rows.
    #[serde(default, deserialize_with = "de_u32")]
    pub rows: u32,
}

/// PTY request.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Pty {
    /// Initial or new size.
    pub size: Option<Size>,
}

/// `StartRequest`.
#[derive(Debug, Deserialize)]
pub struct StartRequest {
    /// What to run.
    #[serde(default)]
    pub process: ProcessConfig,
    /// Allocate a PTY of this size.
    #[serde(default)]
    pub pty: Option<Pty>,
    /// Optional tag for `Connect`/selectors.
    #[serde(default)]
    pub tag: Option<String>,
    /// Open a stdin pipe (absent = true).
    #[serde(default)]
    pub stdin: Option<bool>,
}

/// Selects a process by pid or tag.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProcessSelector {
    /// The pid.
    #[serde(deserialize_with = "de_opt_u32")]
    pub pid: Option<u32>,
    /// The tag.
    pub tag: Option<String>,
}

/// Request naming one process (`Connect`, `CloseStdin`).
#[derive(Debug, Deserialize)]
pub struct SelectRequest {
    /// The process.
    #[serde(default)]
    pub process: ProcessSelector,
}

/// Input for stdin or the PTY.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProcessInput {
    /// Bytes for the stdin pipe.
    #[serde(deserialize_with = "b64_opt::deserialize")]
    pub stdin: Option<Vec<u8>>,
    /// Bytes for the PTY.
    #[serde(deserialize_with = "b64_opt::deserialize")]
    pub pty: Option<Vec<u8>>,
}

/// `SendInputRequest`.
#[derive(Debug, Deserialize)]
pub struct SendInputRequest {
    /// The process.
    #[serde(default)]
    pub process: ProcessSelector,
    /// The input.
    #[serde(default)]
    pub input: ProcessInput,
}

/// `SendSignalRequest`.
#[derive(Debug, Deserialize)]
pub struct SendSignalRequest {
    /// The process.
    #[serde(default)]
    pub process: ProcessSelector,
    /// `"SIGNAL_SIGKILL"`, `"SIGNAL_SIGTERM"` or the number.
    #[serde(default)]
    pub signal: serde_json::Value,
}

/// `UpdateRequest`.
#[derive(Debug, Deserialize)]
pub struct UpdateRequest {
    /// The process.
    #[serde(default)]
    pub process: ProcessSelector,
    /// New PTY size.
    #[serde(default)]
    pub pty: Option<Pty>,
}

/// One `StreamInputRequest` message.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StreamInputRequest {
    /// First message: which process.
    pub start: Option<SelectRequest>,
    /// Input data.
    pub data: Option<StreamInputData>,
    /// Ignored.
    pub keepalive: Option<serde_json::Value>,
}

/// `StreamInputRequest.DataEvent`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StreamInputData {
    /// The input.
    pub input: ProcessInput,
}

/// An entry of `ListResponse`.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    /// What runs.
    pub config: ProcessConfig,
    /// Its pid.
    pub pid: u32,
    /// Its tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Output bytes of a process, by stream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DataEvent {
    /// Standard output.
    Stdout(#[serde(serialize_with = "ser_b64")] Vec<u8>),
    /// Standard error.
    Stderr(#[serde(serialize_with = "ser_b64")] Vec<u8>),
    /// PTY output.
    Pty(#[serde(serialize_with = "ser_b64")] Vec<u8>),
}

impl DataEvent {
    /// Number of output bytes.
    pub fn len(&self) -> usize {
        match self {
            DataEvent::Stdout(d) | DataEvent::Stderr(d) | DataEvent::Pty(d) => d.len(),
        }
    }
}

fn ser_b64<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
}

/// How a process ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EndEvent {
    /// Exit code, -1 when killed by a signal (omitted when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub exit_code: i32,
    /// Whether it exited normally (omitted when false).
    #[serde(skip_serializing_if = "is_false")]
    pub exited: bool,
    /// `"exit status N"` or `"signal: killed"`.
    pub status: String,
    /// Set when the exit was not a success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// `ProcessEvent` (the `event` of `StartResponse`/`ConnectResponse`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProcessEvent {
    /// First message: the pid.
    Start {
        /// The pid.
        pid: u32,
    },
    /// Output.
    Data(DataEvent),
    /// Last message.
    End(EndEvent),
    /// Idle ping.
    Keepalive {},
}

/// `StartResponse` / `ConnectResponse`.
#[derive(Debug, Clone, Serialize)]
pub struct EventMessage {
    /// The event.
    pub event: ProcessEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_event_json() -> Result<(), serde_json::Error> {
        let start = EventMessage {
            event: ProcessEvent::Start { pid: 4242 },
        };
        assert_eq!(
            serde_json::to_string(&start)?,
            r#"{"event":{"start":{"pid":4242}}}"#
        );
        let data = EventMessage {
            event: ProcessEvent::Data(DataEvent::Stdout(b"hi\n".to_vec())),
        };
        assert_eq!(
            serde_json::to_string(&data)?,
            r#"{"event":{"data":{"stdout":"aGkK"}}}"#
        );
        let end = EndEvent {
            exit_code: 0,
            exited: true,
            status: "exit status 0".into(),
            error: None,
        };
        let end = EventMessage {
            event: ProcessEvent::End(end),
        };
        assert_eq!(
            serde_json::to_string(&end)?,
            r#"{"event":{"end":{"exited":true,"status":"exit status 0"}}}"#
        );
        let ka = EventMessage {
            event: ProcessEvent::Keepalive {},
        };
        assert_eq!(serde_json::to_string(&ka)?, r#"{"event":{"keepalive":{}}}"#);
        Ok(())
    }

    #[test]
    fn lenient_requests() -> Result<(), serde_json::Error> {
        let r: SendInputRequest =
            serde_json::from_str(r#"{"process":{"pid":"7"},"input":{"stdin":"aGk"}}"#)?;
        assert_eq!(
            (r.process.pid, r.input.stdin),
            (Some(7), Some(b"hi".to_vec()))
        );
        let r: StartRequest =
            serde_json::from_str(r#"{"process":{"cmd":"ls"},"stdin":false,"unknown":1}"#)?;
        assert_eq!((r.process.cmd.as_str(), r.stdin), ("ls", Some(false)));
        Ok(())
    }
}
