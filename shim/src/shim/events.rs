//! Publishing task events to containerd (what `ctr events`, `ctr run` and the
//! CRI plugin watch).
//!
//! Events go through one ordered queue drained by a forwarder task, so an
//! RPC never waits for containerd to take its event (as runc's shim), and
//! TaskExit still reaches containerd before TaskDelete. The daemon flushes
//! the queue before it exits.

use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::topics;
use containerd_shim::publisher::RemotePublisher;

enum Queued {
    Event(&'static str, Box<dyn MessageDyn>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Events {
    queue: tokio::sync::mpsc::UnboundedSender<Queued>,
}

impl Events {
    /// Start the forwarder on the current tokio runtime.
    pub fn new(publisher: RemotePublisher, namespace: String) -> Self {
        let (queue, mut rx) = tokio::sync::mpsc::unbounded_channel::<Queued>();
        tokio::spawn(async move {
            while let Some(queued) = rx.recv().await {
                match queued {
                    Queued::Event(topic, event) => {
                        let ctx = containerd_shim::protos::ttrpc::context::Context::default();
                        if let Err(err) = publisher.publish(ctx, topic, &namespace, event).await {
                            tracing::warn!(topic, error = %err, "publishing event");
                        }
                    }
                    Queued::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Self { queue }
    }

    /// A test double: events are queued for [`Recorded`] instead of sent.
    #[cfg(test)]
    pub fn recording() -> (Self, Recorded) {
        let (queue, rx) = tokio::sync::mpsc::unbounded_channel::<Queued>();
        (Self { queue }, Recorded(rx))
    }

    async fn publish(&self, topic: &'static str, event: Box<dyn MessageDyn>) {
        if self.queue.send(Queued::Event(topic, event)).is_err() {
            tracing::warn!(topic, "event forwarder gone; event dropped");
        }
    }

    /// Wait until every event queued so far has been sent.
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.queue.send(Queued::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    pub async fn created(&self, id: &str, bundle: &str, stdio: (&str, &str, &str), pid: u32) {
        let event = TaskCreate {
            container_id: id.to_owned(),
            bundle: bundle.to_owned(),
            io: Some(TaskIO {
                stdin: stdio.0.to_owned(),
                stdout: stdio.1.to_owned(),
                stderr: stdio.2.to_owned(),
                ..Default::default()
            })
            .into(),
            pid,
            ..Default::default()
        };
        self.publish(topics::TASK_CREATE_EVENT_TOPIC, Box::new(event)).await;
    }

    pub async fn started(&self, id: &str, pid: u32) {
        let event = TaskStart { container_id: id.to_owned(), pid, ..Default::default() };
        self.publish(topics::TASK_START_EVENT_TOPIC, Box::new(event)).await;
    }

    pub async fn exited(&self, id: &str, pid: u32, status: u32, at: &Timestamp) {
        self.process_exited(id, id, pid, status, at).await;
    }

    pub async fn exec_added(&self, id: &str, exec_id: &str) {
        let event = TaskExecAdded { container_id: id.to_owned(), exec_id: exec_id.to_owned(), ..Default::default() };
        self.publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, Box::new(event)).await;
    }

    pub async fn exec_started(&self, id: &str, exec_id: &str, pid: u32) {
        let event =
            TaskExecStarted { container_id: id.to_owned(), exec_id: exec_id.to_owned(), pid, ..Default::default() };
        self.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, Box::new(event)).await;
    }

    /// TaskExit of the container's init (`process_id` = its id) or an exec.
    pub async fn process_exited(&self, id: &str, process_id: &str, pid: u32, status: u32, at: &Timestamp) {
        let event = TaskExit {
            container_id: id.to_owned(),
            id: process_id.to_owned(),
            pid,
            exit_status: status,
            exited_at: Some(at.clone()).into(),
            ..Default::default()
        };
        self.publish(topics::TASK_EXIT_EVENT_TOPIC, Box::new(event)).await;
    }

    pub async fn oom(&self, id: &str) {
        let event = TaskOOM { container_id: id.to_owned(), ..Default::default() };
        self.publish(topics::TASK_OOM_EVENT_TOPIC, Box::new(event)).await;
    }

    pub async fn deleted(&self, id: &str, pid: u32, status: u32, at: &Timestamp) {
        let event = TaskDelete {
            container_id: id.to_owned(),
            id: id.to_owned(),
            pid,
            exit_status: status,
            exited_at: Some(at.clone()).into(),
            ..Default::default()
        };
        self.publish(topics::TASK_DELETE_EVENT_TOPIC, Box::new(event)).await;
    }
}

/// What a [`Events::recording`] double was asked to publish.
#[cfg(test)]
pub struct Recorded(tokio::sync::mpsc::UnboundedReceiver<Queued>);

#[cfg(test)]
impl Recorded {
    /// The topics published since the last call, in order, with each
    /// event's exit status where it has one.
    pub fn take(&mut self) -> Vec<(&'static str, Option<u32>)> {
        let mut seen = Vec::new();
        while let Ok(queued) = self.0.try_recv() {
            match queued {
                Queued::Event(topic, event) => {
                    let status = <dyn MessageDyn>::downcast_ref::<TaskExit>(&*event)
                        .map(|e| e.exit_status)
                        .or_else(|| <dyn MessageDyn>::downcast_ref::<TaskDelete>(&*event).map(|e| e.exit_status));
                    seen.push((topic, status));
                }
                Queued::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
        seen
    }
}
