//! Outgoing messages queued without bound and handed to the MQTT client in
//! order by one task (the fleet runner's states, presence and offers).
//!
//! rumqttc's request queue is bounded and is drained only while connected:
//! with the broker gone, the 17th publish would wait for a reconnect that
//! may never come, and the runner's loop with it — a runner that then got
//! SIGTERM did not even stop its jobs. Through the outbox the loop never
//! waits on the broker; what is still queued at exit gets a bounded time to
//! leave.

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use std::time::Duration;
use tokio::sync::mpsc;

struct Outgoing {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

pub struct Outbox {
    queue: mpsc::UnboundedSender<Outgoing>,
    task: tokio::task::JoinHandle<()>,
}

impl Outbox {
    /// Starts the task that hands queued messages to `client` (QoS 1).
    pub fn start(client: AsyncClient) -> Outbox {
        let (queue, mut queued) = mpsc::unbounded_channel::<Outgoing>();
        let task = tokio::spawn(async move {
            while let Some(message) = queued.recv().await {
                let topic = message.topic;
                if let Err(e) = client
                    .publish(
                        topic.clone(),
                        QoS::AtLeastOnce,
                        message.retain,
                        message.payload,
                    )
                    .await
                {
                    tracing::warn!("cannot publish to {topic}: {e}");
                }
            }
        });
        Outbox { queue, task }
    }

    /// Queues a message; never waits.
    pub fn send(&self, topic: String, payload: Vec<u8>, retain: bool) {
        let message = Outgoing {
            topic,
            payload,
            retain,
        };
        if self.queue.send(message).is_err() {
            tracing::warn!("the outbox is closed: a message was not sent");
        }
    }

    /// A handle for tasks that publish later; it does not keep the outbox
    /// open (a message sent after `close` is dropped).
    pub fn handle(&self) -> OutboxHandle {
        OutboxHandle(self.queue.downgrade())
    }

    /// Lets the queued messages go to the client for up to `wait`, then
    /// drops the rest (the broker is unreachable, or too slow to matter at
    /// exit). Returns whether everything left.
    pub async fn close(self, wait: Duration) -> bool {
        let Outbox { queue, mut task } = self;
        drop(queue);
        match tokio::time::timeout(wait, &mut task).await {
            Ok(_) => true,
            Err(_) => {
                task.abort();
                false
            }
        }
    }
}

/// A weak handle on the outbox, for tasks that publish later.
pub struct OutboxHandle(mpsc::WeakUnboundedSender<Outgoing>);

impl OutboxHandle {
    pub fn send(&self, topic: String, payload: Vec<u8>, retain: bool) {
        if let Some(queue) = self.0.upgrade() {
            let _ = queue.send(Outgoing {
                topic,
                payload,
                retain,
            });
        }
    }
}
