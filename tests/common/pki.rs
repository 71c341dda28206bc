//! A private PKI made with rcgen: a CA, server and client certificates, and
//! an unrelated CA for "wrong CA" tests.

use std::path::{Path, PathBuf};

/// A private CA, a server certificate for localhost/127.0.0.1, a client
/// certificate, and an unrelated CA (for "wrong CA" tests).
pub struct Pki {
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("key"))
        .expect("CA")
}

fn leaf(
    issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    names: &[&str],
    cn: &str,
    usage: rcgen::ExtendedKeyUsagePurpose,
) -> (String, String) {
    leaf_with_key(
        issuer,
        names,
        cn,
        usage,
        rcgen::KeyPair::generate().expect("key"),
    )
}

fn leaf_with_key(
    issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    names: &[&str],
    cn: &str,
    usage: rcgen::ExtendedKeyUsagePurpose,
    key: rcgen::KeyPair,
) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn create(dir: &Path) -> Pki {
        let authority = ca("tmux-delegate test CA");
        let other = ca("some other CA");
        let (server_cert, server_key) = leaf(
            &authority,
            &["localhost", "127.0.0.1"],
            "localhost",
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            &authority,
            &[],
            "claude-worker",
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write pem");
            path
        };
        Pki {
            ca: write("ca.crt", &authority.pem()),
            ca_key: write("ca.key", &authority.key().serialize_pem()),
            server_cert: write("server.crt", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.crt", &client_cert),
            client_key: write("client.key", &client_key),
            other_ca: write("other-ca.crt", &other.pem()),
        }
    }

    /// Listener lines for a TLS listener with this PKI.
    pub fn listener_tls(&self) -> String {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            self.ca.display(),
            self.server_cert.display(),
            self.server_key.display()
        )
    }
}
