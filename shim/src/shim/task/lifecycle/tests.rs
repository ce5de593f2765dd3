//! The lifecycle without containerd: a scripted workload and recorded events.

use super::*;
use crate::shim::events::Recorded;
use crate::shim::workload::FinishedFuture;
use async_trait::async_trait;
use containerd_shim::protos::topics::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A workload that runs until killed (or told to end), and counts calls.
#[derive(Default)]
struct Scripted {
    end: Mutex<Option<tokio::sync::oneshot::Sender<Finished>>>,
    fail_start: bool,
    stopped: AtomicUsize,
    deleted: AtomicUsize,
}

impl Scripted {
    fn end(&self, finished: Finished) {
        if let Some(end) = self.end.lock().unwrap().take() {
            let _ = end.send(finished);
        }
    }
}

#[async_trait]
impl Workload for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    fn pid(&self) -> u32 {
        42
    }

    async fn start(&self) -> TaskResult<Started> {
        if self.fail_start {
            return Err(TaskError::FailedPrecondition("no such port".into()));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        *self.end.lock().unwrap() = Some(tx);
        let finished: FinishedFuture = Box::pin(async move { rx.await.unwrap_or(Finished::status(255)) });
        Ok(Started { pid: 43, finished })
    }

    async fn kill(&self, signal: i32, _all: bool) -> TaskResult<()> {
        self.end(Finished::status(128 + signal as u32));
        Ok(())
    }

    async fn stopped(&self) {
        self.stopped.fetch_add(1, Ordering::SeqCst);
    }

    async fn delete(&self) {
        self.deleted.fetch_add(1, Ordering::SeqCst);
    }
}

fn setup() -> (Arc<Lifecycle>, Recorded) {
    let (events, recorded) = Events::recording();
    (Arc::new(Lifecycle::new(events)), recorded)
}

async fn register(life: &Lifecycle, workload: Arc<Scripted>) {
    let new = NewContainer {
        id: "c1".into(),
        bundle: "/run/bundle".into(),
        stdio: ("".into(), "/run/out".into(), "".into()),
        terminal: false,
        workload,
        cleanup: None,
    };
    assert_eq!(life.register(new).await.unwrap(), 42);
}

fn topics(recorded: &mut Recorded) -> Vec<(&'static str, Option<u32>)> {
    recorded.take()
}

#[tokio::test]
async fn create_start_kill_wait_delete_in_containerds_order() {
    let workload = Arc::new(Scripted::default());
    let (life, mut events) = setup();
    register(&life, workload.clone()).await;
    assert_eq!(life.state("c1").unwrap().status, api::Status::CREATED.into());
    assert_eq!(life.start("c1").await.unwrap(), 43);
    assert_eq!(life.state("c1").unwrap().status, api::Status::RUNNING.into());
    let waiter = {
        let life = life.clone();
        tokio::spawn(async move { life.wait("c1").await })
    };
    life.kill("c1", libc::SIGTERM as u32, false).await.unwrap();
    let waited = waiter.await.unwrap().unwrap();
    assert_eq!(waited.exit_status, 143);
    let state = life.state("c1").unwrap();
    assert_eq!((state.status, state.exit_status), (api::Status::STOPPED.into(), 143));
    assert_eq!(workload.stopped.load(Ordering::SeqCst), 1, "stdio let go of once");
    assert!(matches!(life.kill("c1", 9, false).await, Err(TaskError::NotFound(_))));
    let deleted = life.delete("c1").await.unwrap();
    assert_eq!(deleted.exit_status, 143);
    assert_eq!(workload.deleted.load(Ordering::SeqCst), 1);
    assert!(life.is_empty());
    assert!(matches!(life.delete("c1").await, Err(TaskError::NotFound(_))));
    assert_eq!(
        topics(&mut events),
        vec![
            (TASK_CREATE_EVENT_TOPIC, None),
            (TASK_START_EVENT_TOPIC, None),
            (TASK_EXIT_EVENT_TOPIC, Some(143)),
            (TASK_DELETE_EVENT_TOPIC, Some(143)),
        ]
    );
}

#[tokio::test]
async fn wrong_transitions_are_refused_and_change_nothing() {
    let workload = Arc::new(Scripted::default());
    let (life, mut events) = setup();
    assert!(matches!(life.start("c1").await, Err(TaskError::NotFound(_))));
    register(&life, workload.clone()).await;
    let again = NewContainer {
        id: "c2".into(),
        bundle: "/b".into(),
        stdio: Default::default(),
        terminal: false,
        workload: workload.clone(),
        cleanup: None,
    };
    assert!(matches!(life.register(again).await, Err(TaskError::AlreadyExists(_))));
    life.start("c1").await.unwrap();
    assert!(matches!(life.start("c1").await, Err(TaskError::FailedPrecondition(_))));
    assert!(matches!(life.delete("c1").await, Err(TaskError::FailedPrecondition(_))));
    assert!(matches!(life.state("other"), Err(TaskError::NotFound(_))));
    assert_eq!(life.state("c1").unwrap().status, api::Status::RUNNING.into());
    workload.end(Finished::status(0));
    life.wait("c1").await.unwrap();
    assert!(matches!(life.start("c1").await, Err(TaskError::FailedPrecondition(m)) if m.contains("stopped")));
    let seen: Vec<_> = topics(&mut events).into_iter().map(|(t, _)| t).collect();
    assert_eq!(seen, [TASK_CREATE_EVENT_TOPIC, TASK_START_EVENT_TOPIC, TASK_EXIT_EVENT_TOPIC]);
}

#[tokio::test]
async fn a_kill_before_start_ends_the_task_without_starting_it() {
    let workload = Arc::new(Scripted::default());
    let (life, mut events) = setup();
    register(&life, workload.clone()).await;
    life.kill("c1", libc::SIGKILL as u32, false).await.unwrap();
    assert_eq!(life.wait("c1").await.unwrap().exit_status, 137);
    assert!(workload.end.lock().unwrap().is_none(), "never started");
    assert_eq!(workload.stopped.load(Ordering::SeqCst), 1);
    life.delete("c1").await.unwrap();
    let seen: Vec<_> = topics(&mut events).into_iter().map(|(t, _)| t).collect();
    assert_eq!(seen, [TASK_CREATE_EVENT_TOPIC, TASK_EXIT_EVENT_TOPIC, TASK_DELETE_EVENT_TOPIC]);
}

#[tokio::test]
async fn an_oom_is_reported_before_the_exit_and_only_the_first_exit_counts() {
    let workload = Arc::new(Scripted::default());
    let (life, mut events) = setup();
    register(&life, workload.clone()).await;
    life.start("c1").await.unwrap();
    workload.end(Finished { status: 137, oom: true });
    assert_eq!(life.wait("c1").await.unwrap().exit_status, 137);
    life.finish("c1", Finished::status(0)).await;
    assert_eq!(life.state("c1").unwrap().exit_status, 137);
    let seen = topics(&mut events);
    assert_eq!(seen[2..], [(TASK_OOM_EVENT_TOPIC, None), (TASK_EXIT_EVENT_TOPIC, Some(137))], "{seen:?}");
}

#[tokio::test]
async fn a_failed_start_ends_the_task_so_delete_cleans_up() {
    let workload = Arc::new(Scripted { fail_start: true, ..Default::default() });
    let (life, _events) = setup();
    register(&life, workload.clone()).await;
    let err = life.start("c1").await.unwrap_err();
    assert!(matches!(&err, TaskError::FailedPrecondition(m) if m == "no such port"), "{err:?}");
    assert_eq!(life.state("c1").unwrap().status, api::Status::STOPPED.into());
    assert_eq!(life.delete("c1").await.unwrap().exit_status, 1);
}

#[tokio::test]
async fn waiters_of_a_deleted_container_get_not_found() {
    let workload = Arc::new(Scripted::default());
    let (life, _events) = setup();
    register(&life, workload.clone()).await;
    let waiter = {
        let life = life.clone();
        tokio::spawn(async move { life.wait("c1").await })
    };
    tokio::task::yield_now().await;
    life.delete("c1").await.unwrap();
    assert!(matches!(waiter.await.unwrap(), Err(TaskError::NotFound(_))));
}

#[tokio::test]
async fn exec_is_refused_for_a_workload_without_processes() {
    let workload = Arc::new(Scripted::default());
    let (life, _events) = setup();
    register(&life, workload.clone()).await;
    let request =
        crate::shim::workload::ExecRequest { exec_id: "e1", process: b"{}", stdio: ("", "", ""), terminal: false };
    assert!(matches!(life.add_exec("c1", &request).await, Err(TaskError::FailedPrecondition(_))), "not running yet");
    life.start("c1").await.unwrap();
    let refused = life.add_exec("c1", &request).await.unwrap_err();
    assert!(
        matches!(&refused, TaskError::Unimplemented(m) if m.contains("exec is not supported by wasmlet")),
        "{refused:?}"
    );
    assert!(matches!(life.start_exec("c1", "e1").await, Err(TaskError::NotFound(_))));
}
