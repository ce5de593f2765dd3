//! Fetching one manifest (or index) with its size capped while it streams.
//!
//! oci-client reads a whole manifest body into memory before its caller can
//! look at it, so a hostile registry could send hundreds of MiB (or an
//! endless chunked body) before the [`MAX_MANIFEST_BYTES`] check ran. Here
//! the GET is our own: a declared `Content-Length` over the cap is refused
//! before a byte is read, and the body is read chunk by chunk and dropped
//! the moment it passes the cap. Credentials come from oci-client's own
//! token exchange, so blobs and manifests share one login.

use crate::registry::MAX_MANIFEST_BYTES;
use oci_client::client::{Certificate, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use oci_client::{Client, RegistryOperation};
use std::time::Duration;

/// How much of an error response's body is kept for the message.
const ERROR_BODY_BYTES: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ManifestGetError {
    #[error(transparent)]
    Transport(#[from] OciDistributionError),
    #[error("GET {url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    /// `sent` is what arrived before the transfer was cut (or the declared length).
    #[error("more than {MAX_MANIFEST_BYTES} bytes ({sent})")]
    TooLarge { sent: String },
}

/// The bytes of a manifest and the digest the registry claimed for them.
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub digest_header: Option<String>,
}

enum Authorization {
    Anonymous,
    Bearer(String),
    Basic(String, String),
}

/// A logged-in reader of one repository's manifests.
pub struct ManifestGetter {
    http: reqwest::Client,
    scheme: &'static str,
    authorization: Authorization,
}

/// What the reqwest client is built from: the same as oci-client's.
pub struct Transport<'a> {
    pub protocol: ClientProtocol,
    pub extra_roots: &'a [Certificate],
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl ManifestGetter {
    /// Log in to `reference`'s repository for pulling (through `oci`, whose
    /// token cache the blob downloads then reuse).
    pub async fn login(
        oci: &Client,
        transport: Transport<'_>,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<Self, ManifestGetError> {
        let mut roots = Vec::with_capacity(transport.extra_roots.len());
        for certificate in transport.extra_roots {
            roots.push(reqwest::Certificate::try_from(certificate)?);
        }
        let http = reqwest::Client::builder()
            .tls_certs_merge(roots)
            .connect_timeout(transport.connect_timeout)
            .read_timeout(transport.read_timeout)
            .user_agent(concat!("wasmlet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(OciDistributionError::from)?;
        let scheme = match transport.protocol {
            ClientProtocol::Http => "http",
            _ => "https",
        };
        let authorization = match oci.auth(reference, auth, RegistryOperation::Pull).await? {
            Some(token) => Authorization::Bearer(token),
            None => match auth {
                RegistryAuth::Basic(user, password) => Authorization::Basic(user.clone(), password.clone()),
                _ => Authorization::Anonymous,
            },
        };
        Ok(Self { http, scheme, authorization })
    }

    /// GET the manifest `reference` names, accepting `media_types`.
    pub async fn get(&self, reference: &Reference, media_types: &[&str]) -> Result<FetchedManifest, ManifestGetError> {
        let url = format!(
            "{}://{}/v2/{}/manifests/{}{}",
            self.scheme,
            reference.resolve_registry(),
            reference.repository(),
            reference.digest().or(reference.tag()).unwrap_or("latest"),
            reference.namespace().map(|ns| format!("?ns={ns}")).unwrap_or_default(),
        );
        tracing::debug!(%url, "fetching manifest");
        let request = self.http.get(&url).header(reqwest::header::ACCEPT, media_types.join(", "));
        let request = match &self.authorization {
            Authorization::Anonymous => request,
            Authorization::Bearer(token) => request.bearer_auth(token),
            Authorization::Basic(user, password) => request.basic_auth(user, Some(password)),
        };
        let mut response = request.send().await.map_err(OciDistributionError::from)?;
        let status = response.status();
        if !status.is_success() {
            let (body, _) = read_up_to(&mut response, ERROR_BODY_BYTES).await.unwrap_or_default();
            let body = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)]).trim().to_owned();
            return Err(ManifestGetError::Status { url, status: status.as_u16(), body });
        }
        if let Some(length) = response.content_length().filter(|&n| n > MAX_MANIFEST_BYTES as u64) {
            return Err(ManifestGetError::TooLarge { sent: format!("{length} bytes declared; nothing read") });
        }
        let digest_header =
            response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (bytes, complete) = read_up_to(&mut response, MAX_MANIFEST_BYTES).await?;
        if !complete {
            let sent = bytes.len();
            return Err(ManifestGetError::TooLarge { sent: format!("{sent} bytes read before the transfer was cut") });
        }
        Ok(FetchedManifest { bytes, digest_header })
    }
}

/// The body until its end (`true`) or until it passes `cap` bytes
/// (`false`; the rest is never read).
async fn read_up_to(response: &mut reqwest::Response, cap: usize) -> Result<(Vec<u8>, bool), ManifestGetError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(OciDistributionError::from)? {
        body.extend_from_slice(&chunk);
        if body.len() > cap {
            return Ok((body, false));
        }
    }
    Ok((body, true))
}
