//! Certificates generated per server with rcgen, and the rustls server configuration.

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

/// Which certificate the server presents, for testing how a client verifies it.
///
/// Whatever the kind, [`TestServer::ca_pem`](super::TestServer::ca_pem) hands out the same
/// test CA, so a client configured with it accepts only [`CertKind::Valid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CertKind {
    /// Signed by the test CA, for `localhost`, `127.0.0.1` and `::1`, currently valid.
    #[default]
    Valid,
    /// Signed by the test CA with the right names, but expired at the end of 2020.
    Expired,
    /// Signed by the test CA and currently valid, but only for `wrong-name.invalid`.
    WrongName,
    /// The right names and dates, but self-signed: not issued by the CA handed out.
    SelfSigned,
}

/// Names the valid leaf certificate covers.
pub(crate) const LEAF_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The generated PKI of one server.
pub(crate) struct Pki {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub config: Arc<ServerConfig>,
    /// A client identity issued by the client CA (mutual TLS): leaf then CA, PEM.
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("smtpkit testing TLS setup: {e}"))
}

fn new_ca(name: &str) -> io::Result<(rcgen::Certificate, Issuer<'static, KeyPair>)> {
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.distinguished_name.push(DnType::CommonName, name);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    Ok((ca_cert, Issuer::new(ca_params, ca_key)))
}

/// Generate a CA and a leaf of the requested kind, a separate client CA with one client
/// identity, and build a server configuration that uses the ring provider explicitly
/// (never a process-wide default) and, with `require_client_cert`, accepts only clients
/// presenting a certificate from the client CA.
pub(crate) fn generate(kind: CertKind, require_client_cert: bool) -> io::Result<Pki> {
    let (ca_cert, ca) = new_ca("smtpkit-testing CA")?;

    let names: Vec<String> = match kind {
        CertKind::WrongName => vec!["wrong-name.invalid".into()],
        _ => LEAF_NAMES.iter().map(|s| (*s).to_owned()).collect(),
    };
    let leaf_key = KeyPair::generate().map_err(err)?;
    let mut leaf_params = CertificateParams::new(names).map_err(err)?;
    leaf_params.distinguished_name.push(DnType::CommonName, "smtpkit-testing server");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if kind == CertKind::Expired {
        leaf_params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2020, 12, 31);
    }
    let leaf_cert = match kind {
        CertKind::SelfSigned => leaf_params.self_signed(&leaf_key),
        _ => leaf_params.signed_by(&leaf_key, &ca),
    }
    .map_err(err)?;

    let mut chain = vec![leaf_cert.der().clone()];
    if kind != CertKind::SelfSigned {
        chain.push(ca_cert.der().clone());
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));

    let (client_ca_cert, client_ca) = new_ca("smtpkit-testing client CA")?;
    let client_key = KeyPair::generate().map_err(err)?;
    let mut client_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    client_params.distinguished_name.push(DnType::CommonName, CLIENT_NAME);
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let client_cert = client_params.signed_by(&client_key, &client_ca).map_err(err)?;

    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(err)?;
    let builder = if require_client_cert {
        let mut roots = RootCertStore::empty();
        roots.add(client_ca_cert.der().clone()).map_err(err)?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().map_err(err)?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(chain, key).map_err(err)?;
    let ca_der: CertificateDer<'static> = ca_cert.der().clone();
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        ca_der: ca_der.to_vec(),
        config: Arc::new(config),
        client_cert_pem: format!("{}{}", client_cert.pem(), client_ca_cert.pem()),
        client_key_pem: client_key.serialize_pem(),
    })
}

/// Common name of the client identity handed out for mutual TLS.
pub(crate) const CLIENT_NAME: &str = "smtpkit-testing client";
