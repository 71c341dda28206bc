//! Broker connection settings: which layers they come from, the `MQTT_*`
//! environment layer, and the resolved, validated [`BrokerSettings`] that the
//! MQTT layer connects with and that job records carry as their `broker` block.

use super::file::{BrokerFields, PasswordFrom};
use super::origin::{KeyLines, Origin};
use super::{Config, Env, Secret, Source};
use crate::error::{config_error, Failure};
use crate::mqtt::topic::{validate_prefix, DEFAULT_TOPIC_PREFIX};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A resolved broker connection. Serialised as a job record's `broker` block:
/// a superset of the original scripts' `{host, port, tls, username, password}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerSettings {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certfile: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyfile: Option<PathBuf>,
    #[serde(default = "default_client_id_prefix")]
    pub client_id_prefix: String,
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    #[serde(
        default = "default_connect_timeout",
        with = "super::humantime_serde_compat"
    )]
    pub connect_timeout: Duration,
    /// The embedded broker of a `run`: it ends with that `run`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embedded: bool,
    /// Where host and port came from, for connection errors.
    #[serde(skip)]
    pub origin: BrokerOrigin,
}

/// Where a resolved broker's host and port came from. Not part of the
/// value: two settings that connect the same way are equal wherever they
/// were written.
#[derive(Debug, Clone)]
pub struct BrokerOrigin {
    pub host: Origin,
    pub port: Origin,
    pub tls: Origin,
    pub username: Origin,
    pub password: Origin,
    pub ca_certs: Origin,
    pub certfile: Origin,
}

impl Default for BrokerOrigin {
    fn default() -> Self {
        BrokerOrigin {
            host: Origin::Default,
            port: Origin::Default,
            tls: Origin::Default,
            username: Origin::Default,
            password: Origin::Default,
            ca_certs: Origin::Default,
            certfile: Origin::Default,
        }
    }
}

impl PartialEq for BrokerOrigin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl BrokerOrigin {
    /// The job whose record gave host and port, when that record's broker
    /// is the embedded one of its `run`.
    pub fn embedded_run_of(&self) -> Option<&str> {
        match &self.host {
            Origin::Record {
                job,
                embedded: true,
                ..
            } => Some(job),
            _ => None,
        }
    }
}

fn default_client_id_prefix() -> String {
    "hermes".into()
}

fn default_topic_prefix() -> String {
    DEFAULT_TOPIC_PREFIX.into()
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

/// One layer of broker fields and where it came from.
#[derive(Debug, Clone)]
pub struct BrokerLayer {
    pub source: Source,
    /// `broker` or `broker.worker`, for messages about file layers.
    pub table: &'static str,
    pub fields: BrokerFields,
    /// A file layer's key lines.
    pub keys: Option<KeyLines>,
    /// A record layer whose broker is the embedded one of its `run`.
    pub embedded: bool,
}

/// The file-valued fields, named in messages about unreadable files.
#[derive(Debug, Clone, Copy)]
enum Field {
    CaCerts,
    Certfile,
    Keyfile,
    Host,
    Port,
    Tls,
    Username,
    Password,
}

impl Field {
    fn env_var(self) -> &'static str {
        match self {
            Field::Tls => "MQTT_TLS",
            Field::Username => "MQTT_USERNAME",
            Field::Password => "MQTT_PASSWORD",
            Field::CaCerts => "MQTT_CA_CERTS",
            Field::Certfile => "MQTT_CERTFILE",
            Field::Keyfile => "MQTT_KEYFILE",
            Field::Host => "MQTT_BROKER",
            Field::Port => "MQTT_PORT",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Field::Tls => "tls",
            Field::Username => "username",
            Field::Password => "password",
            Field::CaCerts => "ca_certs",
            Field::Certfile => "certfile",
            Field::Keyfile => "keyfile",
            Field::Host => "host",
            Field::Port => "port",
        }
    }
}

impl BrokerLayer {
    /// Where this layer sets `field`: `MQTT_PORT`, "`broker.port` at
    /// ./tmux-delegate.toml:3" or "`broker.port` in the record of job X".
    fn origin_of(&self, field: Field) -> Origin {
        self.origin_of_key(field, field.key())
    }

    /// As [`Self::origin_of`], for a field written under another key
    /// (`password_file` and `password_env` set the password).
    fn origin_of_key(&self, field: Field, key: &str) -> Origin {
        let key = format!("{}.{key}", self.table);
        match (&self.source, &self.keys) {
            (Source::Env, _) => Origin::Env(field.env_var().to_owned()),
            (Source::Record(job), _) => Origin::Record {
                key,
                job: job.clone(),
                embedded: self.embedded,
            },
            (_, Some(keys)) => keys.origin(&key),
            (Source::User(path) | Source::Project(path), None) => Origin::File {
                key,
                path: path.clone(),
                line: None,
            },
        }
    }

    fn name_of(&self, field: Field) -> String {
        self.origin_of(field).to_string()
    }
}

/// The `MQTT_*` variables as a layer. Malformed values are errors that name
/// the variable.
pub fn env_layer(env: &Env) -> Result<BrokerLayer, Failure> {
    let path = |name: &str| {
        env.var(name)
            .map(|p| super::expand_path(Path::new(p), &env.cwd, env.home.as_deref()))
    };
    let port = match env.var("MQTT_PORT") {
        None => None,
        Some(text) => Some(parse_port(text).map_err(|problem| {
            config_error(format!("MQTT_PORT={text}: {problem}"))
                .help("set MQTT_PORT to a port number from 1 to 65535, e.g. 1883 or 8883")
        })?),
    };
    let tls = match env.var("MQTT_TLS") {
        None => None,
        Some(text) => Some(parse_bool(text).ok_or_else(|| {
            config_error(format!("MQTT_TLS={text}: not a boolean"))
                .help("set MQTT_TLS to 1, 0, true or false")
        })?),
    };
    if let Some(prefix) = env.var("MQTT_TOPIC_PREFIX") {
        validate_prefix(prefix).map_err(|e| config_error(format!("MQTT_TOPIC_PREFIX: {e}")))?;
    }
    Ok(BrokerLayer {
        source: Source::Env,
        table: "broker",
        keys: None,
        embedded: false,
        fields: BrokerFields {
            host: env.var("MQTT_BROKER").map(str::to_owned),
            port,
            tls,
            ca_certs: path("MQTT_CA_CERTS"),
            certfile: path("MQTT_CERTFILE"),
            keyfile: path("MQTT_KEYFILE"),
            username: env.var("MQTT_USERNAME").map(str::to_owned),
            password: env
                .var("MQTT_PASSWORD")
                .map(|p| PasswordFrom::Literal(Secret::new(p))),
            client_id_prefix: env.var("MQTT_CLIENT_ID_PREFIX").map(str::to_owned),
            topic_prefix: env.var("MQTT_TOPIC_PREFIX").map(str::to_owned),
            connect_timeout: None,
        },
    })
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u32>() {
        Ok(0) => Err("port 0 is not a valid port".into()),
        Ok(n) => u16::try_from(n).map_err(|_| format!("{n} is out of range (1-65535)")),
        Err(_) => Err("not a port number".into()),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The record's broker block as the lowest layer for `publish`.
pub fn record_layer(job: &str, settings: &BrokerSettings) -> BrokerLayer {
    BrokerLayer {
        source: Source::Record(job.to_owned()),
        table: "broker",
        keys: None,
        embedded: settings.embedded,
        fields: BrokerFields {
            host: Some(settings.host.clone()),
            port: Some(settings.port),
            tls: Some(settings.tls),
            ca_certs: settings.ca_certs.clone(),
            certfile: settings.certfile.clone(),
            keyfile: settings.keyfile.clone(),
            username: settings.username.clone(),
            password: settings.password.clone().map(PasswordFrom::Literal),
            client_id_prefix: Some(settings.client_id_prefix.clone()),
            topic_prefix: Some(settings.topic_prefix.clone()),
            connect_timeout: Some(settings.connect_timeout),
        },
    }
}

impl Config {
    /// The topic prefix in force without a broker block: `MQTT_TOPIC_PREFIX`,
    /// else the highest file that sets one, else the default.
    pub fn topic_prefix(&self) -> String {
        self.env
            .var("MQTT_TOPIC_PREFIX")
            .map(str::to_owned)
            .or_else(|| {
                self.layers
                    .iter()
                    .find_map(|l| l.broker.topic_prefix.clone())
            })
            .unwrap_or_else(default_topic_prefix)
    }

    fn observer_file_layers(&self) -> impl Iterator<Item = BrokerLayer> + '_ {
        self.layers.iter().map(|l| BrokerLayer {
            source: l.source.clone(),
            table: "broker",
            fields: l.broker.clone(),
            keys: Some(l.keys.clone()),
            embedded: false,
        })
    }

    fn worker_file_layers(&self) -> impl Iterator<Item = BrokerLayer> + '_ {
        self.layers.iter().filter_map(|l| {
            l.worker.clone().map(|fields| BrokerLayer {
                source: l.source.clone(),
                table: "broker.worker",
                fields,
                keys: Some(l.keys.clone()),
                embedded: false,
            })
        })
    }

    /// The observer side (`run`, `watch`, `status`, `doctor`): env over files.
    /// `None` when no layer names a host.
    pub fn observer_broker(&self) -> Result<Option<BrokerSettings>, Failure> {
        let mut layers = vec![env_layer(&self.env)?];
        layers.extend(self.observer_file_layers());
        resolve(&layers, &self.env)
    }

    /// The worker side: `[broker.worker]` fields, else the effective observer
    /// value (env included).
    pub fn worker_broker(&self) -> Result<Option<BrokerSettings>, Failure> {
        let mut layers: Vec<BrokerLayer> = self.worker_file_layers().collect();
        layers.push(env_layer(&self.env)?);
        layers.extend(self.observer_file_layers());
        resolve(&layers, &self.env)
    }

    /// What `publish` connects with: env over the job record's broker block;
    /// without a record, env over `[broker.worker]` over `[broker]`.
    pub fn publisher_broker(
        &self,
        record: Option<(&str, &BrokerSettings)>,
    ) -> Result<Option<BrokerSettings>, Failure> {
        let mut layers = vec![env_layer(&self.env)?];
        match record {
            Some((job, settings)) => layers.push(record_layer(job, settings)),
            None => {
                layers.extend(self.worker_file_layers());
                layers.extend(self.observer_file_layers());
            }
        }
        resolve(&layers, &self.env)
    }
}

/// The first layer that sets a field, with the field's value.
fn pick<'a, T>(
    layers: &'a [BrokerLayer],
    get: impl Fn(&'a BrokerFields) -> Option<T>,
) -> Option<(T, &'a BrokerLayer)> {
    layers
        .iter()
        .find_map(|layer| get(&layer.fields).map(|value| (value, layer)))
}

/// Merges `layers` (highest first) field by field and validates the result.
pub fn resolve(layers: &[BrokerLayer], env: &Env) -> Result<Option<BrokerSettings>, Failure> {
    let Some((host, host_layer)) = pick(layers, |f| f.host.clone()) else {
        return Ok(None);
    };
    let port_layer = pick(layers, |f| f.port).map(|(_, layer)| layer);
    let origin = origins(layers, host_layer, port_layer);
    // The record's broker stays "embedded" only as long as it is what we use.
    let embedded = host_layer.embedded && port_layer.is_some_and(|layer| layer.embedded);
    let ca = pick(layers, |f| f.ca_certs.clone());
    let cert = pick(layers, |f| f.certfile.clone());
    let key = pick(layers, |f| f.keyfile.clone());
    // A CA or client certificate implies TLS unless TLS is switched off explicitly.
    let tls = pick(layers, |f| f.tls).map_or(ca.is_some() || cert.is_some(), |(tls, _)| tls);
    let port = pick(layers, |f| f.port).map_or(if tls { 8883 } else { 1883 }, |(p, _)| p);
    let password = match pick(layers, |f| f.password.clone()) {
        None => None,
        Some((from, layer)) => Some(read_password(&from, layer, env)?),
    };
    if tls {
        check_tls_files(ca.as_ref(), cert.as_ref(), key.as_ref())?;
    }
    let topic_prefix =
        pick(layers, |f| f.topic_prefix.clone()).map_or_else(default_topic_prefix, |(p, _)| p);
    Ok(Some(BrokerSettings {
        host,
        port,
        tls,
        username: pick(layers, |f| f.username.clone()).map(|(u, _)| u),
        password,
        ca_certs: ca.filter(|_| tls).map(|(p, _)| p),
        certfile: cert.filter(|_| tls).map(|(p, _)| p),
        keyfile: key.filter(|_| tls).map(|(p, _)| p),
        client_id_prefix: pick(layers, |f| f.client_id_prefix.clone())
            .map_or_else(default_client_id_prefix, |(p, _)| p),
        topic_prefix,
        connect_timeout: pick(layers, |f| f.connect_timeout)
            .map_or(DEFAULT_CONNECT_TIMEOUT, |(t, _)| t),
        embedded,
        origin,
    }))
}

/// Where each broker value came from, for errors and `doctor`.
fn origins(
    layers: &[BrokerLayer],
    host_layer: &BrokerLayer,
    port_layer: Option<&BrokerLayer>,
) -> BrokerOrigin {
    let origin_of = |field: Field, layer: Option<&BrokerLayer>| {
        layer.map_or(Origin::Default, |layer| layer.origin_of(field))
    };
    let password_origin = match pick(layers, |f| f.password.clone()) {
        None => Origin::Default,
        Some((from, layer)) => layer.origin_of_key(
            Field::Password,
            match from {
                PasswordFrom::Literal(_) => "password",
                PasswordFrom::File(_) => "password_file",
                PasswordFrom::Env(_) => "password_env",
            },
        ),
    };
    BrokerOrigin {
        host: host_layer.origin_of(Field::Host),
        port: origin_of(Field::Port, port_layer),
        tls: origin_of(Field::Tls, pick(layers, |f| f.tls).map(|(_, l)| l)),
        username: origin_of(
            Field::Username,
            pick(layers, |f| f.username.clone()).map(|(_, l)| l),
        ),
        password: password_origin,
        ca_certs: origin_of(
            Field::CaCerts,
            pick(layers, |f| f.ca_certs.clone()).map(|(_, l)| l),
        ),
        certfile: origin_of(
            Field::Certfile,
            pick(layers, |f| f.certfile.clone()).map(|(_, l)| l),
        ),
    }
}

/// With TLS, a client certificate needs its key (and the other way round),
/// and every file named must be readable.
fn check_tls_files(
    ca: Option<&(PathBuf, &BrokerLayer)>,
    cert: Option<&(PathBuf, &BrokerLayer)>,
    key: Option<&(PathBuf, &BrokerLayer)>,
) -> Result<(), Failure> {
    match (cert, key) {
        (Some((_, layer)), None) => {
            return Err(config_error(format!(
                "{} is set but no client key is",
                layer.name_of(Field::Certfile)
            ))
            .help("set MQTT_KEYFILE (or `keyfile` in [broker]) to the certificate's private key"))
        }
        (None, Some((_, layer))) => {
            return Err(config_error(format!(
                "{} is set but no client certificate is",
                layer.name_of(Field::Keyfile)
            ))
            .help("set MQTT_CERTFILE (or `certfile` in [broker]) to the client certificate"))
        }
        _ => {}
    }
    for (entry, field, what) in [
        (ca, Field::CaCerts, "CA certificate"),
        (cert, Field::Certfile, "client certificate"),
        (key, Field::Keyfile, "client key"),
    ] {
        if let Some((path, layer)) = entry {
            check_readable(path, &layer.name_of(field), what)?;
        }
    }
    Ok(())
}

fn check_readable(path: &Path, name: &str, what: &str) -> Result<(), Failure> {
    std::fs::File::open(path).map(drop).map_err(|e| {
        config_error(format!(
            "{name}: cannot read the {what} {}: {e}",
            path.display()
        ))
        .help("point it at an existing, readable PEM file")
    })
}

fn read_password(from: &PasswordFrom, layer: &BrokerLayer, env: &Env) -> Result<Secret, Failure> {
    match from {
        PasswordFrom::Literal(secret) => Ok(secret.clone()),
        PasswordFrom::Env(var) => env.var(var).map(Secret::new).ok_or_else(|| {
            config_error(format!(
                "`{}.password_env` in {} names the environment variable {var}, which is not set",
                layer.table, layer.source
            ))
            .help(format!("export {var} with the broker password"))
        }),
        PasswordFrom::File(path) => std::fs::read_to_string(path)
            .map(|text| Secret::new(text.trim_end_matches(['\n', '\r'])))
            .map_err(|e| {
                config_error(format!(
                    "`{}.password_file` in {}: cannot read {}: {e}",
                    layer.table,
                    layer.source,
                    path.display()
                ))
                .help("create the file (mode 0600) with the password on one line")
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_with;

    fn observer(vars: &[(&str, &str)], dir: &Path) -> Result<Option<BrokerSettings>, Failure> {
        Config::load(env_with(vars, dir))?.observer_broker()
    }

    #[test]
    fn nothing_configured_means_no_broker() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(observer(&[], dir.path()).expect("ok"), None);
    }

    #[test]
    fn seed_env_vars_configure_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "pem").expect("write");
        let settings = observer(
            &[
                ("MQTT_BROKER", "mqtt.internal"),
                ("MQTT_TLS", "1"),
                ("MQTT_USERNAME", "hermes"),
                ("MQTT_PASSWORD", "pw"),
                ("MQTT_CA_CERTS", "ca.crt"),
                ("MQTT_CLIENT_ID_PREFIX", "obs"),
                ("MQTT_TOPIC_PREFIX", "a/b"),
            ],
            dir.path(),
        )
        .expect("valid")
        .expect("configured");
        assert_eq!(settings.host, "mqtt.internal");
        assert_eq!(settings.port, 8883);
        assert!(settings.tls);
        assert_eq!(settings.ca_certs, Some(ca));
        assert_eq!(settings.password, Some(Secret::new("pw")));
        assert_eq!(settings.client_id_prefix, "obs");
        assert_eq!(settings.topic_prefix, "a/b");
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = [("MQTT_BROKER", "localhost")];
        for (extra, needle) in [
            (("MQTT_PORT", "99999"), "MQTT_PORT=99999"),
            (("MQTT_PORT", "0"), "MQTT_PORT=0"),
            (("MQTT_TLS", "maybe"), "MQTT_TLS=maybe"),
            (("MQTT_CA_CERTS", "/nonexistent/ca.crt"), "MQTT_CA_CERTS"),
            (
                ("MQTT_CERTFILE", "/nonexistent/c.crt"),
                "MQTT_CERTFILE is set but no client key",
            ),
            (("MQTT_TOPIC_PREFIX", "a/+"), "MQTT_TOPIC_PREFIX"),
        ] {
            let vars = [base[0], extra];
            let failure = observer(&vars, dir.path()).expect_err(needle);
            assert!(failure.message.contains(needle), "{}", failure.message);
            assert_eq!(failure.exit, crate::error::Exit::Usage);
        }
    }

    #[test]
    fn worker_inherits_observer_env_but_its_own_fields_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("tmux-delegate.toml"),
            "[broker]\nhost = \"file-host\"\nusername = \"hermes\"\npassword = \"h\"\n\
             [broker.worker]\nusername = \"claude-worker\"\npassword_env = \"WORKER_PW\"\n",
        )
        .expect("write");
        let config = Config::load(env_with(
            &[("MQTT_BROKER", "env-host"), ("WORKER_PW", "w")],
            dir.path(),
        ))
        .expect("loads");
        let observer = config.observer_broker().expect("ok").expect("set");
        let worker = config.worker_broker().expect("ok").expect("set");
        assert_eq!(observer.host, "env-host");
        assert_eq!(observer.username.as_deref(), Some("hermes"));
        assert_eq!(worker.host, "env-host");
        assert_eq!(worker.username.as_deref(), Some("claude-worker"));
        assert_eq!(worker.password, Some(Secret::new("w")));
    }

    #[test]
    fn missing_password_env_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("tmux-delegate.toml"),
            "[broker]\nhost = \"h\"\n[broker.worker]\npassword_env = \"NOPE_PW\"\n",
        )
        .expect("write");
        let config = Config::load(env_with(&[], dir.path())).expect("loads");
        assert!(config.observer_broker().is_ok());
        let failure = config.worker_broker().expect_err("unset var");
        assert!(failure.message.contains("NOPE_PW"), "{}", failure.message);
    }

    #[test]
    fn record_block_is_overridden_by_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = BrokerSettings {
            host: "rec".into(),
            port: 1884,
            tls: false,
            username: Some("claude-worker".into()),
            password: Some(Secret::new("w")),
            ca_certs: None,
            certfile: None,
            keyfile: None,
            client_id_prefix: "hermes".into(),
            topic_prefix: "python/mqtt".into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            embedded: false,
            origin: BrokerOrigin::default(),
        };
        let config =
            Config::load(env_with(&[("MQTT_USERNAME", "hermes")], dir.path())).expect("loads");
        let got = config
            .publisher_broker(Some(("j", &record)))
            .expect("ok")
            .expect("set");
        assert_eq!(got.host, "rec");
        assert_eq!(got.port, 1884);
        assert_eq!(got.username.as_deref(), Some("hermes"));
        assert_eq!(got.password, Some(Secret::new("w")));
    }

    #[test]
    fn record_block_round_trips_and_reads_the_original_shape() {
        let original =
            r#"{"host":"localhost","port":1883,"tls":false,"username":"u","password":"p"}"#;
        let parsed: BrokerSettings = serde_json::from_str(original).expect("original shape");
        assert_eq!(parsed.topic_prefix, "python/mqtt");
        assert_eq!(parsed.client_id_prefix, "hermes");
        let again: BrokerSettings =
            serde_json::from_str(&serde_json::to_string(&parsed).expect("ser")).expect("de");
        assert_eq!(again, parsed);
    }
}
