//! The process table: running processes by pid, recently finished ones (for `Connect` after
//! exit), and per-process fan-out of output to every attached stream.
//!
//! Ordering guarantee: a subscriber receives output in the order it was read, and the
//! [`Output::End`] of a process after all of its output; a subscriber attached after the end
//! receives only the end.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::process::ChildStdin;
use tokio::sync::mpsc;

use super::messages::{DataEvent, EndEvent, ProcessConfig, ProcessInfo, ProcessSelector};

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Output {
    /// Output bytes.
    Data(DataEvent),
    /// The process ended; nothing follows.
    End(Ending),
}

/// How a process ended.
#[derive(Debug, Clone)]
pub enum Ending {
    /// It exited or was killed; the event to send.
    Exited(EndEvent),
    /// It was killed because its `Connect-Timeout-Ms` deadline expired.
    DeadlineExceeded,
}

/// Where input to a process goes.
#[derive(Debug)]
pub enum InputSink {
    /// Started with `stdin: false`: stdin is `/dev/null`.
    None,
    /// A stdin pipe; `None` once closed.
    Pipe(tokio::sync::Mutex<Option<ChildStdin>>),
    /// The PTY master (input and resize).
    Pty(Arc<File>),
}

#[derive(Debug, Default)]
struct Hub {
    subscribers: Vec<mpsc::UnboundedSender<Output>>,
    ending: Option<Ending>,
}

/// One process started by envd.
#[derive(Debug)]
pub struct ProcHandle {
    /// Its pid (also its process group and session id).
    pub pid: u32,
    /// What was started.
    pub config: ProcessConfig,
    /// The tag given at start.
    pub tag: Option<String>,
    /// Where input goes.
    pub input: InputSink,
    hub: Mutex<Hub>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProcHandle {
    /// A handle with no subscribers.
    pub fn new(pid: u32, config: ProcessConfig, tag: Option<String>, input: InputSink) -> Self {
        Self {
            pid,
            config,
            tag,
            input,
            hub: Mutex::new(Hub::default()),
        }
    }

    /// Attaches a subscriber. If the process already ended, the receiver holds just the end.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Output> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut hub = lock(&self.hub);
        match &hub.ending {
            Some(ending) => {
                let _ = tx.send(Output::End(ending.clone()));
            }
            None => hub.subscribers.push(tx),
        }
        rx
    }

    /// Sends output to every subscriber, forgetting those that went away.
    pub fn publish(&self, data: DataEvent) {
        let mut hub = lock(&self.hub);
        hub.subscribers
            .retain(|s| s.send(Output::Data(data.clone())).is_ok());
    }

    /// Records the end and sends it to every subscriber.
    pub fn finish(&self, ending: Ending) {
        let mut hub = lock(&self.hub);
        for s in hub.subscribers.drain(..) {
            let _ = s.send(Output::End(ending.clone()));
        }
        hub.ending = Some(ending);
    }

    /// Whether the process has ended.
    pub fn ended(&self) -> bool {
        lock(&self.hub).ending.is_some()
    }

    fn matches(&self, sel: &ProcessSelector) -> bool {
        match (&sel.pid, &sel.tag) {
            (Some(pid), _) if *pid != 0 => *pid == self.pid,
            (_, Some(tag)) => self.tag.as_deref() == Some(tag.as_str()),
            _ => false,
        }
    }
}

/// Running and recently finished processes.
#[derive(Debug)]
pub struct ProcessTable {
    running: Mutex<HashMap<u32, Arc<ProcHandle>>>,
    finished: Mutex<VecDeque<(Instant, Arc<ProcHandle>)>>,
    retention: Duration,
}

impl ProcessTable {
    /// An empty table keeping finished processes for `retention`.
    pub fn new(retention: Duration) -> Self {
        Self {
            running: Mutex::default(),
            finished: Mutex::default(),
            retention,
        }
    }

    /// Registers a running process.
    pub fn insert(&self, handle: Arc<ProcHandle>) {
        lock(&self.running).insert(handle.pid, handle);
    }

    /// Moves a process from running to finished (call after [`ProcHandle::finish`]).
    pub fn mark_finished(&self, pid: u32) {
        let handle = lock(&self.running).remove(&pid);
        let mut finished = lock(&self.finished);
        let now = Instant::now();
        while finished
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > self.retention)
        {
            finished.pop_front();
        }
        if let Some(h) = handle {
            finished.push_back((now, h));
        }
    }

    /// A running process matching the selector.
    pub fn running(&self, sel: &ProcessSelector) -> Option<Arc<ProcHandle>> {
        lock(&self.running)
            .values()
            .find(|h| h.matches(sel))
            .cloned()
    }

    /// A running or recently finished process matching the selector (newest first).
    pub fn any(&self, sel: &ProcessSelector) -> Option<Arc<ProcHandle>> {
        self.running(sel).or_else(|| {
            let now = Instant::now();
            lock(&self.finished)
                .iter()
                .rev()
                .filter(|(t, _)| now.duration_since(*t) <= self.retention)
                .find(|(_, h)| h.matches(sel))
                .map(|(_, h)| h.clone())
        })
    }

    /// The running processes, ordered by pid.
    pub fn list(&self) -> Vec<ProcessInfo> {
        let mut out: Vec<ProcessInfo> = lock(&self.running)
            .values()
            .map(|h| ProcessInfo {
                config: h.config.clone(),
                pid: h.pid,
                tag: h.tag.clone(),
            })
            .collect();
        out.sort_by_key(|p| p.pid);
        out
    }
}
