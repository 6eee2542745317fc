//! Handlers of the `process.Process` service.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::error::ProcessError;
use super::messages::*;
use super::spawn::{self, SpawnSpec};
use super::table::{Ending, InputSink, Output, ProcHandle, Subscription};
use crate::auth::rpc_user;
use crate::connect::envelope::{Decoder, FLAG_END_STREAM};
use crate::connect::stream::{self, StreamSink};
use crate::connect::unary::{StreamRequest, Unary, parse_message};
use crate::connect::{Code, ConnectError, unary_ok};
use crate::paths;
use crate::state::SharedState;

/// `Start`: spawn, then stream `start`, output, `end`.
#[tracing::instrument(skip_all, fields(pid))]
pub async fn start(
    State(state): State<SharedState>,
    headers: HeaderMap,
    StreamRequest(req): StreamRequest<StartRequest>,
) -> Response {
    let started = req.and_then(|req| {
        let user = rpc_user(&state, &headers)?;
        let workdir = state.settings().default_workdir;
        let cwd = paths::resolve(
            req.process.cwd.as_deref().unwrap_or(""),
            &user,
            workdir.as_deref(),
        );
        let spec = SpawnSpec {
            pty: req
                .pty
                .map(|p| p.size.unwrap_or(Size { cols: 80, rows: 24 })),
            stdin: req.stdin.unwrap_or(true),
            config: req.process,
            tag: req.tag,
            user,
            cwd,
            deadline: stream::timeout(&headers),
        };
        spawn::spawn(&state, spec).map_err(ConnectError::from)
    });
    let (handle, rx) = match started {
        Ok(v) => v,
        Err(e) => return stream::error_response(e),
    };
    tracing::Span::current().record("pid", handle.pid);
    let keepalive = stream::keepalive_interval(&headers, state.config.default_keepalive);
    let (sink, res) = stream::channel();
    // The process deadline is enforced by the waiter; the stream just reports it.
    tokio::spawn(pump(sink, handle.pid, rx, keepalive, None));
    res
}

/// `Connect`: attach to a running (or just finished) process.
#[tracing::instrument(skip_all)]
pub async fn connect(
    State(state): State<SharedState>,
    headers: HeaderMap,
    StreamRequest(req): StreamRequest<SelectRequest>,
) -> Response {
    let found = req.and_then(|r| find(&state, &r.process, true).map_err(ConnectError::from));
    let handle = match found {
        Ok(h) => h,
        Err(e) => return stream::error_response(e),
    };
    let rx = handle.subscribe();
    let keepalive = stream::keepalive_interval(&headers, state.config.default_keepalive);
    let deadline = stream::timeout(&headers).map(|d| Instant::now() + d);
    let (sink, res) = stream::channel();
    tokio::spawn(pump(sink, handle.pid, rx, keepalive, deadline));
    res
}

/// Forwards one process's events to a stream: `start`, data and keepalives, `end`, then the
/// end-stream envelope. A client that goes away only detaches; the process keeps running.
async fn pump(
    sink: StreamSink,
    pid: u32,
    mut rx: Subscription,
    keepalive: Duration,
    deadline: Option<Instant>,
) {
    let msg = |event| EventMessage { event };
    if sink.send(&msg(ProcessEvent::Start { pid })).await.is_err() {
        return;
    }
    let ka = tokio::time::sleep(keepalive);
    tokio::pin!(ka);
    let until = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    loop {
        tokio::select! {
            out = rx.recv() => {
                let sent = match out {
                    Some(Output::Data(d)) => sink.send(&msg(ProcessEvent::Data(d))).await,
                    Some(Output::End(Ending::Exited(end))) => {
                        if sink.send(&msg(ProcessEvent::End(end))).await.is_ok() {
                            sink.finish(Ok(())).await;
                        }
                        return;
                    }
                    Some(Output::End(Ending::DeadlineExceeded)) => {
                        let e = ConnectError::new(Code::DeadlineExceeded, format!("process {pid} killed: deadline exceeded"));
                        sink.finish(Err(e)).await;
                        return;
                    }
                    Some(Output::Overflow) => {
                        let e = ConnectError::new(
                            Code::ResourceExhausted,
                            format!("stream of process {pid} fell too far behind its output and was detached"),
                        );
                        sink.finish(Err(e)).await;
                        return;
                    }
                    None => {
                        sink.finish(Err(ConnectError::new(Code::Internal, "process output ended without an exit status"))).await;
                        return;
                    }
                };
                if sent.is_err() {
                    return;
                }
                ka.as_mut().reset(Instant::now() + keepalive);
            }
            () = &mut ka => {
                if sink.send(&msg(ProcessEvent::Keepalive {})).await.is_err() {
                    return;
                }
                ka.as_mut().reset(Instant::now() + keepalive);
            }
            () = &mut until => {
                sink.finish(Err(ConnectError::new(Code::DeadlineExceeded, "stream deadline exceeded"))).await;
                return;
            }
            () = sink.closed() => return,
        }
    }
}

fn find(
    state: &SharedState,
    sel: &ProcessSelector,
    include_finished: bool,
) -> Result<Arc<ProcHandle>, ProcessError> {
    let what = match (&sel.pid, &sel.tag) {
        (Some(pid), _) if *pid != 0 => format!("pid {pid}"),
        (_, Some(tag)) => format!("tag {tag}"),
        _ => return Err(ProcessError::NoSelector),
    };
    let found = if include_finished {
        state.processes.any(sel)
    } else {
        state.processes.running(sel)
    };
    found.ok_or(ProcessError::NotFound(what))
}

/// `List`: running processes.
pub async fn list(
    State(state): State<SharedState>,
    Unary(_): Unary<serde_json::Value>,
) -> Response {
    unary_ok(&serde_json::json!({ "processes": state.processes.list() }))
}

/// `SendInput`: write to stdin or the PTY.
#[tracing::instrument(skip_all)]
pub async fn send_input(
    State(state): State<SharedState>,
    Unary(req): Unary<SendInputRequest>,
) -> Response {
    let result = async {
        let handle = find(&state, &req.process, false)?;
        write_input(&handle, req.input).await
    };
    match result.await {
        Ok(()) => unary_ok(&serde_json::json!({})),
        Err(e) => ConnectError::from(e).into_response(),
    }
}

async fn write_input(handle: &ProcHandle, input: ProcessInput) -> Result<(), ProcessError> {
    let pid = handle.pid;
    let write_err = |source| ProcessError::Write { pid, source };
    match (&handle.input, input.stdin, input.pty) {
        (InputSink::Pipe(pipe), Some(data), _) => {
            let mut guard = pipe.lock().await;
            let stdin = guard.as_mut().ok_or(ProcessError::NoStdin(pid))?;
            stdin.write_all(&data).await.map_err(write_err)?;
            stdin.flush().await.map_err(write_err)
        }
        (InputSink::Pty(master), _, Some(data)) => {
            let master = master.clone();
            tokio::task::spawn_blocking(move || (&*master).write_all(&data))
                .await
                .map_err(|e| write_err(std::io::Error::other(e)))?
                .map_err(write_err)
        }
        (_, Some(_), _) => Err(ProcessError::NoStdin(pid)),
        (_, _, Some(_)) => Err(ProcessError::NoPty(pid)),
        (_, None, None) => Ok(()),
    }
}

/// `StreamInput`: a client stream of input, written as it arrives.
#[tracing::instrument(skip_all)]
pub async fn stream_input(State(state): State<SharedState>, body: Body) -> Response {
    let result = stream_input_inner(&state, body).await;
    let (sink, res) = stream::channel();
    tokio::spawn(async move {
        match result {
            Ok(()) => {
                if sink.send(&serde_json::json!({})).await.is_ok() {
                    sink.finish(Ok(())).await;
                }
            }
            Err(e) => sink.finish(Err(e)).await,
        }
    });
    res
}

async fn stream_input_inner(state: &SharedState, body: Body) -> Result<(), ConnectError> {
    let mut chunks = body.into_data_stream();
    let mut dec = Decoder::default();
    let mut target: Option<Arc<ProcHandle>> = None;
    loop {
        while let Some(env) = dec
            .next_envelope()
            .map_err(|e| ConnectError::new(Code::InvalidArgument, e.to_string()))?
        {
            if env.flags & FLAG_END_STREAM != 0 {
                continue;
            }
            let msg: StreamInputRequest = parse_message(&env.payload)?;
            match (&target, msg.start, msg.data) {
                (None, Some(start), _) => target = Some(find(state, &start.process, false)?),
                (None, None, _) => {
                    if msg.keepalive.is_none() {
                        return Err(ConnectError::new(
                            Code::InvalidArgument,
                            "first message must be start",
                        ));
                    }
                }
                (Some(h), _, Some(data)) => write_input(h, data.input).await?,
                (Some(_), _, None) => {}
            }
        }
        match chunks.next().await {
            Some(Ok(chunk)) => dec.push(&chunk),
            Some(Err(e)) => {
                return Err(ConnectError::new(
                    Code::Canceled,
                    format!("reading input stream: {e}"),
                ));
            }
            None => break,
        }
    }
    dec.finish()
        .map_err(|e| ConnectError::new(Code::InvalidArgument, e.to_string()))
}

/// `SendSignal`: SIGKILL or SIGTERM to the process group.
#[tracing::instrument(skip_all)]
pub async fn send_signal(
    State(state): State<SharedState>,
    Unary(req): Unary<SendSignalRequest>,
) -> Response {
    let result = (|| {
        let names = [
            ("SIGNAL_UNSPECIFIED", 0),
            ("SIGNAL_SIGTERM", 15),
            ("SIGNAL_SIGKILL", 9),
        ];
        let signal = match crate::connect::json::enum_value(&req.signal, &names) {
            Some(9) => Signal::SIGKILL,
            Some(15) => Signal::SIGTERM,
            _ => return Err(ProcessError::UnsupportedSignal(req.signal.to_string())),
        };
        let handle = find(&state, &req.process, false)?;
        let pid = Pid::from_raw(handle.pid as i32);
        // The process leads its own session and group; signal the group so children that
        // hold its output pipes go too, and fall back to the process alone.
        killpg(pid, signal)
            .or_else(|_| kill(pid, signal))
            .map_err(|source| match source {
                // Exited between the lookup and the signal.
                nix::errno::Errno::ESRCH => ProcessError::NotFound(format!("pid {}", handle.pid)),
                source => ProcessError::Signal {
                    pid: handle.pid,
                    source,
                },
            })
    })();
    match result {
        Ok(()) => unary_ok(&serde_json::json!({})),
        Err(e) => ConnectError::from(e).into_response(),
    }
}

/// `Update`: resize the PTY.
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<SharedState>,
    Unary(req): Unary<UpdateRequest>,
) -> Response {
    let result = (|| {
        let handle = find(&state, &req.process, false)?;
        let Some(size) = req.pty.and_then(|p| p.size) else {
            return Ok(());
        };
        match &handle.input {
            InputSink::Pty(master) => spawn::resize(master, size).map_err(ProcessError::Pty),
            _ => Err(ProcessError::NoPty(handle.pid)),
        }
    })();
    match result {
        Ok(()) => unary_ok(&serde_json::json!({})),
        Err(e) => ConnectError::from(e).into_response(),
    }
}

/// `CloseStdin`: EOF on the stdin pipe.
#[tracing::instrument(skip_all)]
pub async fn close_stdin(
    State(state): State<SharedState>,
    Unary(req): Unary<SelectRequest>,
) -> Response {
    let result = async {
        let handle = find(&state, &req.process, false)?;
        match &handle.input {
            InputSink::Pipe(pipe) => {
                pipe.lock().await.take();
                Ok(())
            }
            InputSink::Pty(_) => Err(ProcessError::CloseStdinOfPty(handle.pid)),
            InputSink::None => Err(ProcessError::NoStdin(handle.pid)),
        }
    };
    match result.await {
        Ok(()) => unary_ok(&serde_json::json!({})),
        Err(e) => ConnectError::from(e).into_response(),
    }
}
