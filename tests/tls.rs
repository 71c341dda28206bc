//! Mutual TLS: a client certificate connects; no certificate fails fast with
//! exit 3 and says a certificate is required.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn mtls_broker(dir: &std::path::Path, pki: &Pki) -> Mosquitto {
    let body = format!(
        "{}require_certificate true\nallow_anonymous true\n",
        pki.listener_tls()
    );
    Mosquitto::start(dir, &body)
}

#[test]
fn client_certificate_connects_and_missing_one_fails_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::create(dir.path());
    let broker = mtls_broker(dir.path(), &pki);
    let port = broker.port.to_string();
    let ca = pki.ca.display().to_string();
    let cert = pki.client_cert.display().to_string();
    let key = pki.client_key.display().to_string();
    let base = [
        ("MQTT_BROKER", "localhost"),
        ("MQTT_PORT", port.as_str()),
        ("MQTT_CA_CERTS", ca.as_str()),
    ];

    let mut with_cert = base.to_vec();
    with_cert.extend([
        ("MQTT_CERTFILE", cert.as_str()),
        ("MQTT_KEYFILE", key.as_str()),
    ]);
    let out =
        run(td(dir.path(), &with_cert).args(["publish", "--job", "m1", "--event", "started"]));
    assert!(out.status.success(), "mTLS publish: {}", text(&out.stderr));

    let start = Instant::now();
    let out = run(td(dir.path(), &base).args(["publish", "--job", "m1", "--event", "started"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("requires a client certificate"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "took {:?}",
        start.elapsed()
    );
}

/// Runs openssl (Debian's `openssl` package; .ci/run installs it) in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl {args:?} failed");
}

fn publish_with(
    dir: &std::path::Path,
    broker: &Mosquitto,
    ca: &std::path::Path,
    cert: &str,
    key: &str,
) -> std::process::Output {
    let port = broker.port.to_string();
    let ca = ca.display().to_string();
    run(td(
        dir,
        &[
            ("MQTT_BROKER", "127.0.0.1"),
            ("MQTT_PORT", &port),
            ("MQTT_CA_CERTS", &ca),
            ("MQTT_CERTFILE", cert),
            ("MQTT_KEYFILE", key),
        ],
    )
    .args(["publish", "--job", "m2", "--event", "heartbeat"]))
}

#[test]
fn client_keys_in_every_common_format_work_and_bad_ones_are_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pki = Pki::create(d);
    let broker = mtls_broker(d, &pki);
    // EC: rcgen writes PKCS#8; openssl makes the SEC1 form.
    openssl(d, &["ec", "-in", "client.key", "-out", "client-sec1.key"]);
    // RSA: a PKCS#1 key, its PKCS#8 form, and a certificate from the test CA.
    openssl(
        d,
        &["genrsa", "-traditional", "-out", "rsa-pkcs1.key", "2048"],
    );
    openssl(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "rsa-pkcs1.key",
            "-out",
            "rsa-pkcs8.key",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "rsa-pkcs1.key",
            "-subj",
            "/CN=rsa-client",
            "-out",
            "rsa.csr",
        ],
    );
    std::fs::write(d.join("v3.ext"), "extendedKeyUsage = clientAuth\n").expect("ext file");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "rsa.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "v3.ext",
            "-out",
            "rsa.crt",
        ],
    );
    // An encrypted key, which must be refused with an explanation.
    openssl(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "client.key",
            "-passout",
            "pass:x",
            "-out",
            "client-enc.key",
        ],
    );

    for (cert, key) in [
        ("client.crt", "client.key"),
        ("client.crt", "client-sec1.key"),
        ("rsa.crt", "rsa-pkcs1.key"),
        ("rsa.crt", "rsa-pkcs8.key"),
    ] {
        let out = publish_with(
            d,
            &broker,
            &pki.ca,
            &d.join(cert).display().to_string(),
            &d.join(key).display().to_string(),
        );
        assert!(
            out.status.success(),
            "{cert} + {key}: {}",
            text(&out.stderr)
        );
    }

    let out = publish_with(
        d,
        &broker,
        &pki.ca,
        &d.join("client.crt").display().to_string(),
        &d.join("client-enc.key").display().to_string(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is encrypted"),
        "{}",
        text(&out.stderr)
    );

    let out = publish_with(
        d,
        &broker,
        &pki.ca,
        &d.join("client.crt").display().to_string(),
        &d.join("rsa-pkcs1.key").display().to_string(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("does not fit the certificate"),
        "{}",
        text(&out.stderr)
    );
}
