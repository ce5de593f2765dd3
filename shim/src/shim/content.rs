//! Reading a container's Wasm from containerd's content store (gRPC):
//! container → image → manifest (through an index if need be, by
//! `wasmlet_oci::resolve`, as a registry pull does) → the Wasm layer,
//! verified against its digest. For images whose rootfs is empty because
//! their Wasm is a layer, not a file.

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{GetContainerRequest, GetImageRequest, ListImagesRequest, ReadContentRequest};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::Request;
use containerd_client::with_namespace;
use wasmlet_content::{verify as verify_digest, Digest, DigestError};
use wasmlet_oci::format::Packaging;
use wasmlet_oci::resolve::{resolve, ManifestSource, ResolveError};

/// Largest blob read from the content store for a manifest or index.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("connecting to containerd at {address}: {message}")]
    Connect { address: String, message: String },
    #[error("containerd {call}: {message}")]
    Call { call: &'static str, message: String },
    #[error("image {image}: {source}")]
    Resolve {
        image: String,
        #[source]
        source: ResolveError,
    },
    #[error("image {image}: {source}")]
    Digest {
        image: String,
        #[source]
        source: DigestError,
    },
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
}

/// A Wasm layer read from the content store, already verified.
#[derive(Debug, Clone)]
pub struct WasmBlob {
    pub image: String,
    /// Verified against the bytes.
    pub digest: wasmlet_content::Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

pub struct ContainerdContent {
    channel: Channel,
    namespace: String,
}

fn call(call: &'static str) -> impl Fn(containerd_client::tonic::Status) -> ContainerdError {
    move |status| ContainerdError::Call { call, message: status.message().to_owned() }
}

impl ContainerdContent {
    pub async fn connect(address: &str, namespace: &str) -> Result<Self, ContainerdError> {
        let path = address.strip_prefix("unix://").unwrap_or(address);
        let channel = containerd_client::connect(path)
            .await
            .map_err(|e| ContainerdError::Connect { address: address.to_owned(), message: e.to_string() })?;
        Ok(Self { channel, namespace: namespace.to_owned() })
    }

    async fn read(&self, digest: &str, limit: Option<u64>) -> Result<Vec<u8>, ContainerdError> {
        let mut client = ContentClient::new(self.channel.clone());
        let request = ReadContentRequest { digest: digest.to_owned(), offset: 0, size: 0 };
        let mut stream =
            client.read(with_namespace!(request, self.namespace)).await.map_err(call("content read"))?.into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(call("content read"))? {
            bytes.extend_from_slice(&chunk.data);
            if limit.is_some_and(|l| bytes.len() as u64 > l) {
                return Err(ContainerdError::Call {
                    call: "content read",
                    message: format!("{digest} is larger than {} bytes", limit.unwrap_or_default()),
                });
            }
        }
        Ok(bytes)
    }

    /// Blob `digest` of `image` (`what` in errors), at most `limit` bytes,
    /// checked against its digest and, when given, its size.
    async fn read_verified(
        &self,
        image: &str,
        what: &str,
        digest: &str,
        limit: u64,
        size: Option<u64>,
    ) -> Result<(Vec<u8>, Digest), ContainerdError> {
        let bytes = self.read(digest, Some(limit)).await?;
        let verified = verify_digest(what, &bytes, digest, size)
            .map_err(|source| ContainerdError::Digest { image: image.to_owned(), source })?;
        Ok((bytes, verified))
    }

    /// The Wasm layer of `container_id`'s image; `None` when the image keeps
    /// its Wasm in the rootfs (or the container has no image).
    pub async fn wasm_for_container(&self, container_id: &str) -> Result<Option<WasmBlob>, ContainerdError> {
        let mut containers = ContainersClient::new(self.channel.clone());
        let request = GetContainerRequest { id: container_id.to_owned() };
        let container = containers
            .get(with_namespace!(request, self.namespace))
            .await
            .map_err(call("get container"))?
            .into_inner()
            .container;
        let Some(image) = container.map(|c| c.image).filter(|i| !i.is_empty()) else {
            return Ok(None);
        };
        self.wasm_for_image(&image).await
    }

    /// The names of the namespace's images.
    pub async fn image_names(&self) -> Result<Vec<String>, ContainerdError> {
        let mut images = ImagesClient::new(self.channel.clone());
        let request = ListImagesRequest { filters: Vec::new() };
        let listed = images.list(with_namespace!(request, self.namespace)).await.map_err(call("list images"))?;
        Ok(listed.into_inner().images.into_iter().map(|i| i.name).collect())
    }

    /// The same store seen from another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Self {
        Self { channel: self.channel.clone(), namespace: namespace.to_owned() }
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The Wasm layer of image `image`; `None` when the image keeps its Wasm
    /// in the rootfs (or has none).
    pub async fn wasm_for_image(&self, image: &str) -> Result<Option<WasmBlob>, ContainerdError> {
        let image = image.to_owned();
        let mut images = ImagesClient::new(self.channel.clone());
        let request = GetImageRequest { name: image.clone() };
        let target = images
            .get(with_namespace!(request, self.namespace))
            .await
            .map_err(call("get image"))?
            .into_inner()
            .image
            .and_then(|i| i.target)
            .ok_or_else(|| ContainerdError::Image { image: image.clone(), message: "has no target".into() })?;
        let (top, _) = self
            .read_verified(&image, "manifest", &target.digest, MAX_MANIFEST_BYTES, Some(target.size as u64))
            .await?;
        let source = ImageManifests { content: self, image: &image };
        let resolved = resolve(&source, top).await?;
        match resolved.packaging {
            Packaging::Rootfs => Ok(None),
            Packaging::WasmLayer { media_type, digest, size } => {
                let (bytes, digest) = self.read_verified(&image, "Wasm layer", &digest, size, Some(size)).await?;
                Ok(Some(WasmBlob { image: image.clone(), digest, media_type, bytes }))
            }
        }
    }
}

/// An image's manifests in containerd's content store, as the resolver reads them.
struct ImageManifests<'a> {
    content: &'a ContainerdContent,
    image: &'a str,
}

impl ManifestSource for ImageManifests<'_> {
    type Error = ContainerdError;

    async fn manifest(&self, digest: &str) -> Result<Vec<u8>, ContainerdError> {
        let (bytes, _) = self.content.read_verified(self.image, "manifest", digest, MAX_MANIFEST_BYTES, None).await?;
        Ok(bytes)
    }

    fn resolve_error(&self, source: ResolveError) -> ContainerdError {
        ContainerdError::Resolve { image: self.image.to_owned(), source }
    }
}
