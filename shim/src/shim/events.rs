//! Publishing task events to containerd (what `ctr events`, `ctr run` and the
//! CRI plugin watch).

use containerd_shim::protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskIO, TaskOOM, TaskStart};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::topics;
use containerd_shim::publisher::RemotePublisher;

pub struct Events {
    publisher: RemotePublisher,
    namespace: String,
}

impl Events {
    pub fn new(publisher: RemotePublisher, namespace: String) -> Self {
        Self { publisher, namespace }
    }

    async fn publish(&self, topic: &str, event: Box<dyn MessageDyn>) {
        let ctx = containerd_shim::protos::ttrpc::context::Context::default();
        if let Err(err) = self.publisher.publish(ctx, topic, &self.namespace, event).await {
            tracing::warn!(topic, error = %err, "publishing event");
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
        let event = TaskStart {
            container_id: id.to_owned(),
            pid,
            ..Default::default()
        };
        self.publish(topics::TASK_START_EVENT_TOPIC, Box::new(event)).await;
    }

    pub async fn exited(&self, id: &str, pid: u32, status: u32, at: &Timestamp) {
        let event = TaskExit {
            container_id: id.to_owned(),
            id: id.to_owned(),
            pid,
            exit_status: status,
            exited_at: Some(at.clone()).into(),
            ..Default::default()
        };
        self.publish(topics::TASK_EXIT_EVENT_TOPIC, Box::new(event)).await;
    }

    pub async fn oom(&self, id: &str) {
        let event = TaskOOM {
            container_id: id.to_owned(),
            ..Default::default()
        };
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
