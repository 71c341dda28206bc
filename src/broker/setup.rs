//! `broker setup DIR --host NAME`: a production Mosquitto bundle, secure by
//! default, from `templates/mosquitto/`.
//!
//! ```text
//! DIR/                      the clients' side (0600 secrets)
//!   tmux-delegate.toml      [broker] and [broker.worker] pointing at all of it
//!   ca.crt ca.key           the private CA (the key never goes to the broker)
//!   hermes.pass claude-worker.pass   plain passwords for the two clients
//!   hermes.crt/.key claude-worker.crt/.key   with --client-certs
//!   mosquitto/              the broker's side
//!     mosquitto.conf acl passwd ca.crt server.crt server.key data/
//! ```
//!
//! Run as root where a `mosquitto` user exists, the broker's side is handed
//! to that user (Mosquitto drops to it and must read its files).

use super::passwd;
use super::pki::Authority;
use crate::config::random_password;
use crate::error::{config_error, Failure};
use anyhow::{Context, Result};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

const CONF_TEMPLATE: &str = include_str!("../../templates/mosquitto/mosquitto.conf");
const ACL_TEMPLATE: &str = include_str!("../../templates/mosquitto/acl");
const CLIENT_TEMPLATE: &str = include_str!("../../templates/mosquitto/tmux-delegate.toml");
const FLEET_ACL_TEMPLATE: &str = include_str!("../../templates/mosquitto/acl-fleet");
const FLEET_CLIENT_TEMPLATE: &str = include_str!("../../templates/mosquitto/fleet-client.toml");

pub const OBSERVER: &str = "hermes";
pub const WORKER: &str = "claude-worker";
/// The fleet's users (`--fleet`).
pub const RUNNER: &str = "runner";
pub const SUBMITTER: &str = "submitter";

#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub host: String,
    pub port: u16,
    /// Listen address; `None`: every interface.
    pub bind: Option<String>,
    pub client_certs: bool,
    /// Also certify `localhost` and `127.0.0.1`.
    pub add_localhost: bool,
    pub force: bool,
    pub topic_prefix: String,
    /// Also the fleet's `runner` and `submitter` users (SPEC section 13).
    pub fleet: bool,
}

/// One file of the bundle, ready to write.
struct Planned {
    path: PathBuf,
    content: String,
    mode: u32,
    /// Part of the broker's side (handed to the `mosquitto` user).
    broker_side: bool,
}

/// What `setup` wrote.
pub struct Written {
    pub files: Vec<PathBuf>,
    pub conf: PathBuf,
    pub client_config: PathBuf,
    pub handed_to_mosquitto: bool,
}

fn render(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |text, (key, value)| {
            text.replace(&format!("{{{key}}}"), value)
        })
}

fn plan(options: &Options, dir: &Path) -> Result<Vec<Planned>> {
    let broker_dir = dir.join("mosquitto");
    let ca = Authority::new(&format!("tmux-delegate CA for {}", options.host))?;
    let mut names = vec![options.host.clone()];
    if options.add_localhost {
        names.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
    }
    names.dedup();
    let server = ca.server(&names)?;
    let observer_password = random_password(32);
    let worker_password = random_password(32);
    let mut passwd = format!(
        "{}\n{}\n",
        passwd::entry(OBSERVER, observer_password.expose()),
        passwd::entry(WORKER, worker_password.expose())
    );
    let conf = broker_conf(options, &broker_dir);
    let mut acl = render(ACL_TEMPLATE, &[("prefix", &options.topic_prefix)]);
    let client_config = client_config(options, dir);
    let mut files = vec![
        planned(dir.join("tmux-delegate.toml"), client_config, 0o644, false),
        planned(dir.join("ca.crt"), ca.cert_pem(), 0o644, false),
        planned(dir.join("ca.key"), ca.key_pem(), 0o600, false),
        planned(
            dir.join(format!("{OBSERVER}.pass")),
            format!("{}\n", observer_password.expose()),
            0o600,
            false,
        ),
        planned(
            dir.join(format!("{WORKER}.pass")),
            format!("{}\n", worker_password.expose()),
            0o600,
            false,
        ),
        planned(broker_dir.join("mosquitto.conf"), conf, 0o644, true),
        planned(broker_dir.join("ca.crt"), ca.cert_pem(), 0o644, true),
        planned(broker_dir.join("server.crt"), server.cert_pem, 0o644, true),
        planned(broker_dir.join("server.key"), server.key_pem, 0o600, true),
    ];
    if options.fleet {
        acl.push_str(&render(
            FLEET_ACL_TEMPLATE,
            &[("prefix", &options.topic_prefix)],
        ));
        let fleet = fleet_files(options, dir, &|user| cert_lines(options, dir, user))?;
        passwd.push_str(&fleet.passwd);
        files.extend(fleet.files);
    }
    // The ACL and password file, complete with the fleet's users.
    files.push(planned(broker_dir.join("acl"), acl, 0o600, true));
    files.push(planned(broker_dir.join("passwd"), passwd, 0o600, true));
    files.extend(client_certificates(options, dir, &ca)?);
    Ok(files)
}

fn planned(path: PathBuf, content: String, mode: u32, broker_side: bool) -> Planned {
    Planned {
        path,
        content,
        mode,
        broker_side,
    }
}

/// With `--client-certs`: a certificate and key for every user.
fn client_certificates(options: &Options, dir: &Path, ca: &Authority) -> Result<Vec<Planned>> {
    let mut files = Vec::new();
    if !options.client_certs {
        return Ok(files);
    }
    let fleet_users: &[&str] = if options.fleet {
        &[RUNNER, SUBMITTER]
    } else {
        &[]
    };
    for user in [OBSERVER, WORKER].iter().chain(fleet_users) {
        let issued = ca.client(user)?;
        files.push(planned(
            dir.join(format!("{user}.crt")),
            issued.cert_pem,
            0o644,
            false,
        ));
        files.push(planned(
            dir.join(format!("{user}.key")),
            issued.key_pem,
            0o600,
            false,
        ));
    }
    Ok(files)
}

/// The client-certificate lines of `user`'s broker block, with `--client-certs`.
fn cert_lines(options: &Options, dir: &Path, user: &str) -> String {
    if options.client_certs {
        let dir_text = dir.display().to_string();
        format!("certfile = \"{dir_text}/{user}.crt\"\nkeyfile = \"{dir_text}/{user}.key\"\n")
    } else {
        String::new()
    }
}

/// The broker's `mosquitto.conf`.
fn broker_conf(options: &Options, broker_dir: &Path) -> String {
    let broker_dir_text = broker_dir.display().to_string();
    let port = options.port.to_string();
    let client_certs_conf = if options.client_certs {
        "# Clients must present a certificate from the CA above (mTLS).\nrequire_certificate true\n"
    } else {
        ""
    };
    render(
        CONF_TEMPLATE,
        &[
            ("dir", &broker_dir_text),
            ("port", &port),
            ("bind", options.bind.as_deref().unwrap_or("")),
            ("client_certs", client_certs_conf),
            ("fleet", if options.fleet { FLEET_CONF } else { "" }),
        ],
    )
}

/// The fleet's broker settings. Every runner receives every job's state
/// and its share of the offers: a burst of a few thousand submissions
/// queues more than Mosquitto's default 1000 QoS 1 messages per client,
/// and past that it drops them ("Outgoing messages are being dropped").
const FLEET_CONF: &str = "
# The fleet: every runner receives every job's state plus its share of the
# offers. Mosquitto drops QoS 1 messages for a client past this many queued
# (default 1000), which a burst of a thousand submissions reaches.
max_queued_messages 100000
";

/// The clients' `tmux-delegate.toml`.
fn client_config(options: &Options, dir: &Path) -> String {
    let dir_text = dir.display().to_string();
    let port = options.port.to_string();
    render(
        CLIENT_TEMPLATE,
        &[
            ("host", &options.host),
            ("port", &port),
            ("dir", &dir_text),
            ("prefix", &options.topic_prefix),
            ("observer_cert", &cert_lines(options, dir, OBSERVER)),
            ("worker_cert", &cert_lines(options, dir, WORKER)),
        ],
    )
}

/// The fleet's part of the bundle: passwords, a submitter key and a client
/// configuration for each side.
struct FleetPart {
    passwd: String,
    files: Vec<Planned>,
}

fn fleet_files(
    options: &Options,
    dir: &Path,
    cert_lines: &dyn Fn(&str) -> String,
) -> Result<FleetPart> {
    let runner_password = random_password(32);
    let submitter_password = random_password(32);
    let submitter_key = crate::mqtt::sign::EventKey::generate().to_hex();
    let dir_text = dir.display().to_string();
    let port = options.port.to_string();
    let worker = format!(
        "\n[broker.worker]\nusername = \"{WORKER}\"\npassword_file = \"{dir_text}/{WORKER}.pass\"\n{}",
        cert_lines(WORKER)
    );
    let client = |role: &str, user: &str, worker: &str, fleet: &str| {
        render(
            FLEET_CLIENT_TEMPLATE,
            &[
                ("role", role),
                ("user", user),
                ("host", &options.host),
                ("port", &port),
                ("dir", &dir_text),
                ("prefix", &options.topic_prefix),
                ("cert", &cert_lines(user)),
                ("worker", worker),
                ("fleet", fleet),
            ],
        )
    };
    let runner_toml = client(
        "runner",
        RUNNER,
        &worker,
        &format!("submitter_keys = [\"{submitter_key}\"]"),
    );
    let submitter_toml = client(
        "submitter",
        SUBMITTER,
        "",
        &format!("submitter_key_file = \"{dir_text}/{SUBMITTER}-hmac.key\""),
    );
    let planned = |name: String, content: String, mode: u32| Planned {
        path: dir.join(name),
        content,
        mode,
        broker_side: false,
    };
    Ok(FleetPart {
        passwd: format!(
            "{}\n{}\n",
            passwd::entry(RUNNER, runner_password.expose()),
            passwd::entry(SUBMITTER, submitter_password.expose())
        ),
        files: vec![
            planned(
                format!("{RUNNER}.pass"),
                format!("{}\n", runner_password.expose()),
                0o600,
            ),
            planned(
                format!("{SUBMITTER}.pass"),
                format!("{}\n", submitter_password.expose()),
                0o600,
            ),
            planned(
                format!("{SUBMITTER}-hmac.key"),
                format!("{submitter_key}\n"),
                0o600,
            ),
            // It holds the trusted submitter key: private.
            planned(format!("{RUNNER}.toml"), runner_toml, 0o600),
            planned(format!("{SUBMITTER}.toml"), submitter_toml, 0o644),
        ],
    })
}

/// Writes the bundle; refuses (exit 2, nothing changed) to overwrite one
/// without `force`.
pub fn run(options: &Options) -> Result<Written> {
    if options.host.trim().is_empty() || options.host.contains(char::is_whitespace) {
        return Err(config_error(format!("--host `{}` is not a host name", options.host)).into());
    }
    let dir = std::path::absolute(&options.dir)
        .with_context(|| format!("resolving {}", options.dir.display()))?;
    // Everything is generated before anything is written: no half bundles.
    let files = plan(options, &dir)?;
    if !options.force {
        if let Some(existing) = files.iter().find(|f| f.path.exists()) {
            return Err(Failure::new(
                crate::error::Exit::Usage,
                format!("{} already exists: refusing to overwrite a broker bundle", existing.path.display()),
            )
            .help("pass --force to replace it (new passwords and certificates: clients need the new ones)")
            .into());
        }
    }
    let broker_dir = dir.join("mosquitto");
    for d in [&dir, &broker_dir, &broker_dir.join("data")] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(d)
            .with_context(|| format!("creating {}", d.display()))?;
    }
    // The broker's directory holds its key and password hashes: not for others.
    fs::set_permissions(&broker_dir, fs::Permissions::from_mode(0o700))?;
    for file in &files {
        crate::registry::write_file(&file.path, &file.content, file.mode)?;
    }
    let handed_to_mosquitto = hand_to_mosquitto(&broker_dir, &files)?;
    Ok(Written {
        files: files.iter().map(|f| f.path.clone()).collect(),
        conf: broker_dir.join("mosquitto.conf"),
        client_config: dir.join("tmux-delegate.toml"),
        handed_to_mosquitto,
    })
}

/// As root, with a `mosquitto` user present: give it the broker's side.
fn hand_to_mosquitto(broker_dir: &Path, files: &[Planned]) -> Result<bool> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(false);
    }
    let Ok(Some(user)) = nix::unistd::User::from_name("mosquitto") else {
        return Ok(false);
    };
    let paths = files
        .iter()
        .filter(|f| f.broker_side)
        .map(|f| f.path.clone())
        .chain([broker_dir.to_path_buf(), broker_dir.join("data")]);
    for path in paths {
        nix::unistd::chown(&path, Some(user.uid), Some(user.gid))
            .with_context(|| format!("handing {} to the mosquitto user", path.display()))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> Options {
        Options {
            dir: dir.join("bundle"),
            host: "mqtt.internal".into(),
            port: 8883,
            bind: None,
            client_certs: true,
            add_localhost: false,
            force: false,
            topic_prefix: "python/mqtt".into(),
            fleet: false,
        }
    }

    /// The lines of `user`'s first block of the ACL.
    fn acl_block(acl: &str, user: &str) -> String {
        let after = acl
            .split(&format!("user {user}\n"))
            .nth(1)
            .unwrap_or_default();
        after.split("\n\n").next().unwrap_or_default().to_owned()
    }

    #[test]
    fn the_fleet_adds_two_least_privilege_users_and_their_configs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = run(&options(dir.path())).expect("setup");
        let plain_acl = fs::read_to_string(dir.path().join("bundle/mosquitto/acl")).expect("acl");
        assert!(!plain_acl.contains("user runner"), "{plain_acl}");
        assert!(!plain.files.iter().any(|f| f.ends_with("runner.toml")));
        let mut fleet = options(dir.path());
        fleet.dir = dir.path().join("fleet");
        fleet.fleet = true;
        run(&fleet).expect("fleet setup");
        let bundle = dir.path().join("fleet");
        let acl = fs::read_to_string(bundle.join("mosquitto/acl")).expect("acl");
        assert!(acl.starts_with(&plain_acl), "the plain ACL stays as it is");
        assert!(acl.contains("user runner\ntopic readwrite python/mqtt/pools/+/jobs"));
        assert!(acl.contains("user submitter\ntopic write python/mqtt/pools/+/jobs"));
        assert!(acl.contains("topic write python/mqtt/jobs/+/log\n"));
        assert!(acl.contains("topic read python/mqtt/jobs/+/log\n"));
        // `send`: the runner answers on the job's reply topic.
        assert!(acl_block(&acl, "runner").contains("topic write python/mqtt/jobs/+/reply\n"));
        assert!(acl_block(&acl, "submitter").contains("topic read python/mqtt/jobs/+/reply\n"));
        // The runner writes each job's fence; a window may read it, and
        // never the states (they carry every job's prompt).
        assert!(acl.contains("topic readwrite python/mqtt/jobs/+/fence\n"));
        let worker_fleet = acl
            .rsplit("user claude-worker\n")
            .next()
            .expect("a fleet block for the worker");
        assert_eq!(worker_fleet.trim(), "topic read python/mqtt/jobs/+/fence");
        let conf = |dir: &str| fs::read_to_string(dir.to_owned() + "/mosquitto/mosquitto.conf");
        let queue = "\nmax_queued_messages 100000\n";
        assert!(conf(bundle.to_str().expect("utf-8"))
            .expect("fleet conf")
            .contains(queue));
        let plain_conf = dir.path().join("bundle");
        assert!(!conf(plain_conf.to_str().expect("utf-8"))
            .expect("plain conf")
            .contains(queue));
        let passwd = fs::read_to_string(bundle.join("mosquitto/passwd")).expect("passwd");
        for user in ["runner", "submitter"] {
            let pass = fs::read_to_string(bundle.join(format!("{user}.pass"))).expect("pass");
            assert!(
                passwd.lines().any(|l| passwd::verify(l, pass.trim())),
                "{user}"
            );
            let mode = fs::metadata(bundle.join(format!("{user}.pass")))
                .expect("pass")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        let key = fs::read_to_string(bundle.join("submitter-hmac.key")).expect("key");
        let runner: toml::Table = fs::read_to_string(bundle.join("runner.toml"))
            .expect("toml")
            .parse()
            .expect("valid TOML");
        assert_eq!(runner["broker"]["username"].as_str(), Some("runner"));
        assert_eq!(
            runner["broker"]["worker"]["username"].as_str(),
            Some("claude-worker")
        );
        assert_eq!(
            runner["fleet"]["submitter_keys"][0].as_str(),
            Some(key.trim())
        );
        let submitter: toml::Table = fs::read_to_string(bundle.join("submitter.toml"))
            .expect("toml")
            .parse()
            .expect("valid TOML");
        assert_eq!(submitter["broker"]["username"].as_str(), Some("submitter"));
        assert!(submitter["fleet"]["submitter_key_file"]
            .as_str()
            .is_some_and(|p| p.ends_with("submitter-hmac.key")));
    }

    #[test]
    fn a_bundle_has_private_secrets_and_a_matching_client_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = run(&options(dir.path())).expect("setup");
        let bundle = dir.path().join("bundle");
        for secret in [
            "ca.key",
            "hermes.pass",
            "claude-worker.pass",
            "hermes.key",
            "mosquitto/passwd",
            "mosquitto/server.key",
            "mosquitto/acl",
        ] {
            let mode = fs::metadata(bundle.join(secret))
                .expect(secret)
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{secret}");
        }
        let conf = fs::read_to_string(&written.conf).expect("conf");
        for line in [
            "allow_anonymous false",
            "set_tcp_nodelay true",
            "persistence true",
            "require_certificate true",
            "listener 8883",
        ] {
            assert!(conf.contains(line), "missing `{line}`:\n{conf}");
        }
        let acl = fs::read_to_string(bundle.join("mosquitto/acl")).expect("acl");
        assert!(acl.contains("user claude-worker\ntopic write python/mqtt/jobs/+/events"));
        assert!(acl.contains("user hermes\ntopic read python/mqtt/jobs/+/events"));
        let passwd = fs::read_to_string(bundle.join("mosquitto/passwd")).expect("passwd");
        let hermes = fs::read_to_string(bundle.join("hermes.pass")).expect("pass");
        assert!(passwd.lines().any(|l| passwd::verify(l, hermes.trim())));
        let client: toml::Table = fs::read_to_string(&written.client_config)
            .expect("toml")
            .parse()
            .expect("valid TOML");
        assert_eq!(client["broker"]["host"].as_str(), Some("mqtt.internal"));
        assert_eq!(
            client["broker"]["worker"]["username"].as_str(),
            Some("claude-worker")
        );
    }

    #[test]
    fn an_existing_bundle_is_not_overwritten_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        run(&options(dir.path())).expect("first");
        let before = fs::read(dir.path().join("bundle/ca.key")).expect("key");
        let error = run(&options(dir.path())).err().expect("refused");
        assert_eq!(crate::error::exit_of(&error), crate::error::Exit::Usage);
        assert_eq!(
            fs::read(dir.path().join("bundle/ca.key")).expect("key"),
            before
        );
        let mut forced = options(dir.path());
        forced.force = true;
        run(&forced).expect("forced");
        assert_ne!(
            fs::read(dir.path().join("bundle/ca.key")).expect("key"),
            before
        );
    }
}
