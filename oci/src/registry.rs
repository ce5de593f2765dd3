//! Pulling Wasm from a registry into the [`ContentStore`], and pushing a
//! `.wasm` as a CNCF Wasm artifact, over `oci-client`.
//!
//! Transport: HTTPS, except plain HTTP for `localhost`, `127.0.0.1` and
//! `[::1]` (any port) or with [`RegistryOptions::insecure`]. Certificates
//! chain to the system's trust store or to the CAs [`crate::tls`] finds.
//! Credentials come from the auth file ([`crate::auth`]). Every manifest is size-capped while
//! it streams ([`crate::manifest_get`]) and every blob's digest and size are checked before it
//! is kept.

use crate::auth::{credentials_for, AuthError};
use crate::format::{self, FormatError, Packaging, WasmConfig, INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES};
use crate::layer::{find_in_layer, LayerCheck};
use crate::manifest_get::{FetchedManifest, ManifestGetError, ManifestGetter, Transport};
use crate::resolve::{resolve, ManifestSource, ResolveError, Resolved};
use crate::store::{ContentStore, StoreError, StoredImage};
use crate::tls::{extra_roots, CaError};
use futures_util::StreamExt as _;
use oci_client::client::{Certificate, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use wasmlet_content::{verify as verify_digest, Digest, DigestError};

/// Largest manifest (or index, or config) accepted.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Defaults of [`RegistryOptions`]' bounds: a registry that stops
/// answering, or declares a blob larger than any Wasm, fails the transfer.
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
pub const DEFAULT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Plain HTTP for every registry (not only loopback ones).
    pub insecure: bool,
    /// Extra CA certificates (PEM or DER) for HTTPS registries.
    pub ca_files: Vec<std::path::PathBuf>,
    /// Connecting may take this long ([`DEFAULT_CONNECT_TIMEOUT`] if unset).
    pub connect_timeout: Option<std::time::Duration>,
    /// Each read may wait this long for bytes ([`DEFAULT_READ_TIMEOUT`] if unset).
    pub read_timeout: Option<std::time::Duration>,
    /// Largest blob accepted, checked against its declared size before any
    /// byte is downloaded and while streaming ([`DEFAULT_MAX_BLOB_BYTES`] if unset).
    pub max_blob_bytes: Option<u64>,
}

impl RegistryOptions {
    fn max_blob(&self) -> u64 {
        self.max_blob_bytes.unwrap_or(DEFAULT_MAX_BLOB_BYTES)
    }
}

/// Progress of a blob transfer: bytes done, bytes expected.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("invalid image reference `{reference}`: {message}")]
    BadReference { reference: String, message: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("{reference}: the registry's TLS certificate is not trusted ({message}); add its CA with --ca-file or as /etc/containers/certs.d/<host:port>/ca.crt")]
    Untrusted { reference: String, message: String },
    #[error("{reference}: not found in the registry (no such repository or tag)")]
    NotFound { reference: String },
    #[error("{reference}: the registry refused the credentials ({message})")]
    Unauthorized { reference: String, message: String },
    #[error("{reference}: cannot reach the registry: {message}")]
    Unreachable { reference: String, message: String },
    #[error(
        "{reference}: the registry stopped answering (timed out; see --connect-timeout and --read-timeout): {message}"
    )]
    TimedOut { reference: String, message: String },
    #[error("{reference}: blob {digest} declares {size} bytes, over the {limit}-byte limit (--max-blob-size); nothing downloaded")]
    BlobTooLarge { reference: String, digest: String, size: u64, limit: u64 },
    #[error("{reference}: registry error: {message}")]
    Registry { reference: String, message: String },
    /// `size` says what is known of it: declared, or read before the transfer was cut.
    #[error("{reference}: {what} exceeds the {MAX_MANIFEST_BYTES}-byte limit ({size}); nothing stored")]
    ManifestTooLarge { reference: String, what: &'static str, size: String },
    #[error("{reference}: unsupported image: {source}")]
    Format {
        reference: String,
        #[source]
        source: FormatError,
    },
    #[error("{reference}: {source}")]
    Digest {
        reference: String,
        #[source]
        source: DigestError,
    },
    #[error("{reference}: the index lists no manifest")]
    EmptyIndex { reference: String },
    #[error("{reference}: {message}")]
    Rootfs { reference: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("invalid image reference `{reference}`: {message}")]
    BadReference { reference: String, message: String },
    #[error("not a WebAssembly module or component (it starts with {0:02x?})")]
    NotWasm(Vec<u8>),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("{reference}: push failed: {message}")]
    Registry { reference: String, message: String },
}

/// How `push` packages the Wasm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushFormat {
    /// The CNCF Wasm OCI artifact (config `application/vnd.wasm.config.v0+json`, one `application/wasm` layer).
    #[default]
    Cncf,
    /// runwasi's packaging: an OCI image config (architecture `wasm`, the
    /// entrypoint naming the Wasm) and a `…wasm.component.layer.v0+wasm`
    /// layer.
    Runwasi,
}

/// How `push` packages the Wasm, and for which containerd.
///
/// containerd 1.7.7+ and 2.x skip raw Wasm layers when they unpack an image
/// and expect the config to list no diff id for them (`diff_ids: []`, the
/// default). containerd 1.6.20–1.6.24 cannot unpack such an image at all;
/// with `legacy_unpack` the config lists the empty tar as each Wasm layer's
/// diff id, which 1.6 unpacks through wasmlet's stream processor (see
/// deploy/) and which 1.7+ refuses ("mismatched image rootfs and manifest
/// layers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushOptions {
    pub format: PushFormat,
    pub legacy_unpack: bool,
}

/// sha256 of a tar archive with no entries (1024 zero bytes).
pub const EMPTY_TAR_DIFF_ID: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// What a pull produced.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub reference: String,
    pub image: StoredImage,
    /// Blobs that were already in the store (not downloaded again).
    pub reused: usize,
}

pub struct Registry {
    options: RegistryOptions,
}

fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.split(':').next().unwrap_or_default()
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

impl Registry {
    pub fn new(options: RegistryOptions) -> Self {
        Self { options }
    }

    /// Parse a reference the way `docker pull` does (`name` → `docker.io/library/name:latest`).
    pub fn parse_reference(reference: &str) -> Result<Reference, PullError> {
        reference
            .parse::<Reference>()
            .map_err(|e| PullError::BadReference { reference: reference.to_owned(), message: e.to_string() })
    }

    /// Plain HTTP or HTTPS, and the extra CAs HTTPS trusts, for `reference`'s registry.
    fn transport(&self, reference: &Reference) -> Result<(ClientProtocol, Vec<Certificate>), CaError> {
        let protocol = if self.options.insecure || is_loopback(reference.registry()) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let extra_root_certificates = match protocol {
            ClientProtocol::Https => extra_roots(reference.registry(), &self.options.ca_files)?,
            _ => Vec::new(),
        };
        Ok((protocol, extra_root_certificates))
    }

    fn connect_timeout(&self) -> std::time::Duration {
        self.options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    fn read_timeout(&self) -> std::time::Duration {
        self.options.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT)
    }

    fn client(&self, protocol: ClientProtocol, extra_root_certificates: Vec<Certificate>) -> Client {
        Client::new(ClientConfig {
            protocol,
            extra_root_certificates,
            connect_timeout: Some(self.connect_timeout()),
            read_timeout: Some(self.read_timeout()),
            ..Default::default()
        })
    }

    /// An oci-client client for blobs, and a manifest reader logged in with it.
    async fn connect(
        &self,
        reference: &Reference,
        name: &str,
        auth: &RegistryAuth,
    ) -> Result<(Client, ManifestGetter), PullError> {
        let (protocol, roots) = self.transport(reference)?;
        let client = self.client(protocol.clone(), roots.clone());
        let transport = Transport {
            protocol,
            extra_roots: &roots,
            connect_timeout: self.connect_timeout(),
            read_timeout: self.read_timeout(),
        };
        let manifests = ManifestGetter::login(&client, transport, reference, auth)
            .await
            .map_err(|e| Self::manifest_error(name, e))?;
        Ok((client, manifests))
    }

    fn manifest_error(reference: &str, err: ManifestGetError) -> PullError {
        match err {
            ManifestGetError::Transport(e) => Self::classify_error(reference, e),
            ManifestGetError::Status { status: 404, .. } => PullError::NotFound { reference: reference.to_owned() },
            ManifestGetError::Status { status: 401 | 403, .. } => {
                PullError::Unauthorized { reference: reference.to_owned(), message: err.to_string() }
            }
            ManifestGetError::Status { .. } => {
                PullError::Registry { reference: reference.to_owned(), message: err.to_string() }
            }
            ManifestGetError::TooLarge { sent } => {
                PullError::ManifestTooLarge { reference: reference.to_owned(), what: "manifest", size: sent }
            }
        }
    }

    fn classify_error(reference: &str, err: OciDistributionError) -> PullError {
        let reference = reference.to_owned();
        match err {
            OciDistributionError::ImageManifestNotFoundError(_) => PullError::NotFound { reference },
            OciDistributionError::AuthenticationFailure(message) => PullError::Unauthorized { reference, message },
            OciDistributionError::UnauthorizedError { url } => {
                PullError::Unauthorized { reference, message: format!("401 from {url}") }
            }
            OciDistributionError::RequestError(e) if is_certificate_error(&e) => {
                PullError::Untrusted { reference, message: error_chain(&e) }
            }
            OciDistributionError::RequestError(e) if e.is_timeout() => {
                PullError::TimedOut { reference, message: error_chain(&e) }
            }
            OciDistributionError::RequestError(e) if e.is_connect() => {
                PullError::Unreachable { reference, message: error_chain(&e) }
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        oci_client::errors::OciErrorCode::ManifestUnknown
                            | oci_client::errors::OciErrorCode::NameUnknown
                            | oci_client::errors::OciErrorCode::NotFound
                    )
                }) =>
            {
                PullError::NotFound { reference }
            }
            OciDistributionError::ServerError { code: 404, .. } => PullError::NotFound { reference },
            OciDistributionError::ServerError { code: 401 | 403, message, .. } => {
                PullError::Unauthorized { reference, message }
            }
            other => PullError::Registry { reference, message: error_chain(&other) },
        }
    }

    /// Pull `reference` into `store` and tag it there. Blobs already in the
    /// store are not downloaded again.
    pub async fn pull(
        &self,
        reference_text: &str,
        store: &ContentStore,
        progress: Progress<'_>,
    ) -> Result<Pulled, PullError> {
        let reference = Self::parse_reference(reference_text)?;
        let name = reference.whole();
        let auth = credentials_for(reference.resolve_registry())?;
        let (client, manifests) = self.connect(&reference, &name, &auth).await?;

        let accepted: Vec<&str> = MANIFEST_MEDIA_TYPES.iter().chain(INDEX_MEDIA_TYPES).copied().collect();
        let FetchedManifest { bytes: top, digest_header } =
            manifests.get(&reference, &accepted).await.map_err(|e| Self::manifest_error(&name, e))?;
        self.check_manifest(&name, &top, digest_header.as_deref(), reference.digest())?;
        let source = RegistryManifests { registry: self, manifests: &manifests, reference: &reference, name: &name };
        let Resolved { bytes, digest, manifest, packaging } = resolve(&source, top).await?;
        let digest = digest.to_string();
        // Blobs are addressed by repository and digest: any tag will do.
        let target = &reference;
        let mut reused = 0;

        // The config: small, size-capped, verified.
        let config_desc = manifest.config();
        if config_desc.size() > MAX_MANIFEST_BYTES as u64 {
            return Err(PullError::ManifestTooLarge {
                reference: name.clone(),
                what: "image config",
                size: format!("{} bytes declared; nothing downloaded", config_desc.size()),
            });
        }
        let mut blobs = vec![config_desc.digest().to_string()];
        let config_bytes = self
            .fetch_blob(
                &client,
                target,
                &name,
                store,
                config_desc.media_type().as_ref(),
                config_desc.digest().as_ref(),
                config_desc.size(),
                &|_, _| {},
                &mut reused,
            )
            .await?;
        let os = match &packaging {
            Packaging::WasmLayer { .. } if config_desc.media_type().to_string() == format::WASM_CONFIG_MEDIA_TYPE => {
                serde_json::from_slice::<WasmConfig>(&config_bytes).ok().map(|c| c.os)
            }
            _ => None,
        };

        let (wasm_digest, wasm_media_type, wasm_path, size) = match &packaging {
            Packaging::WasmLayer { media_type, digest, size } => {
                self.fetch_blob(&client, target, &name, store, media_type, digest, *size, progress, &mut reused)
                    .await?;
                (digest.clone(), Some(media_type.clone()), None, *size)
            }
            Packaging::Rootfs => {
                let entrypoint = rootfs_entrypoint(&config_bytes).ok_or_else(|| PullError::Rootfs {
                    reference: name.clone(),
                    message: "a plain image needs an entrypoint (or cmd) naming its .wasm".into(),
                })?;
                let mut found = None;
                let diff_ids = crate::layer::diff_ids(&config_bytes, manifest.layers().len());
                for (index, layer) in manifest.layers().iter().enumerate() {
                    blobs.push(layer.digest().to_string());
                    let layer_bytes = self
                        .fetch_blob(
                            &client,
                            target,
                            &name,
                            store,
                            layer.media_type().as_ref(),
                            layer.digest().as_ref(),
                            layer.size(),
                            progress,
                            &mut reused,
                        )
                        .await?;
                    let media_type = layer.media_type().to_string();
                    let check = LayerCheck {
                        max_unpacked: self.options.max_blob(),
                        diff_id: diff_ids.as_ref().map(|ids| ids[index].as_str()),
                    };
                    if let Some(wasm) = find_in_layer(&layer_bytes, &media_type, &entrypoint, check).map_err(|e| {
                        PullError::Rootfs { reference: name.clone(), message: format!("layer {}: {e}", layer.digest()) }
                    })? {
                        found = Some(wasm); // later layers override earlier ones
                    }
                }
                let wasm = found.ok_or_else(|| PullError::Rootfs {
                    reference: name.clone(),
                    message: format!("the entrypoint {entrypoint} is not a file in the image"),
                })?;
                let wasm_digest = Digest::of(&wasm).to_string();
                store.write_blob(&wasm, &wasm_digest, None)?;
                (wasm_digest, None, Some(entrypoint), wasm.len() as u64)
            }
        };
        store.write_blob(&bytes, &digest, None)?;
        let image = StoredImage {
            manifest_digest: digest,
            wasm_digest: Some(wasm_digest),
            wasm_media_type,
            wasm_path,
            size,
            os,
            pulled_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            blobs,
        };
        store.tag(&name, image.clone())?;
        Ok(Pulled { reference: name, image, reused })
    }

    fn check_manifest(
        &self,
        name: &str,
        bytes: &[u8],
        registry_digest: Option<&str>,
        pinned: Option<&str>,
    ) -> Result<(), PullError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(PullError::ManifestTooLarge {
                reference: name.to_owned(),
                what: "manifest",
                size: format!("{} bytes", bytes.len()),
            });
        }
        // A pinned digest must match what arrived, whatever the registry says.
        if let Some(expected) = pinned.or(registry_digest.filter(|d| d.starts_with("sha256:"))) {
            verify_digest("manifest", bytes, expected, None)
                .map_err(|source| PullError::Digest { reference: name.to_owned(), source })?;
        }
        Ok(())
    }

    /// A verified blob, from the store if present, else downloaded into it.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_blob(
        &self,
        client: &Client,
        reference: &Reference,
        name: &str,
        store: &ContentStore,
        media_type: &str,
        digest: &str,
        size: u64,
        progress: Progress<'_>,
        reused: &mut usize,
    ) -> Result<Vec<u8>, PullError> {
        let digest_error = |source| PullError::Digest { reference: name.to_owned(), source };
        digest.parse::<Digest>().map_err(|e| digest_error(e.into()))?;
        let limit = self.options.max_blob();
        if size > limit {
            return Err(PullError::BlobTooLarge { reference: name.to_owned(), digest: digest.to_owned(), size, limit });
        }
        if store.has_blob(digest) {
            match store.read_blob(digest) {
                Ok(bytes) if bytes.len() as u64 == size => {
                    *reused += 1;
                    return Ok(bytes);
                }
                _ => {} // corrupt or different size: fetch again
            }
        }
        let descriptor = OciDescriptor {
            media_type: media_type.to_owned(),
            digest: digest.to_owned(),
            size: size as i64,
            ..Default::default()
        };
        let mut stream =
            client.pull_blob_stream(reference, &descriptor).await.map_err(|e| Self::classify_error(name, e))?;
        let mut writer = store.blob_writer()?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                // oci-client checks the digest as the stream ends; say so plainly.
                let message = e.to_string();
                match message.split_once(", got ") {
                    Some((_, actual)) if message.contains("Invalid digest") => digest_error(DigestError::Mismatch {
                        what: format!("blob {digest}"),
                        expected: digest.to_owned(),
                        actual: actual.trim().to_owned(),
                    }),
                    _ => PullError::Registry {
                        reference: name.to_owned(),
                        message: format!("downloading {digest}: {message}"),
                    },
                }
            })?;
            if writer.written() + chunk.len() as u64 > size {
                return Err(digest_error(DigestError::Size {
                    what: digest.to_owned(),
                    expected: size,
                    actual: writer.written() + chunk.len() as u64,
                }));
            }
            writer.write(&chunk)?;
            progress(writer.written(), size);
        }
        let path = writer.commit(digest, Some(size)).map_err(|e| match e {
            StoreError::Digest(source) => digest_error(source),
            other => PullError::Store(other),
        })?;
        std::fs::read(&path).map_err(|source| PullError::Store(StoreError::Io { action: "reading", path, source }))
    }

    /// Push `wasm` to `reference` in `format`; returns the manifest digest.
    /// `os` is `wasip2` for a component, else `wasip1`.
    pub async fn push(
        &self,
        wasm: &[u8],
        reference_text: &str,
        options: PushOptions,
        progress: Progress<'_>,
    ) -> Result<String, PushError> {
        let format = options.format;
        let diff_ids: &[&str] = if options.legacy_unpack { &[EMPTY_TAR_DIFF_ID] } else { &[] };
        let reference: Reference = reference_text.parse().map_err(|e: oci_client::ParseError| {
            PushError::BadReference { reference: reference_text.to_owned(), message: e.to_string() }
        })?;
        let name = reference.whole();
        let os = match wasm.get(..8) {
            Some([0, b'a', b's', b'm', _, _, 0, 0]) => "wasip1",
            Some([0, b'a', b's', b'm', _, _, 1, 0]) => "wasip2",
            _ => return Err(PushError::NotWasm(wasm.iter().take(8).copied().collect())),
        };
        let (protocol, roots) = self.transport(&reference)?;
        let client = self.client(protocol, roots);
        let auth = credentials_for(reference.resolve_registry())?;
        let fail = |e: OciDistributionError| PushError::Registry { reference: name.clone(), message: error_chain(&e) };
        client.auth(&reference, &auth, oci_client::RegistryOperation::Push).await.map_err(fail)?;
        let layer_digest = Digest::of(wasm).to_string();
        let encode = |value: &serde_json::Value| {
            serde_json::to_vec(value)
                .map_err(|e| PushError::Registry { reference: name.clone(), message: e.to_string() })
        };
        let (config_media_type, layer_media_type, config_bytes) = match format {
            PushFormat::Cncf => {
                let config = WasmConfig {
                    created: Some(rfc3339_now()),
                    author: None,
                    architecture: "wasm".into(),
                    os: os.into(),
                    layer_digests: vec![layer_digest.clone()],
                    component: None,
                    rootfs: Some(serde_json::json!({"type": "layers", "diff_ids": diff_ids})),
                };
                let value = serde_json::to_value(&config).unwrap_or_default();
                (format::WASM_CONFIG_MEDIA_TYPE, format::WASM_LAYER_MEDIA_TYPE, encode(&value)?)
            }
            PushFormat::Runwasi => {
                let value = serde_json::json!({
                    "created": rfc3339_now(),
                    "architecture": "wasm",
                    "os": os,
                    "config": {"Entrypoint": ["/app.wasm"]},
                    "rootfs": {"type": "layers", "diff_ids": diff_ids},
                });
                ("application/vnd.oci.image.config.v1+json", format::RUNWASI_LAYER_MEDIA_TYPE, encode(&value)?)
            }
        };
        let config_digest = Digest::of(&config_bytes).to_string();
        push_blob_with_progress(&client, &reference, wasm, &layer_digest, progress).await.map_err(fail)?;
        client.push_blob(&reference, config_bytes.clone(), &config_digest).await.map_err(fail)?;
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config_media_type, "digest": config_digest, "size": config_bytes.len()},
            "layers": [{"mediaType": layer_media_type, "digest": layer_digest, "size": wasm.len()}],
        });
        if format == PushFormat::Cncf {
            manifest["artifactType"] = serde_json::Value::from(format::WASM_CONFIG_MEDIA_TYPE);
        }
        let body = serde_json::to_vec(&manifest)
            .map_err(|e| PushError::Registry { reference: name.clone(), message: e.to_string() })?;
        let digest = Digest::of(&body).to_string();
        let content_type =
            "application/vnd.oci.image.manifest.v1+json".parse().map_err(|e: http::header::InvalidHeaderValue| {
                PushError::Registry { reference: name.clone(), message: e.to_string() }
            })?;
        client.push_manifest_raw(&reference, body, content_type).await.map_err(fail)?;
        Ok(digest)
    }
}

/// Blobs from this size on are pushed in chunks, reporting progress.
const STREAMED_PUSH_BYTES: usize = 1 << 20;
const PUSH_CHUNK_BYTES: usize = 1 << 20;

/// Push one blob. Large blobs go up as chunked PATCHes so `progress` can
/// follow them; a registry that rejects chunked uploads gets one PUT, as
/// oci-client's own `push_blob` would fall back to.
async fn push_blob_with_progress(
    client: &Client,
    reference: &Reference,
    data: &[u8],
    digest: &str,
    progress: Progress<'_>,
) -> Result<(), OciDistributionError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let total = data.len() as u64;
    if data.len() < STREAMED_PUSH_BYTES {
        client.push_blob(reference, data.to_vec(), digest).await?;
        return Ok(());
    }
    let handed_over = std::sync::Arc::new(AtomicU64::new(0));
    let counter = handed_over.clone();
    let chunks: Vec<bytes::Bytes> = data.chunks(PUSH_CHUNK_BYTES).map(bytes::Bytes::copy_from_slice).collect();
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(chunk)
    }));
    let push = client.push_blob_stream(reference, stream, digest, Some(total));
    tokio::pin!(push);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    progress(0, total);
    let result = loop {
        tokio::select! {
            result = &mut push => break result,
            _ = tick.tick() => progress(handed_over.load(Ordering::Relaxed).min(total), total),
        }
    };
    match result {
        Ok(_) => {}
        Err(OciDistributionError::SpecViolationError(violation)) => {
            tracing::warn!(%violation, "the registry refused a chunked upload; pushing in one request");
            client.push_blob(reference, data.to_vec(), digest).await?;
        }
        Err(e) => return Err(e),
    }
    progress(total, total);
    Ok(())
}

/// An error and its causes on one line: reqwest's own text omits them
/// ("error sending request" hides "invalid peer certificate: UnknownIssuer").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn is_certificate_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    let invalid_certificate = |e: &(dyn std::error::Error + 'static)| {
        e.downcast_ref::<rustls::Error>().is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)))
    };
    while let Some(cause) = source {
        // io::Error::source() skips the error it wraps: look inside.
        let wrapped = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        // Connectors may also box it away from downcasting; rustls's own wording then.
        if invalid_certificate(cause)
            || wrapped.is_some_and(invalid_certificate)
            || cause.to_string().starts_with("invalid peer certificate")
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The `.wasm` a plain image's config names: the entrypoint, else cmd.
fn rootfs_entrypoint(config: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(config).ok()?;
    let config = value.get("config")?;
    let first = |key: &str| {
        config.get(key).and_then(|v| v.as_array()).and_then(|a| a.first()).and_then(|v| v.as_str()).map(str::to_owned)
    };
    first("Entrypoint").or_else(|| first("Cmd"))
}

fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A registry's manifests, as the resolver reads them.
struct RegistryManifests<'a> {
    registry: &'a Registry,
    manifests: &'a ManifestGetter,
    reference: &'a Reference,
    name: &'a str,
}

impl ManifestSource for RegistryManifests<'_> {
    type Error = PullError;

    async fn manifest(&self, digest: &str) -> Result<Vec<u8>, PullError> {
        let target = self.reference.clone_with_digest(digest.to_owned());
        let FetchedManifest { bytes, digest_header } = self
            .manifests
            .get(&target, MANIFEST_MEDIA_TYPES)
            .await
            .map_err(|e| Registry::manifest_error(self.name, e))?;
        self.registry.check_manifest(self.name, &bytes, digest_header.as_deref(), Some(digest))?;
        Ok(bytes)
    }

    fn resolve_error(&self, err: ResolveError) -> PullError {
        let reference = self.name.to_owned();
        match err {
            ResolveError::EmptyIndex => PullError::EmptyIndex { reference },
            ResolveError::Format(source) => PullError::Format { reference, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_over_the_cap_are_refused_before_parsing() {
        let registry = Registry::new(RegistryOptions::default());
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        let err = registry.check_manifest("r", &huge, None, None).unwrap_err();
        assert!(matches!(err, PullError::ManifestTooLarge { .. }));
        assert!(err
            .to_string()
            .contains(&format!("exceeds the 4194304-byte limit ({} bytes)", MAX_MANIFEST_BYTES + 1)));
        let small = b"{}";
        let wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        assert!(matches!(registry.check_manifest("r", small, Some(wrong), None), Err(PullError::Digest { .. })));
        assert!(registry.check_manifest("r", small, Some(&Digest::of(small).to_string()), None).is_ok());
        assert!(matches!(registry.check_manifest("r", small, None, Some(wrong)), Err(PullError::Digest { .. })));
    }

    #[test]
    fn loopback_registries_use_plain_http() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("ghcr.io"));
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
        assert!(rfc3339_now().ends_with('Z'));
    }
}
