//! Publishing one event (connect, PUBACK checked, clean disconnect) and
//! receiving events (subscribe, SUBACK checked, reconnect with backoff and
//! resubscribe on every CONNACK).

use super::connect::{connect, explain, with_retries, ConnectOptions, Connection};
use crate::config::BrokerSettings;
use crate::error::{broker_error, Exit, Failure};
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Event, EventLoop};
use rumqttc::Outgoing;
use std::time::Duration;

/// How a publish ended when the broker accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Accepted, but nobody was subscribed (MQTT 5 reason 0x10): still a success.
    NoSubscribers,
}

/// Publishes one QoS 1 message and waits for the broker's verdict. A refused
/// publish (e.g. PUBACK 0x87 from an ACL) is exit 4 naming the user and topic.
pub async fn publish_once(
    settings: &BrokerSettings,
    topic: &str,
    payload: Vec<u8>,
    retain: bool,
) -> Result<Delivery, Failure> {
    // QoS 1 is at least once: sending again after a dropped connection is
    // within its contract.
    with_retries(|| publish_attempt(settings, topic, payload.clone(), retain)).await
}

async fn publish_attempt(
    settings: &BrokerSettings,
    topic: &str,
    payload: Vec<u8>,
    retain: bool,
) -> Result<Delivery, Failure> {
    let mut options = ConnectOptions::new("pub");
    options.inflight = 1;
    let mut connection = connect(settings, &options).await?;
    connection
        .client
        .publish(topic, QoS::AtLeastOnce, retain, payload)
        .await
        .map_err(|e| broker_error(format!("cannot queue the publish: {e}")))?;
    let verdict = tokio::time::timeout(
        settings.connect_timeout,
        await_puback(&mut connection.eventloop, settings, topic),
    )
    .await
    .unwrap_or_else(|_| {
        Err(broker_error(format!(
            "the broker did not acknowledge the publish to `{topic}` within {}",
            humantime::format_duration(settings.connect_timeout)
        )))
    });
    // Refused or not, leave with a clean DISCONNECT (and TLS close_notify).
    connection.close().await;
    verdict
}

async fn await_puback(
    eventloop: &mut EventLoop,
    settings: &BrokerSettings,
    topic: &str,
) -> Result<Delivery, Failure> {
    let mut pkid = None;
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(id))) => pkid = Some(id),
            Ok(Event::Incoming(Packet::PubAck(ack))) if pkid.is_none_or(|id| id == ack.pkid) => {
                return verdict(ack.reason, settings, topic);
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                return Err(broker_error(format!(
                    "the broker disconnected during the publish to `{topic}`: {:?}",
                    d.reason_code
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(explain(&e, settings)),
        }
    }
}

/// What a PUBACK's reason code means: delivered (0x00, or 0x10 with no
/// subscriber) or refused (exit 4), naming the user and topic.
fn verdict(
    reason: PubAckReason,
    settings: &BrokerSettings,
    topic: &str,
) -> Result<Delivery, Failure> {
    match reason {
        PubAckReason::Success => Ok(Delivery::Delivered),
        PubAckReason::NoMatchingSubscribers => Ok(Delivery::NoSubscribers),
        PubAckReason::NotAuthorized => Err(publish_refused(settings, topic, "0x87 Not authorized")),
        other => Err(Failure::new(
            Exit::PublishRefused,
            format!("the broker refused the publish to `{topic}`: PUBACK {other:?}"),
        )),
    }
}

fn publish_refused(settings: &BrokerSettings, topic: &str, code: &str) -> Failure {
    let user = settings.username.as_deref().unwrap_or("(anonymous)");
    Failure::new(
        Exit::PublishRefused,
        format!("the broker refused the publish: user `{user}` may not write to `{topic}` (PUBACK {code})"),
    )
    .help(format!(
        "publish with the worker credential, or grant it in the broker's ACL: `user {user}` / `topic write {}/jobs/+/events`",
        settings.topic_prefix
    ))
}

async fn subscribe_all(
    client: &rumqttc::v5::AsyncClient,
    filters: &[String],
) -> Result<(), Failure> {
    for filter in filters {
        client
            .subscribe(filter.clone(), QoS::AtLeastOnce)
            .await
            .map_err(|e| {
                broker_error(format!("cannot queue the subscription to `{filter}`: {e}"))
            })?;
    }
    Ok(())
}

/// A message received on a subscription.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// What a subscription hears (see [`Subscriber::next_received`]).
#[derive(Debug, Clone)]
pub enum Received {
    Message(Message),
    /// The connection dropped; it is being made again with backoff.
    Lost,
    /// The connection was made again and the filters subscribed again.
    Restored,
}

/// A subscription that survives broker outages: it reconnects with backoff
/// and resubscribes on every CONNACK (rumqttc does not restore them).
pub struct Subscriber {
    connection: Connection,
    settings: BrokerSettings,
    options: ConnectOptions,
    filters: Vec<String>,
    backoff: Duration,
    /// Messages that arrived while later SUBACKs were awaited (the
    /// retained messages of the first filters): handed out first.
    early: std::collections::VecDeque<Message>,
    /// Whether the connection is up, as far as it knows (for `Lost`).
    connected: bool,
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Subscriber {
    /// Connects, subscribes to `filters` with QoS 1 and waits for the SUBACK.
    pub async fn connect(
        settings: &BrokerSettings,
        options: &ConnectOptions,
        filters: Vec<String>,
    ) -> Result<Subscriber, Failure> {
        with_retries(|| Subscriber::connect_once(settings, options, filters.clone())).await
    }

    async fn connect_once(
        settings: &BrokerSettings,
        options: &ConnectOptions,
        filters: Vec<String>,
    ) -> Result<Subscriber, Failure> {
        let connection = connect(settings, options).await?;
        let mut subscriber = Subscriber {
            connection,
            settings: settings.clone(),
            options: options.clone(),
            filters,
            backoff: Duration::from_millis(250),
            early: std::collections::VecDeque::new(),
            connected: true,
        };
        subscriber.subscribe().await?;
        let wait = subscriber.await_suback();
        tokio::time::timeout(settings.connect_timeout, wait)
            .await
            .unwrap_or_else(|_| {
                Err(broker_error(
                    "the broker did not acknowledge the subscription",
                ))
            })?;
        Ok(subscriber)
    }

    /// Owns what it needs, so a subscriber can be made inside a spawned
    /// (Send) task: the client is `Send` but not `Sync`.
    fn subscribe(&self) -> impl std::future::Future<Output = Result<(), Failure>> + Send + 'static {
        let client = self.connection.client.clone();
        let filters = self.filters.clone();
        async move { subscribe_all(&client, &filters).await }
    }

    async fn await_suback(&mut self) -> Result<(), Failure> {
        let mut pending = self.filters.len();
        while pending > 0 {
            match self.connection.eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if let Some(code) = ack
                        .return_codes
                        .iter()
                        .find(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                    {
                        let user = self.settings.username.as_deref().unwrap_or("(anonymous)");
                        return Err(broker_error(format!(
                            "the broker refused the subscription to {} for user `{user}`: {code:?}",
                            self.filters.join(", ")
                        ))
                        .help(format!(
                            "grant read access in the broker's ACL: `user {user}` / `topic read {}/jobs/+/events`",
                            self.settings.topic_prefix
                        )));
                    }
                    pending -= 1;
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    self.early.push_back(Message {
                        topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                        payload: publish.payload.to_vec(),
                        retain: publish.retain,
                    });
                }
                Ok(_) => {}
                Err(e) => return Err(explain(&e, &self.settings)),
            }
        }
        Ok(())
    }

    /// The next message. Connection losses are retried with backoff (logged,
    /// not returned); the caller keeps its own deadlines around this call.
    pub async fn next(&mut self) -> Message {
        loop {
            if let Received::Message(message) = self.next_received().await {
                return message;
            }
        }
    }

    /// The next message or change of the connection: `Lost` once when it
    /// drops, `Restored` when it is made again, after the SUBSCRIBEs are
    /// queued (so anything published on this connection after `Restored`
    /// is routed after the broker sent the resubscription's retained
    /// messages).
    pub async fn next_received(&mut self) -> Received {
        if let Some(message) = self.early.pop_front() {
            return Received::Message(message);
        }
        loop {
            match self.connection.eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    self.backoff = Duration::from_millis(250);
                    return Received::Message(Message {
                        topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                        payload: publish.payload.to_vec(),
                        retain: publish.retain,
                    });
                }
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!("reconnected to the broker; subscribing again");
                    // Only the client is held across the await: the event
                    // loop is not Sync, and this future must be Send.
                    let client = self.connection.client.clone();
                    if let Err(e) = subscribe_all(&client, &self.filters).await {
                        tracing::warn!("{e}");
                    }
                    self.connected = true;
                    return Received::Restored;
                }
                Ok(_) => {}
                Err(e) => {
                    let failure = explain(&e, &self.settings);
                    tracing::warn!(
                        "lost the broker connection ({failure}); retrying in {}",
                        humantime::format_duration(self.backoff)
                    );
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    if std::mem::take(&mut self.connected) {
                        return Received::Lost;
                    }
                }
            }
        }
    }

    /// A handle to publish on this connection (its Last Will included):
    /// the messages go out while `next` is being polled.
    pub fn client(&self) -> rumqttc::v5::AsyncClient {
        self.connection.client.clone()
    }

    /// Disconnects cleanly. A persistent session is ended too (reconnecting
    /// once with a clean start under the same client id, since rumqttc cannot
    /// send a session expiry in its DISCONNECT): otherwise the broker would
    /// keep queueing every job's events for it until the session expires.
    pub async fn disconnect(self) {
        self.connection.close().await;
        if self.options.clean_start || self.options.client_id.is_none() {
            return;
        }
        let mut clean = self.options.clone();
        clean.clean_start = true;
        clean.session_expiry = None;
        clean.last_will = None;
        match connect(&self.settings, &clean).await {
            Ok(connection) => connection.close().await,
            Err(e) => tracing::warn!("could not end the persistent session: {e}"),
        }
    }
}

/// A subscription being read in its own task (see [`forward`]).
pub struct Forwarding {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarding {
    /// Stops reading and disconnects cleanly, waiting at most `wait`;
    /// whether the connection closed in time.
    pub async fn close(self, wait: Duration) -> bool {
        let _ = self.stop.send(());
        tokio::time::timeout(wait, self.task).await.is_ok()
    }

    /// Drops the connection without a goodbye (the broker is unreachable:
    /// a clean disconnect would wait for it).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Reads `subscriber` without pause in its own task (its receive loop is
/// never cancelled half-way by a caller's select) and forwards every
/// message to the returned receiver, until the receiver is dropped or the
/// forwarding closed. Unbounded: while the caller is busy (a burst of
/// offers, hundreds of windows) the broker's queue for this client
/// (Mosquitto drops past `max_queued_messages`) never fills.
pub fn forward(
    subscriber: Subscriber,
) -> (tokio::sync::mpsc::UnboundedReceiver<Message>, Forwarding) {
    forward_picking(subscriber, |received| match received {
        Received::Message(message) => Some(message),
        Received::Lost | Received::Restored => None,
    })
}

/// Like [`forward`], with the connection's changes in the same ordered
/// stream as its messages (the fleet runner resynchronises on them).
pub fn forward_received(
    subscriber: Subscriber,
) -> (tokio::sync::mpsc::UnboundedReceiver<Received>, Forwarding) {
    forward_picking(subscriber, Some)
}

fn forward_picking<T: Send + 'static>(
    subscriber: Subscriber,
    pick: fn(Received) -> Option<T>,
) -> (tokio::sync::mpsc::UnboundedReceiver<T>, Forwarding) {
    let (tx, messages) = tokio::sync::mpsc::unbounded_channel();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut subscriber = subscriber;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                received = subscriber.next_received() => {
                    if let Some(item) = pick(received) {
                        if tx.send(item).is_err() {
                            break;
                        }
                    }
                }
            }
        }
        subscriber.disconnect().await;
    });
    (messages, Forwarding { stop, task })
}

/// A long-lived publishing connection (the window's wrapper): a background
/// task keeps polling the event loop (keepalive, reconnects) and reports
/// each PUBACK; `publish` waits for its own.
/// What the publisher's event loop task reports.
enum Heard {
    Ack(PubAckReason),
    /// The connection was lost and made again (a clean session: what was
    /// in flight is gone).
    Reconnected,
}

pub struct Publisher {
    client: rumqttc::v5::AsyncClient,
    acks: tokio::sync::mpsc::UnboundedReceiver<Heard>,
    /// The messages of the filters it watches, until taken.
    incoming: Option<tokio::sync::mpsc::UnboundedReceiver<Message>>,
    task: tokio::task::JoinHandle<EventLoop>,
    stop: tokio::sync::oneshot::Sender<()>,
    settings: BrokerSettings,
}

impl Publisher {
    pub async fn connect(
        settings: &BrokerSettings,
        options: &ConnectOptions,
    ) -> Result<Publisher, Failure> {
        Publisher::connect_watching(settings, options, Vec::new()).await
    }

    /// Like `connect`, and subscribed to `filters` on this same connection
    /// (again after every reconnect): a fleet job's window watches its
    /// job's fence without a second connection. Their messages come from
    /// [`Publisher::take_incoming`].
    pub async fn connect_watching(
        settings: &BrokerSettings,
        options: &ConnectOptions,
        filters: Vec<String>,
    ) -> Result<Publisher, Failure> {
        let Connection {
            client,
            mut eventloop,
        } = connect(settings, options).await?;
        subscribe_all(&client, &filters).await?;
        let (ack_tx, acks) = tokio::sync::mpsc::unbounded_channel();
        let (incoming_tx, incoming) = tokio::sync::mpsc::unbounded_channel();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let resubscriber = client.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                tokio::select! {
                    _ = &mut stopped => return eventloop,
                    polled = eventloop.poll() => match polled {
                        Ok(Event::Incoming(Packet::PubAck(ack))) => {
                            backoff = Duration::from_millis(250);
                            let _ = ack_tx.send(Heard::Ack(ack.reason));
                        }
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            let _ = incoming_tx.send(Message {
                                topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                                payload: publish.payload.to_vec(),
                                retain: publish.retain,
                            });
                        }
                        // The first CONNACK was taken by `connect`: this is a reconnect.
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let _ = ack_tx.send(Heard::Reconnected);
                            // A clean session: the subscriptions are gone.
                            if let Err(e) = subscribe_all(&resubscriber, &filters).await {
                                tracing::warn!("{e}");
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!("broker connection lost: {e}; retrying in {}", humantime::format_duration(backoff));
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    },
                }
            }
        });
        Ok(Publisher {
            client,
            acks,
            incoming: Some(incoming),
            task,
            stop,
            settings: settings.clone(),
        })
    }

    /// Publishes with QoS 1 and waits (up to `wait`) for the broker's
    /// verdict. A publish in flight when the connection is remade is sent
    /// again (the clean session dropped it; a duplicate is within QoS 1).
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
        wait: Duration,
    ) -> Result<Delivery, Failure> {
        // Nothing heard before this publish belongs to it.
        while self.acks.try_recv().is_ok() {}
        let deadline = tokio::time::Instant::now() + wait;
        let mut sends = 0;
        loop {
            sends += 1;
            self.client
                .publish(topic, QoS::AtLeastOnce, retain, payload.clone())
                .await
                .map_err(|e| broker_error(format!("cannot queue the publish to `{topic}`: {e}")))?;
            loop {
                match tokio::time::timeout_at(deadline, self.acks.recv()).await {
                    Ok(Some(Heard::Ack(reason))) => return verdict(reason, &self.settings, topic),
                    Ok(Some(Heard::Reconnected)) if sends < 3 => break,
                    Ok(Some(Heard::Reconnected)) => {}
                    Ok(None) | Err(_) => {
                        return Err(broker_error(format!(
                            "no acknowledgement for the publish to `{topic}` within {}",
                            humantime::format_duration(wait)
                        )))
                    }
                }
            }
        }
    }

    /// The messages of the watched filters (once: the receiver is moved out,
    /// so a caller can wait on it while it publishes).
    pub fn take_incoming(&mut self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Message>> {
        self.incoming.take()
    }

    /// Disconnects cleanly, so the Last Will does not fire.
    pub async fn close(self) {
        let _ = self.stop.send(());
        if let Ok(eventloop) = self.task.await {
            Connection {
                client: self.client,
                eventloop,
            }
            .close()
            .await;
        }
    }
}
