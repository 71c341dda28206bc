//! `doctor`: the original cut-over verification, automated, against the
//! configured broker with the configured credentials. One line per check;
//! exit 0 only when all pass (3 when a connection fails, 1 otherwise).

use crate::cli::DoctorArgs;
use crate::config::{BrokerSettings, Config, Env};
use crate::error::{config_error, Exit, Failure};
use crate::model::event::now_ts;
use crate::model::{Event, EventKind, JobId};
use crate::mqtt::client::{publish_once, Publisher, Subscriber};
use crate::mqtt::connect::{connect, ConnectOptions};
use crate::mqtt::event::{decode, encode, Decoded};
use crate::mqtt::topic::events_topic;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

struct Report {
    failed: bool,
    unreachable: bool,
}

impl Report {
    fn pass(&mut self, what: &str) {
        println!("✓ {what}");
    }

    fn fail(&mut self, what: &str, failure: &Failure) {
        self.failed = true;
        println!("✗ {what}: {failure}");
        if let Some(help) = &failure.help {
            println!("  fix: {help}");
        }
    }

    fn skip(&mut self, what: &str) {
        println!("- {what}: skipped");
    }
}

fn describe(settings: &BrokerSettings) -> String {
    let mut how = vec![if settings.tls { "TLS" } else { "plain TCP" }];
    if settings.password.is_some() {
        how.push("password");
    }
    if settings.certfile.is_some() {
        how.push("client certificate");
    }
    format!(
        "`{}` at {}:{} ({})",
        settings.username.as_deref().unwrap_or("(anonymous)"),
        settings.host,
        settings.port,
        how.join(", ")
    )
}

fn payload(job: &JobId, kind: EventKind) -> Vec<u8> {
    let event = Event {
        job: job.to_string(),
        event: kind,
        attempt: 1,
        seq: None,
        ts: now_ts(),
        message: Some("tmux-delegate doctor".into()),
        data: None,
        sig: None,
    };
    encode(&event, None).unwrap_or_default()
}

pub async fn run(args: &DoctorArgs) -> anyhow::Result<Exit> {
    let config = Config::load(Env::from_process()?)?;
    let worker = config.worker_broker()?;
    let observer = if args.job_broker {
        None
    } else {
        config.observer_broker()?
    };
    let Some(worker) = worker else {
        return Err(config_error("no broker is configured: doctor checks a configured broker")
            .help("set MQTT_BROKER (and MQTT_PORT, ...), or run it in a directory with a tmux-delegate.toml (see `tmux-delegate broker setup`)")
            .into());
    };
    let job = crate::registry::new_job_id("doctor");
    let topic = events_topic(&worker.topic_prefix, &job);
    let mut report = Report {
        failed: false,
        unreachable: false,
    };

    // 1. connect, as each side.
    let sides: Vec<(&str, &BrokerSettings)> = match &observer {
        Some(o) => vec![("observer", o), ("worker", &worker)],
        None => vec![("worker", &worker)],
    };
    for (side, settings) in &sides {
        let what = format!("connect as the {side} {}", describe(settings));
        match connect(settings, &ConnectOptions::new("doctor")).await {
            Ok(connection) => {
                connection.close().await;
                report.pass(&what);
            }
            Err(failure) => {
                report.unreachable = true;
                report.fail(&what, &failure);
            }
        }
    }
    let checks = [
        "a subscriber receives `started` and `completed`",
        "a credential without write access is refused",
        "a late subscriber receives the retained `completed`",
    ];
    if report.unreachable {
        for check in checks {
            report.skip(check);
        }
        return Ok(Exit::BrokerUnreachable);
    }
    let Some(observer) = observer else {
        worker_can_publish(&worker, &topic, &job, &mut report).await;
        return Ok(if report.failed {
            Exit::JobFailed
        } else {
            Exit::Success
        });
    };

    // 2. delivery, 3. write refusal, 4. retained.
    delivery(&observer, &worker, &topic, &job, &mut report, checks[0]).await;
    write_refused(&observer, &topic, &job, &mut report, checks[1]).await;
    retained(&observer, &topic, &mut report, checks[2]).await;
    // Clean up: no retained message of ours outlives the check.
    if let Err(e) = publish_once(&worker, &topic, Vec::new(), true).await {
        println!("  note: could not clear the retained test event on {topic}: {e}");
    }
    Ok(if report.failed {
        Exit::JobFailed
    } else {
        Exit::Success
    })
}

async fn worker_can_publish(
    worker: &BrokerSettings,
    topic: &str,
    job: &JobId,
    report: &mut Report,
) {
    let what = format!("the worker may publish to {topic}");
    match publish_once(worker, topic, payload(job, EventKind::Heartbeat), false).await {
        Ok(_) => report.pass(&what),
        Err(failure) => report.fail(&what, &failure),
    }
}

async fn delivery(
    observer: &BrokerSettings,
    worker: &BrokerSettings,
    topic: &str,
    job: &JobId,
    report: &mut Report,
    what: &str,
) {
    let mut subscriber = match Subscriber::connect(
        observer,
        &ConnectOptions::new("doctor-sub"),
        vec![topic.to_owned()],
    )
    .await
    {
        Ok(s) => s,
        Err(failure) => return report.fail(what, &failure),
    };
    let mut publisher = match Publisher::connect(worker, &ConnectOptions::new("doctor-pub")).await {
        Ok(p) => p,
        Err(failure) => return report.fail(what, &failure),
    };
    for kind in [EventKind::Started, EventKind::Completed] {
        let retain = kind.is_terminal();
        if let Err(failure) = publisher
            .publish(topic, payload(job, kind), retain, WAIT)
            .await
        {
            publisher.close().await;
            return report.fail(&format!("{what} (the worker's publish)"), &failure);
        }
    }
    publisher.close().await;
    let mut seen = Vec::new();
    let received = tokio::time::timeout(WAIT, async {
        while seen.len() < 2 {
            let message = subscriber.next().await;
            if let Ok(Decoded::Event(event)) = decode(&message.payload) {
                seen.push(event.event);
            }
        }
    })
    .await;
    subscriber.disconnect().await;
    if received.is_ok() && seen == [EventKind::Started, EventKind::Completed] {
        report.pass(what);
    } else {
        let user = observer.username.as_deref().unwrap_or("(anonymous)");
        report.fail(
            what,
            &Failure::new(Exit::JobFailed, format!("the observer received {seen:?} within {}s", WAIT.as_secs())).help(format!(
                "let `{user}` read `{}/jobs/+/events` in the ACL (Mosquitto grants a denied subscription and then delivers nothing)",
                observer.topic_prefix
            )),
        );
    }
}

async fn write_refused(
    observer: &BrokerSettings,
    topic: &str,
    job: &JobId,
    report: &mut Report,
    what: &str,
) {
    match publish_once(observer, topic, payload(job, EventKind::Heartbeat), false).await {
        Err(failure) if failure.exit == Exit::PublishRefused => {
            report.pass(&format!("{what} (the observer's publish got PUBACK 0x87)"))
        }
        Err(failure) => report.fail(what, &failure),
        Ok(_) => {
            let user = observer.username.as_deref().unwrap_or("(anonymous)");
            report.fail(
                what,
                &Failure::new(Exit::JobFailed, format!("the broker accepted a publish to {topic} from the observer `{user}`: the ACL lets the observer write"))
                    .help(format!("give `{user}` only `topic read {}/jobs/+/events` in the broker's ACL (and allow_anonymous false)", observer.topic_prefix)),
            );
        }
    }
}

async fn retained(observer: &BrokerSettings, topic: &str, report: &mut Report, what: &str) {
    let mut subscriber = match Subscriber::connect(
        observer,
        &ConnectOptions::new("doctor-late"),
        vec![topic.to_owned()],
    )
    .await
    {
        Ok(s) => s,
        Err(failure) => return report.fail(what, &failure),
    };
    let got = tokio::time::timeout(WAIT, async {
        loop {
            let message = subscriber.next().await;
            if let Ok(Decoded::Event(event)) = decode(&message.payload) {
                if event.event == EventKind::Completed {
                    return message.retain;
                }
            }
        }
    })
    .await;
    subscriber.disconnect().await;
    match got {
        Ok(true) => report.pass(what),
        _ => report.fail(
            what,
            &Failure::new(Exit::JobFailed, "a subscriber that arrived after `completed` did not receive it retained")
                .help("check that the broker keeps retained messages (Mosquitto: on by default; `persistence true` keeps them across restarts)"),
        ),
    }
}
