//! Connecting to a broker: MQTT 5 options, TLS (private CA, mTLS) on rustls'
//! ring provider, and turning every way a connection can fail into a message
//! that says what to fix. Connecting never hangs: it fails within the
//! configured `connect_timeout`.

use crate::config::BrokerSettings;
use crate::error::{broker_error, config_error, Failure};
use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};
use std::sync::Arc;
use std::time::Duration;

/// The largest packet the broker may send us (MQTT 5 Maximum Packet Size).
const MAX_INCOMING_PACKET: u32 = 1024 * 1024;

/// The keepalive of every connection but a runner's (`fleet.keepalive`).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(30);

/// How a connection is opened.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Distinguishes the client id: `<prefix>-<role>-<pid>-<random>`.
    pub role: &'static str,
    /// A fixed client id (for persistent sessions); overrides `role`.
    pub client_id: Option<String>,
    pub clean_start: bool,
    /// Session expiry in seconds for persistent sessions.
    pub session_expiry: Option<u32>,
    pub last_will: Option<LastWill>,
    /// Outgoing QoS 1 window; rumqttc's default (65535) costs ~8 ms and
    /// ~5.6 MiB per process (FIELD-NOTES).
    pub inflight: u16,
    /// How often the client speaks (a PINGREQ when idle): the broker
    /// declares it gone, and fires its Last Will, after 1.5 times this.
    pub keep_alive: Duration,
}

impl ConnectOptions {
    pub fn new(role: &'static str) -> ConnectOptions {
        ConnectOptions {
            role,
            client_id: None,
            clean_start: true,
            session_expiry: None,
            last_will: None,
            inflight: 8,
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }
}

/// The message the broker publishes for a client whose connection is lost
/// (at QoS 1, like every message of ours): the worker's `lost` event, a
/// runner's `offline` presence.
#[derive(Debug, Clone, PartialEq)]
pub struct LastWill {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl LastWill {
    fn to_mqtt(&self) -> rumqttc::v5::mqttbytes::v5::LastWill {
        rumqttc::v5::mqttbytes::v5::LastWill::new(
            self.topic.clone(),
            self.payload.clone(),
            QoS::AtLeastOnce,
            self.retain,
            None,
        )
    }
}

/// A connected client and the event loop that must be polled for it to work.
pub struct Connection {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
}

impl Connection {
    /// A clean DISCONNECT (so no Last Will fires), flushed within a second.
    pub async fn close(mut self) {
        if self.client.disconnect().await.is_ok() {
            let drain = async {
                loop {
                    match self.eventloop.poll().await {
                        Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        }
    }
}

pub fn client_id(prefix: &str, role: &str) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    let suffix = Alphanumeric.sample_string(&mut rand::thread_rng(), 6);
    format!("{prefix}-{role}-{}-{suffix}", std::process::id())
}

/// Builds the rumqttc options for `settings` (TLS included).
pub fn mqtt_options(
    settings: &BrokerSettings,
    options: &ConnectOptions,
) -> Result<MqttOptions, Failure> {
    let id = options
        .client_id
        .clone()
        .unwrap_or_else(|| client_id(&settings.client_id_prefix, options.role));
    let mut mqtt = MqttOptions::new(id, settings.host.clone(), settings.port);
    mqtt.set_keep_alive(options.keep_alive);
    mqtt.set_clean_start(options.clean_start);
    // rumqttc drops the connection on an incoming packet over 10 KiB; events
    // may be up to 64 KiB, and larger ones must be logged, not be fatal.
    mqtt.set_max_packet_size(Some(MAX_INCOMING_PACKET));
    mqtt.set_outgoing_inflight_upper_limit(options.inflight);
    mqtt.set_connection_timeout(settings.connect_timeout.as_secs().max(1));
    if let Some(expiry) = options.session_expiry {
        mqtt.set_session_expiry_interval(Some(expiry));
    }
    if let Some(will) = &options.last_will {
        mqtt.set_last_will(will.to_mqtt());
    }
    if let Some(user) = &settings.username {
        let password = settings.password.as_ref().map_or("", |p| p.expose());
        mqtt.set_credentials(user.clone(), password.to_owned());
    }
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(settings.connect_timeout.as_secs().max(1));
    mqtt.set_network_options(network);
    if settings.tls {
        mqtt.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(
            tls_config(settings)?,
        ))));
    }
    Ok(mqtt)
}

/// rustls client configuration on the ring provider: the private CA from
/// `ca_certs` (else the system roots) and the client certificate, if any.
pub fn tls_config(settings: &BrokerSettings) -> Result<ClientConfig, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &settings.ca_certs {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| {
                    config_error(format!("cannot read the CA file {}: {e}", path.display()))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(config_error(format!(
                    "the CA file {} holds no usable PEM certificate",
                    path.display()
                ))
                .help("point MQTT_CA_CERTS (or `ca_certs`) at the PEM certificate of the CA that signed the broker's certificate"));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots);
    match (&settings.certfile, &settings.keyfile) {
        (Some(cert_path), Some(key_path)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
                .and_then(Iterator::collect)
                .map_err(|e| {
                    config_error(format!(
                        "cannot read the client certificate {}: {e}",
                        cert_path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(config_error(format!(
                    "the client certificate file {} holds no PEM certificate",
                    cert_path.display()
                )));
            }
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                let encrypted =
                    std::fs::read_to_string(key_path).is_ok_and(|text| text.contains("ENCRYPTED"));
                if encrypted {
                    config_error(format!(
                        "the client key {} is encrypted; tmux-delegate needs an unencrypted key",
                        key_path.display()
                    ))
                    .help("decrypt it: openssl pkey -in KEY -out KEY.plain (and keep it 0600)")
                } else {
                    config_error(format!(
                        "cannot read a private key from {}: {e}",
                        key_path.display()
                    ))
                    .help("use a PEM key: RSA (PKCS#1 or PKCS#8), EC (SEC1 or PKCS#8) or Ed25519")
                }
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                config_error(format!(
                    "the client key {} does not fit the certificate {}: {e}",
                    key_path.display(),
                    cert_path.display()
                ))
            })
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Runs `attempt` up to three times while it fails transiently (the broker
/// closed the connection without a reason code): rumqttd 0.20 reuses a
/// connection id as soon as a client disconnects and then closes the
/// newcomer when the old link's late disconnect arrives. A broker that
/// really refuses (a wrong password on rumqttd also just closes) costs
/// ~60 ms more before the same error.
pub async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut tries = 0_u64;
    loop {
        match attempt().await {
            Err(failure) if failure.transient && tries < 2 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20 * tries)).await;
            }
            outcome => return outcome,
        }
    }
}

/// Connects and waits for the broker's CONNACK, within `connect_timeout`.
pub async fn connect(
    settings: &BrokerSettings,
    options: &ConnectOptions,
) -> Result<Connection, Failure> {
    let attempts = with_retries(|| connect_once(settings, options));
    tokio::time::timeout(settings.connect_timeout, attempts)
        .await
        .unwrap_or_else(|_| Err(no_answer(settings)))
}

async fn connect_once(
    settings: &BrokerSettings,
    options: &ConnectOptions,
) -> Result<Connection, Failure> {
    let mqtt = mqtt_options(settings, options)?;
    let (client, mut eventloop) = AsyncClient::new(mqtt, 16);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(Connection { client, eventloop }),
            Ok(_) => {}
            Err(e) => return Err(explain(&e, settings)),
        }
    }
}

fn endpoint(settings: &BrokerSettings) -> String {
    format!(
        "{}:{} ({})",
        settings.host,
        settings.port,
        if settings.tls { "TLS" } else { "plain TCP" }
    )
}

/// Where host and port came from: "host `h` from MQTT_BROKER, port 1883
/// from `broker.port` at ./tmux-delegate.toml:3".
fn where_from(settings: &BrokerSettings) -> String {
    use crate::config::origin::Origin;
    let port = match &settings.origin.port {
        Origin::Default => format!(
            "port {} by default for {}",
            settings.port,
            if settings.tls { "TLS" } else { "plain TCP" }
        ),
        origin => format!("port {} from {origin}", settings.port),
    };
    format!(
        "host `{}` from {}, {port}",
        settings.host, settings.origin.host
    )
}

/// The embedded broker a job record points at has ended with its `run`.
fn embedded_broker_ended(job: &str, settings: &BrokerSettings) -> Failure {
    broker_error(format!(
        "job {job} reported to the embedded broker of its `run`, which has ended \
         (nothing listens at {}:{} any more)",
        settings.host, settings.port
    ))
    .help(format!(
        "`tmux-delegate logs {job}` shows the job's history; its events travel only while that `run` goes on"
    ))
}

/// Where the user name and password came from, as a next step.
fn credentials_from(settings: &BrokerSettings) -> String {
    use crate::config::origin::Origin;
    let origin = &settings.origin;
    match (&origin.username, &origin.password) {
        (Origin::Default, Origin::Default) => {
            "no user name or password is configured: set MQTT_USERNAME and MQTT_PASSWORD \
             (or `username` and `password_file` in [broker])"
                .to_owned()
        }
        (user, Origin::Default) => {
            format!("check the user name (from {user}); no password is configured")
        }
        (Origin::Default, password) => {
            format!("check the password (from {password}); no user name is configured")
        }
        (user, password) => {
            format!("check the user name (from {user}) and the password (from {password})")
        }
    }
}

/// Where the TLS switch came from, for a TLS/plain mismatch.
fn tls_from(settings: &BrokerSettings) -> String {
    use crate::config::origin::Origin;
    let state = if settings.tls { "on" } else { "off" };
    match &settings.origin.tls {
        Origin::Default if settings.tls => {
            format!("TLS is {state} because a CA or client certificate is set")
        }
        Origin::Default => format!("TLS is {state} by default"),
        origin => format!("TLS is {state} from {origin}"),
    }
}

fn who(settings: &BrokerSettings) -> String {
    settings.username.as_ref().map_or_else(
        || "an anonymous client".to_owned(),
        |u| format!("user `{u}`"),
    )
}

fn no_answer(settings: &BrokerSettings) -> Failure {
    broker_error(format!(
        "no answer from the broker at {} within {}",
        endpoint(settings),
        humantime::format_duration(settings.connect_timeout)
    ))
    .help(format!(
        "check the {}, the firewall, and that TLS ({}) matches the port",
        where_from(settings),
        if settings.tls { "on" } else { "off" }
    ))
}

/// The I/O error inside a connection error: rumqttc wraps it in several
/// shapes, not all of which expose it through `source()`.
fn io_error_of(error: &ConnectionError) -> Option<&std::io::Error> {
    use rumqttc::v5::mqttbytes::Error as MqttError;
    use rumqttc::v5::{StateError, TlsError};
    match error {
        ConnectionError::Io(io)
        | ConnectionError::MqttState(
            StateError::Io(io) | StateError::Deserialization(MqttError::Io(io)),
        )
        | ConnectionError::Tls(TlsError::Io(io)) => Some(io),
        _ => None,
    }
}

/// The rustls error behind a connection error, if any.
fn rustls_error_of(error: &ConnectionError) -> Option<&rustls::Error> {
    if let ConnectionError::Tls(rumqttc::v5::TlsError::TLS(tls)) = error {
        return Some(tls);
    }
    io_error_of(error)?
        .get_ref()?
        .downcast_ref::<rustls::Error>()
}

/// The broker (or something on its port) closed the connection without a
/// reason code.
fn closed_early(error: &ConnectionError) -> bool {
    rustls_error_of(error).is_none()
        && (matches!(
            error,
            ConnectionError::MqttState(rumqttc::v5::StateError::ConnectionAborted)
        ) || matches!(
            io_error_of(error).map(std::io::Error::kind),
            Some(
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            )
        ))
}

/// Maps a connection failure to a message that names the cause and the fix.
pub fn explain(error: &ConnectionError, settings: &BrokerSettings) -> Failure {
    let at = endpoint(settings);
    if let ConnectionError::ConnectionRefused(code) = error {
        return refused(*code, settings);
    }
    if let ConnectionError::Timeout(_) = error {
        return no_answer(settings);
    }
    if let Some(tls) = rustls_error_of(error) {
        return tls_failure(tls, settings);
    }
    if let ConnectionError::NotConnAck(packet) = error {
        return broker_error(format!(
            "the server at {at} answered the MQTT 5 CONNECT with {packet:?} instead of a CONNACK"
        ))
        .help("check that the port is an MQTT 5 capable listener");
    }
    match io_error_of(error).map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => {
            if let Some(job) = settings.origin.embedded_run_of() {
                return embedded_broker_ended(job, settings);
            }
            return broker_error(format!(
                "nothing accepts connections at {at} (connection refused)"
            ))
            .help(format!("is the broker running? {}", where_from(settings)));
        }
        Some(std::io::ErrorKind::NotFound) => {
            return broker_error(format!(
                "cannot resolve the broker host `{}`",
                settings.host
            ))
            .help(format!("the host came from {}", settings.origin.host))
        }
        _ => {}
    }
    if closed_early(error) {
        return broker_error(format!(
            "the broker at {at} closed the connection before accepting {}",
            who(settings)
        ))
        .transient()
        .help(format!(
            "likely causes: wrong credentials on a broker that closes without a reason code ({}), \
             a client certificate the broker requires or rejects, or a TLS/plain mismatch ({}, {})",
            credentials_from(settings),
            tls_from(settings),
            where_from(settings)
        ));
    }
    broker_error(format!("cannot connect to the broker at {at}: {error}"))
}

fn refused(code: ConnectReturnCode, settings: &BrokerSettings) -> Failure {
    let at = endpoint(settings);
    match code {
        ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword => {
            broker_error(format!(
                "the broker at {at} refused {}: {} (wrong password, unknown user, or missing credentials)",
                who(settings),
                if code == ConnectReturnCode::NotAuthorized { "not authorized" } else { "bad user name or password" }
            ))
            .help(credentials_from(settings))
        }
        other => broker_error(format!("the broker at {at} refused the connection: {other:?}")),
    }
}

fn tls_failure(error: &rustls::Error, settings: &BrokerSettings) -> Failure {
    let at = endpoint(settings);
    let ca = settings.ca_certs.as_ref().map_or_else(
        || "the system's trusted roots".to_owned(),
        |p| p.display().to_string(),
    );
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => broker_error(format!(
            "TLS verification failed: the broker's certificate at {at} is not signed by the CA in {ca} (unknown issuer)"
        ))
        .help(match &settings.origin.ca_certs {
            crate::config::origin::Origin::Default => "set MQTT_CA_CERTS (or `ca_certs` in [broker]) to the CA certificate that signed the broker's certificate".to_owned(),
            origin => format!("the CA file came from {origin}: point it at the CA certificate that signed the broker's certificate"),
        }),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => broker_error(format!(
            "TLS verification failed: the broker's certificate is not valid for the name `{}`",
            settings.host
        ))
        .help("connect with a host name the certificate lists in its SANs, or reissue the certificate"),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => broker_error(format!("TLS verification failed: the broker's certificate at {at} has expired"))
            .help("renew the broker's certificate"),
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure,
        ) if settings.certfile.is_none() => broker_error(format!(
            "the broker at {at} requires a client certificate and none is configured"
        ))
        .help("set MQTT_CERTFILE and MQTT_KEYFILE (or `certfile`/`keyfile` in [broker])"),
        rustls::Error::AlertReceived(
            AlertDescription::UnknownCA | AlertDescription::BadCertificate | AlertDescription::CertificateUnknown | AlertDescription::AccessDenied,
        ) => broker_error(format!(
            "the broker at {at} rejected the client certificate {} (TLS alert: {error})",
            settings
                .certfile
                .as_ref()
                .map_or_else(|| "(none)".to_owned(), |p| p.display().to_string())
        ))
        .help(format!(
            "use a client certificate signed by the CA the broker trusts (its `cafile`); this one came from {}",
            settings.origin.certfile
        )),
        rustls::Error::InvalidMessage(_) => broker_error(format!(
            "the server at {at} does not speak TLS ({error})"
        ))
        .help(format!(
            "the port may be a plain MQTT listener ({}, {}): switch TLS off or use the TLS port",
            tls_from(settings),
            where_from(settings)
        )),
        other => broker_error(format!("TLS with the broker at {at} failed: {other}")),
    }
}
