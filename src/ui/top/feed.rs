//! Events straight from the broker, when one is configured: the registry
//! gets an event's text only at the supervisor's next tick, the broker has
//! it at once. A view only: nothing here changes a job's state.

use crate::config::Config;
use crate::mqtt::client::Subscriber;
use crate::mqtt::connect::ConnectOptions;
use crate::mqtt::event::{decode, Decoded};
use crate::mqtt::topic::{all_events_filter, job_of_topic};
use tokio::sync::mpsc;

/// One event: the job id and the event as the table's last-event cell.
pub type Seen = (String, String);

/// Subscribes in the background to every job's events on the configured
/// (observer) broker; `None` when no broker is configured (the embedded
/// broker of each `run` is private to it: the registry is the source then).
pub fn spawn(config: &Config) -> Option<mpsc::UnboundedReceiver<Seen>> {
    let settings = config.observer_broker().ok().flatten()?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let filter = all_events_filter(&settings.topic_prefix);
        let mut subscriber =
            match Subscriber::connect(&settings, &ConnectOptions::new("top"), vec![filter]).await {
                Ok(subscriber) => subscriber,
                Err(e) => {
                    let _ = tx.send((String::new(), format!("broker: {e}")));
                    return;
                }
            };
        loop {
            let message = subscriber.next().await;
            let Some(job) = job_of_topic(&settings.topic_prefix, &message.topic) else {
                continue;
            };
            let Ok(Decoded::Event(event)) = decode(&message.payload) else {
                continue;
            };
            let text = match event.message {
                Some(m) => format!("{} {}", event.event, m.lines().next().unwrap_or_default()),
                None => event.event.to_string(),
            };
            if tx.send((job.to_string(), text)).is_err() {
                break;
            }
        }
    });
    Some(rx)
}
