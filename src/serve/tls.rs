//! HTTPS: `--tls-cert FILE --tls-key FILE` (PEM) make every connection a TLS one (rustls, TLS 1.2
//! and 1.3, HTTP/1.1 by ALPN). The handshake has the same time limit as a request's headers.

use crate::error::{Error, Result};
use crate::fsutil;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Largest PEM file read (a certificate chain is a few KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// The PEM files of a server certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// A TLS acceptor for these files, naming the file at fault when one is not usable.
    pub fn acceptor(&self) -> Result<TlsAcceptor> {
        let certs = read_certs(&self.cert)?;
        let key = read_key(&self.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::System(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                Error::format(&self.key, format!("does not fit the certificate {}: {e}", self.cert.display()))
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = fsutil::read_at_most(path, MAX_PEM_BYTES)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::format(path, "not a PEM certificate chain (a section is cut short or not base64)"))?;
    if certs.is_empty() {
        return Err(Error::format(path, "no CERTIFICATE in the PEM file"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = fsutil::read_at_most(path, MAX_PEM_BYTES)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| Error::format(path, "no usable PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"))
}
