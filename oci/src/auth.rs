//! Registry credentials from the Docker/Podman auth file: anonymous unless
//! the file has an entry for the registry.
//!
//! The file is `$REGISTRY_AUTH_FILE`, else `$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`. Entries: `auth` (base64 `user:password`,
//! sent as basic auth or exchanged for a bearer token as the registry asks)
//! and `registrytoken` (a bearer token used as is).

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading the auth file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the auth file {path} is not valid JSON: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the auth file's entry for {registry} has an invalid `auth` value (expected base64 of user:password)")]
    BadEntry { registry: String },
}

#[derive(serde::Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    auth: Option<String>,
    registrytoken: Option<String>,
}

/// Where credentials are read from.
pub fn auth_file_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// Credentials for `registry` (a host[:port]), anonymous when none are configured.
pub fn credentials_for(registry: &str) -> Result<RegistryAuth, AuthError> {
    let Some(path) = auth_file_path() else {
        return Ok(RegistryAuth::Anonymous);
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(source) => return Err(AuthError::Read { path, source }),
    };
    let file: AuthFile =
        serde_json::from_slice(&bytes).map_err(|e| AuthError::Parse { path: path.clone(), message: e.to_string() })?;
    let docker_hub = matches!(registry, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    let entry = file.auths.iter().find_map(|(key, entry)| {
        let host =
            key.trim_start_matches("https://").trim_start_matches("http://").split('/').next().unwrap_or_default();
        let matches = host == registry
            || (docker_hub && matches!(host, "docker.io" | "index.docker.io" | "registry-1.docker.io"));
        matches.then_some(entry)
    });
    let Some(entry) = entry else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let Some(token) = entry.registrytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(RegistryAuth::Bearer(token.clone()));
    }
    let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let bad = || AuthError::BadEntry { registry: registry.to_owned() };
    let decoded = base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()))
}
