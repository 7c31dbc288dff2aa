//! TLS client configuration: OS roots from rustls-native-certs, extra PEM roots, or a
//! caller's own rustls `ClientConfig`; the `ring` provider is used explicitly so no
//! process-wide default provider has to be installed.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Error;

/// Where STARTTLS (or implicit TLS) goes.
#[derive(Clone)]
pub(crate) struct TlsTarget {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
    pub verified: bool,
}

/// What the builder collected about TLS.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    pub native_roots: bool,
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub config: Option<Arc<ClientConfig>>,
    /// The caller declared `config` as not verifying the server the usual way.
    pub config_unverified: bool,
    pub accept_invalid_certs: bool,
    pub client_auth: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("native_roots", &self.native_roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("custom_config", &self.config.is_some())
            .field("config_unverified", &self.config_unverified)
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .field("client_auth", &self.client_auth.is_some())
            .finish()
    }
}

/// Parses every certificate in a PEM document.
pub(crate) fn parse_pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config("no certificate found in PEM input".into()));
    }
    Ok(certs)
}

/// Parses a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn parse_pem_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| Error::Config(format!("invalid PEM private key: {e}")))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

impl TlsOptions {
    /// Builds the rustls configuration once per connector.
    pub(crate) fn build(&self) -> Result<Arc<ClientConfig>, Error> {
        if let Some(config) = &self.config {
            return Ok(config.clone());
        }
        let mut roots = RootCertStore::empty();
        if self.native_roots {
            // Unreadable or malformed system certificates are skipped, as browsers do;
            // an empty store simply fails verification later with a clear error.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
        for cert in &self.extra_roots {
            roots.add(cert.clone()).map_err(|e| Error::Config(format!("unusable root certificate: {e}")))?;
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS setup: {e}")))?
            .with_root_certificates(roots);
        let mut config = match &self.client_auth {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| Error::Config(format!("client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        // One in-memory store per configuration, so per Connector and per pool: later
        // connections resume (TLS 1.3 tickets, TLS 1.2 session ids) and skip the
        // certificate exchange. Set explicitly, as the crate relies on it.
        config.resumption = rustls::client::Resumption::in_memory_sessions(256);
        if self.accept_invalid_certs {
            config.dangerous().set_certificate_verifier(Arc::new(AcceptAnything(provider())));
        }
        Ok(Arc::new(config))
    }
}

/// The server name for SNI and verification: the configured host.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| Error::Config(format!("invalid TLS server name {host:?}: {e}")))
}

/// Verifier for `danger_accept_invalid_certs`: checks signatures but not the chain.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An I/O error, or a TLS one when rustls is behind it: after the handshake a TLS failure
/// still arrives through reads and writes (with TLS 1.3 a server refuses a client
/// certificate only after the client's handshake is complete, with an alert on the next
/// read).
pub(crate) fn io_error(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        return Error::Tls(Arc::new(e));
    }
    Error::Io(Arc::new(e))
}

/// tokio-rustls (and rustls' `StreamOwned`) report TLS failures (certificate, protocol) as `InvalidData` I/O errors
/// wrapping the rustls error; anything else during the handshake is the network.
pub(crate) fn tls_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidData { Error::Tls(Arc::new(e)) } else { io_error(e) }
}
