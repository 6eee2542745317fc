//! The process table: running processes by pid, recently finished ones (for `Connect` after
//! exit), and per-process fan-out of output to every attached stream.
//!
//! Ordering guarantee: a subscriber receives output in the order it was read, and the
//! [`Output::End`] of a process after all of its output; a subscriber attached after the end
//! receives only the end.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// This subscriber fell too far behind and was detached; nothing follows.
    Overflow,
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

#[derive(Debug)]
struct Subscriber {
    tx: mpsc::UnboundedSender<Output>,
    /// Output bytes queued and not yet taken by the receiver.
    queued: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct Hub {
    subscribers: Vec<Subscriber>,
    ending: Option<Ending>,
}

/// A subscriber's receiving end.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<Output>,
    queued: Arc<AtomicUsize>,
}

impl Subscription {
    /// The next output; `None` only if the process handle is gone without an end.
    pub async fn recv(&mut self) -> Option<Output> {
        let out = self.rx.recv().await;
        if let Some(Output::Data(d)) = &out {
            self.queued.fetch_sub(d.len(), Ordering::Relaxed);
        }
        out
    }
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
    /// Most output bytes one subscriber may have queued before it is detached.
    max_queued: usize,
    hub: Mutex<Hub>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProcHandle {
    /// A handle with no subscribers; a subscriber that lets more than `max_queued` output
    /// bytes pile up is detached with [`Output::Overflow`] (memory stays bounded and the
    /// process is never blocked by a slow client).
    pub fn new(
        pid: u32,
        config: ProcessConfig,
        tag: Option<String>,
        input: InputSink,
        max_queued: usize,
    ) -> Self {
        Self {
            pid,
            config,
            tag,
            input,
            max_queued,
            hub: Mutex::new(Hub::default()),
        }
    }

    /// Attaches a subscriber. If the process already ended, the receiver holds just the end.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut hub = lock(&self.hub);
        match &hub.ending {
            Some(ending) => {
                let _ = tx.send(Output::End(ending.clone()));
            }
            None => hub.subscribers.push(Subscriber {
                tx,
                queued: queued.clone(),
            }),
        }
        Subscription { rx, queued }
    }

    /// Sends output to every subscriber, forgetting those that went away.
    pub fn publish(&self, data: DataEvent) {
        let len = data.len();
        let max = self.max_queued;
        let mut hub = lock(&self.hub);
        hub.subscribers.retain(|s| {
            if s.queued.fetch_add(len, Ordering::Relaxed) + len > max {
                let _ = s.tx.send(Output::Overflow);
                return false;
            }
            s.tx.send(Output::Data(data.clone())).is_ok()
        });
    }

    /// Records the end and sends it to every subscriber.
    pub fn finish(&self, ending: Ending) {
        let mut hub = lock(&self.hub);
        for s in hub.subscribers.drain(..) {
            let _ = s.tx.send(Output::End(ending.clone()));
        }
        hub.ending = Some(ending);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(max: usize) -> ProcHandle {
        ProcHandle::new(1, ProcessConfig::default(), None, InputSink::None, max)
    }

    #[tokio::test]
    async fn output_then_end_in_order_and_late_subscribers_get_only_the_end() {
        let h = handle(1024);
        let mut sub = h.subscribe();
        h.publish(DataEvent::Stdout(b"a".to_vec()));
        h.publish(DataEvent::Stderr(b"b".to_vec()));
        h.finish(Ending::DeadlineExceeded);
        assert!(matches!(sub.recv().await, Some(Output::Data(DataEvent::Stdout(d))) if d == b"a"));
        assert!(matches!(sub.recv().await, Some(Output::Data(DataEvent::Stderr(d))) if d == b"b"));
        assert!(matches!(
            sub.recv().await,
            Some(Output::End(Ending::DeadlineExceeded))
        ));
        let mut late = h.subscribe();
        assert!(matches!(late.recv().await, Some(Output::End(_))));
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_detached_others_are_not() {
        let h = handle(10);
        let mut slow = h.subscribe();
        let mut fast = h.subscribe();
        for _ in 0..3 {
            h.publish(DataEvent::Stdout(vec![0; 4]));
            assert!(matches!(fast.recv().await, Some(Output::Data(_))));
        }
        for _ in 0..2 {
            assert!(matches!(slow.recv().await, Some(Output::Data(_))));
        }
        assert!(matches!(slow.recv().await, Some(Output::Overflow)));
        h.finish(Ending::DeadlineExceeded);
        assert!(matches!(fast.recv().await, Some(Output::End(_))));
        assert!(slow.recv().await.is_none());
    }
}
