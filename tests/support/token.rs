//! A token issuer for docker-registry's token authentication, the role an
//! auth service (Docker Hub's, Harbor's, GitLab's) plays in front of a real
//! registry: it checks basic credentials and hands out RS256 JWTs granting
//! exactly the requested scope. The registry verifies them against the
//! issuer's certificate (its `rootcertbundle`), so a token it did not sign,
//! or one for another repository, is refused by the registry itself.

use base64::Engine as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub const SERVICE: &str = "wasmlet-test-registry";
pub const ISSUER: &str = "wasmlet-test-issuer";

pub struct TokenIssuer {
    addr: String,
    user: String,
    password: String,
    key: PathBuf,
    cert: PathBuf,
    stop: Arc<AtomicBool>,
    issued: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A JWT for `access` (e.g. `[("repository", "tok/hello", ["pull"])]`),
/// signed with the RSA key at `key` whose certificate is `cert_der`.
fn sign_token(key: &Path, cert_der: &[u8], subject: &str, access: &[(String, String, Vec<String>)]) -> String {
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)],
    });
    let access: Vec<_> = access
        .iter()
        .map(|(kind, name, actions)| serde_json::json!({"type": kind, "name": name, "actions": actions}))
        .collect();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now() + 3600,
        "nbf": now() - 60,
        "iat": now() - 60,
        "jti": format!("{}-{}", std::process::id(), now()),
        "access": access,
    });
    let signing_input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    child.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl dgst -sign failed");
    format!("{signing_input}.{}", b64url(&out.stdout))
}

/// `repository:tok/hello:pull,push` → ("repository", "tok/hello", ["pull", "push"]).
fn parse_scope(scope: &str) -> Option<(String, String, Vec<String>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((kind.to_owned(), name.to_owned(), actions.split(',').map(str::to_owned).collect()))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TokenIssuer {
    /// Starts the issuer on 127.0.0.1; it accepts `user`/`password` only.
    pub fn start(user: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("signing.key"), dir.path().join("signing.crt"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=wasmlet-test-token-signer",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl req");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let issuer = Self {
            addr,
            user: user.to_owned(),
            password: password.to_owned(),
            key,
            cert,
            stop: Arc::new(AtomicBool::new(false)),
            issued: Arc::new(AtomicUsize::new(0)),
            _dir: dir,
        };
        let (stop, issued) = (issuer.stop.clone(), issuer.issued.clone());
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", issuer.user, issuer.password))
        );
        let (key, cert_der) = (issuer.key.clone(), issuer.cert_der());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    if serve_one(stream, &expected, &key, &cert_der) {
                        issued.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        issuer
    }

    /// Where the registry sends clients for a token.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The certificate the registry trusts for token signatures.
    pub fn signing_cert(&self) -> &Path {
        &self.cert
    }

    /// Tokens handed out so far (to show a client really took the token path).
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// A token minted out of band (what `docker login` would leave as
    /// `registrytoken`), granting `actions` on `repository`.
    pub fn mint(&self, repository: &str, actions: &[&str]) -> String {
        let access =
            [("repository".to_owned(), repository.to_owned(), actions.iter().map(|a| a.to_string()).collect())];
        sign_token(&self.key, &self.cert_der(), &self.user, &access)
    }

    fn cert_der(&self) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&self.cert)
            .output()
            .expect("openssl x509");
        assert!(out.status.success());
        out.stdout
    }
}

/// Answers one request; true when it issued a token.
fn serve_one(stream: TcpStream, expected_auth: &str, key: &Path, cert_der: &[u8]) -> bool {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return false;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            }
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let scopes: Vec<_> = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("scope="))
        .flat_map(|scope| percent_decode(scope).split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|scope| parse_scope(&scope))
        .collect();
    let (status, body, issued) = if authorization.as_deref() == Some(expected_auth) {
        let token = sign_token(key, cert_der, "wasmlet", &scopes);
        ("200 OK", serde_json::json!({"token": token, "access_token": token, "expires_in": 3600}).to_string(), true)
    } else {
        ("401 Unauthorized", r#"{"details":"bad credentials"}"#.to_owned(), false)
    };
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    issued
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr); // wake the accept loop
    }
}
