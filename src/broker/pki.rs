//! A private CA and the certificates a broker bundle needs, made with rcgen
//! (no openssl): the CA, a server certificate whose SANs are the broker's
//! names, and client certificates for mTLS.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its private key, PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
}

impl Authority {
    /// A new CA, valid ten years.
    pub fn new(name: &str) -> Result<Authority> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, 3650);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)
            .context("creating the CA")?;
        Ok(Authority { issuer })
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses, as SANs).
    pub fn server(&self, names: &[String]) -> Result<Issued> {
        let cn = names.first().cloned().unwrap_or_else(|| "mqtt".into());
        self.leaf(names.to_vec(), &cn, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose CN is `user`.
    pub fn client(&self, user: &str) -> Result<Issued> {
        self.leaf(Vec::new(), user, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, sans: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose) -> Result<Issued> {
        let mut params = CertificateParams::new(sans).context("certificate names")?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        // 825 days: the longest lifetime clients accept for a server certificate.
        validity(&mut params, 825);
        let key = KeyPair::generate()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("signing the certificate for {cn}"))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_load_into_rustls() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let ca = Authority::new("test").expect("ca");
        let server = ca
            .server(&["mqtt.internal".into(), "127.0.0.1".into()])
            .expect("server");
        let client = ca.client("claude-worker").expect("client");
        for pem in [ca.cert_pem(), server.cert_pem, client.cert_pem] {
            CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate parses");
        }
        PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes()).expect("key parses");
    }
}
