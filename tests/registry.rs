//! `wasmlet push/pull/run REF/images/rmi` against a real registry (Debian's
//! docker-registry on loopback, temp storage): every packaging, each kind of
//! bad input, basic auth, token auth, HTTPS with a private CA, and the
//! progress bar on a pseudo-terminal.

use std::process::Output;
use wasmlet_tests::registry::Registry;
use wasmlet_tests::{guest, oci, seen, Seen, Wasmlet};

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const RUNWASI_LAYER: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";

fn wasmlet_run(w: &Wasmlet, args: &[&str]) -> Output {
    w.run(args)
}

fn store_files(w: &Wasmlet) -> usize {
    walk(&w.cache.path().join("oci/blobs"))
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
        .unwrap_or(0)
}

#[test]
fn push_then_pull_and_run_a_wasm_artifact() {
    let registry = Registry::start();
    let pusher = Wasmlet::new();
    let p1 = format!("{}/wasmlet/hello:p1", registry.addr);
    let p2 = format!("{}/wasmlet/hello:p2", registry.addr);
    for (file, reference) in [(guest("hello", false), &p1), (guest("hello", true), &p2)] {
        let s = seen(&pusher.run(["push".as_ref(), file.as_os_str(), reference.as_ref()]));
        assert_eq!(s.code, Some(0), "{s:?}");
        assert!(s.stdout.starts_with(&format!("{reference} sha256:")), "{s:?}");
    }

    // A fresh node: `run REF` pulls, then runs.
    let node = Wasmlet::new();
    let s = seen(&wasmlet_run(&node, &["run", &p1]));
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");
    let s = seen(&node.run(["pull", p2.as_str()]));
    assert_eq!(s.code, Some(0), "{s:?}");
    let s = seen(&wasmlet_run(&node, &["run", &p2]));
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");

    let s = seen(&node.run(["images"]));
    let line = |tag: &str| s.stdout.lines().find(|l| l.contains(tag)).map(str::to_owned).unwrap_or_default();
    assert!(line(":p1").contains("wasip1"), "{s:?}");
    assert!(line(":p2").contains("wasip2"), "{s:?}");

    // The second run of a pulled artifact compiles nothing: the cache is keyed by its digest.
    let out = node.command().env("WASMLET_LOG", "wasmlet_runtime=debug").args(["run", &p1]).output().unwrap();
    let s = seen(&out);
    assert!(s.stderr.contains("cache hit") && !s.stderr.contains("compiled and cached"), "{s:?}");

    let s = seen(&node.run(["rmi", p1.as_str(), p2.as_str()]));
    assert_eq!(s.code, Some(0), "{s:?}");
    assert_eq!(store_files(&node), 0, "blobs left after rmi");
    let s = seen(&node.run(["rmi", p1.as_str()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("no such image"), "{s:?}");
}

#[test]
fn runwasi_layers_and_plain_images_run_too() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let hello = std::fs::read(guest("hello", true)).unwrap();

    let runwasi = work.path().join("runwasi");
    oci::layout(
        &runwasi,
        OCI_CONFIG,
        br#"{"architecture":"wasm","os":"wasip2"}"#,
        &[(RUNWASI_LAYER, &hello)],
        serde_json::json!({}),
    );
    registry.push_layout(&runwasi, "wasmlet/runwasi:1");

    let plain = work.path().join("plain");
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/app/hello.wasm"]},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let base = oci::tar_layer(&[("/app/hello.wasm", b"not yet")]);
    let top = oci::tar_layer(&[("/app/hello.wasm", &hello), ("/etc/motd", b"hi")]);
    oci::layout(
        &plain,
        OCI_CONFIG,
        &serde_json::to_vec(&config).unwrap(),
        &[("application/vnd.oci.image.layer.v1.tar", &base), ("application/vnd.oci.image.layer.v1.tar", &top)],
        serde_json::json!({}),
    );
    registry.push_layout(&plain, "wasmlet/plain:1");

    let node = Wasmlet::new();
    for name in ["wasmlet/runwasi:1", "wasmlet/plain:1"] {
        let reference = format!("{}/{name}", registry.addr);
        let s = seen(&node.run(["run", reference.as_str()]));
        assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{name}: {s:?}");
    }
}

#[test]
fn bad_images_are_refused_with_the_reason_and_leave_the_store_intact() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let hello = std::fs::read(guest("hello", false)).unwrap();
    // (name, config media type, config, layers (media type, bytes), error)
    type Case<'a> = (&'a str, &'a str, &'a [u8], Vec<(&'a str, &'a [u8])>, &'a str);
    let cases: [Case; 4] = [
        ("unknown-layer", OCI_CONFIG, b"{}", vec![("text/plain", b"hello")], "unknown layer media type `text/plain`"),
        ("unknown-config", "application/x-mystery", b"{}", vec![(RUNWASI_LAYER, &hello)], "unknown config media type"),
        (
            "two-wasm",
            OCI_CONFIG,
            b"{}",
            vec![(RUNWASI_LAYER, &hello), (RUNWASI_LAYER, b"\0asm\x01\0\0\0")],
            "2 Wasm layers",
        ),
        ("no-layers", OCI_CONFIG, b"{}", vec![], "no Wasm layer"),
    ];
    for (name, config_type, config, layers, _) in &cases {
        let dir = work.path().join(name);
        oci::layout(&dir, config_type, config, layers, serde_json::json!({}));
        registry.push_layout(&dir, &format!("bad/{name}:1"));
    }
    let node = Wasmlet::new();
    for (name, _, _, _, why) in &cases {
        let s = seen(&node.run(["pull".to_owned(), format!("{}/bad/{name}:1", registry.addr)]));
        assert_eq!(s.code, Some(1), "{name}: {s:?}");
        assert!(s.stderr.contains(why), "{name}: expected `{why}` in {s:?}");
    }
    // A plain image's layer is unpacked within the blob cap and must be the
    // diff_id its config lists; a gzip bomb stops at the cap.
    let hello_tar = oci::tar_layer(&[("/app/hello.wasm", &hello)]);
    let zeros = vec![0u8; 32 << 20];
    let bomb_tar = oci::tar_layer(&[("/app/hello.wasm", &zeros)]);
    let gzip = |bytes: &[u8]| {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    };
    let sha256 = |bytes: &[u8]| format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)));
    let bomb = gzip(&bomb_tar);
    let plain_config = |diff_id: &str| {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": ["/app/hello.wasm"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .unwrap()
    };
    let wrong = format!("sha256:{}", "0".repeat(64));
    // (name, config, layer media type, layer, error)
    type Layered<'a> = (&'a str, Vec<u8>, &'a str, &'a [u8], &'a str);
    let layered: [Layered; 2] = [
        ("wrong-diff-id", plain_config(&wrong), "application/vnd.oci.image.layer.v1.tar", &hello_tar, "lists diff_id"),
        (
            "gzip-bomb",
            plain_config(&sha256(&bomb_tar)),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &bomb,
            "unpacks to more than 8388608 bytes",
        ),
    ];
    for (name, config, media_type, layer, why) in &layered {
        let dir = work.path().join(name);
        oci::layout(&dir, OCI_CONFIG, config, &[(media_type, layer)], serde_json::json!({}));
        registry.push_layout(&dir, &format!("bad/{name}:1"));
        let reference = format!("{}/bad/{name}:1", registry.addr);
        let s = seen(&node.run(["pull", "--max-blob-size", "8Mi", reference.as_str()]));
        assert_eq!(s.code, Some(1), "{name}: {s:?}");
        assert!(s.stderr.contains(why), "{name}: expected `{why}` in {s:?}");
    }
    assert!(bomb.len() < 1 << 20, "the bomb is small compressed: {} bytes", bomb.len());
    // Registries cap manifests at 4 MiB themselves, but a config is a blob:
    // wasmlet's cap applies to it too, before anything is downloaded.
    let huge_config = format!("{{\"pad\":\"{}\"}}", "x".repeat(5 << 20));
    let config_digest = registry.push_blob("bad/huge-config", huge_config.as_bytes());
    let layer_digest = registry.push_blob("bad/huge-config", &hello);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": huge_config.len()},
        "layers": [{"mediaType": RUNWASI_LAYER, "digest": layer_digest, "size": hello.len()}],
    });
    registry.push_manifest("bad/huge-config", "1", &serde_json::to_vec(&manifest).unwrap());
    let s = seen(&node.run(["pull".to_owned(), format!("{}/bad/huge-config:1", registry.addr)]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(
        s.stderr.contains("image config exceeds the 4194304-byte limit (5242890 bytes declared; nothing downloaded)"),
        "{s:?}"
    );

    let s = seen(&node.run(["pull".to_owned(), format!("{}/bad/missing:nope", registry.addr)]));
    assert_eq!(s.code, Some(1));
    assert!(s.stderr.contains("not found"), "{s:?}");

    // Nothing half-stored.
    let s = seen(&node.run(["images"]));
    assert_eq!(s.stdout.lines().count(), 1, "{s:?}");
    assert_eq!(walk(&node.cache.path().join("oci/tmp")), 0);
}

#[test]
fn corrupt_or_truncated_blobs_in_the_registry_are_never_stored() {
    let registry = Registry::start();
    let pusher = Wasmlet::new();
    let hello = guest("hello", false);
    let bytes = std::fs::read(&hello).unwrap();
    let digest = oci::sha256(&bytes);
    let reference = format!("{}/wasmlet/tamper:1", registry.addr);
    assert_eq!(pusher.run(["push".as_ref(), hello.as_os_str(), reference.as_ref()]).status.code(), Some(0));

    // Same length, different bytes: a digest mismatch.
    let blob = registry.blob_file(&digest);
    let mut evil = bytes.clone();
    let last = evil.len() - 1;
    evil[last] ^= 0xff;
    std::fs::write(&blob, &evil).unwrap();
    let node = Wasmlet::new();
    let s = seen(&node.run(["pull", reference.as_str()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("digest mismatch"), "{s:?}");
    assert_eq!(node.run(["images"]).stdout.iter().filter(|b| **b == b'\n').count(), 1);

    // Truncated.
    std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();
    let s = seen(&node.run(["pull", reference.as_str()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("size mismatch") || s.stderr.contains("digest mismatch"), "{s:?}");
    assert_eq!(walk(&node.cache.path().join("oci/tmp")), 0, "partial download left behind");
    assert!(!node.cache.path().join("oci/blobs/sha256").join(digest.trim_start_matches("sha256:")).exists());

    // Repaired upstream: the pull now succeeds and runs.
    std::fs::write(&blob, &bytes).unwrap();
    let s = seen(&node.run(["run", reference.as_str()]));
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");
}

#[test]
fn registry_down_is_reported_as_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let node = Wasmlet::new();
    let s = seen(&node.run(["pull".to_owned(), format!("127.0.0.1:{port}/wasmlet/hello:1")]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("cannot reach the registry"), "{s:?}");
    let s =
        seen(&node.run(["push".as_ref(), guest("hello", false).as_os_str(), format!("127.0.0.1:{port}/x:1").as_ref()]));
    assert_eq!(s.code, Some(1), "{s:?}");
}

#[test]
fn basic_auth_from_the_auth_file_and_refused_credentials() {
    let registry = Registry::start_with_auth(Some(("wasm", "let-me-in")));
    let reference = format!("{}/private/hello:1", registry.addr);
    let auth_dir = tempfile::tempdir().unwrap();
    let write_auth = |password: &str| {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("wasm:{password}"));
        let path = auth_dir.path().join(format!("auth-{password}.json"));
        std::fs::write(
            &path,
            serde_json::to_vec(&serde_json::json!({"auths": {registry.addr.clone(): {"auth": token}}})).unwrap(),
        )
        .unwrap();
        path
    };
    let good = write_auth("let-me-in");
    let bad = write_auth("wrong");
    let w = Wasmlet::new();
    let push = |auth: &std::path::Path| {
        seen(
            &w.command()
                .env("REGISTRY_AUTH_FILE", auth)
                .args(["push".as_ref(), guest("hello", false).as_os_str(), reference.as_ref()])
                .output()
                .unwrap(),
        )
    };
    let s = push(&bad);
    assert_eq!(s.code, Some(1), "{s:?}");
    let s = push(&good);
    assert_eq!(s.code, Some(0), "{s:?}");

    let node = Wasmlet::new();
    let s = seen(&node.command().env("REGISTRY_AUTH_FILE", &bad).args(["pull", &reference]).output().unwrap());
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("refused the credentials"), "{s:?}");
    let s =
        seen(&node.command().env("REGISTRY_AUTH_FILE", "/nonexistent").args(["pull", &reference]).output().unwrap());
    assert_eq!(s.code, Some(1), "anonymous pull of a private image: {s:?}");
    let s = seen(&node.command().env("REGISTRY_AUTH_FILE", &good).args(["run", &reference]).output().unwrap());
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");
}

#[test]
fn https_is_the_default_and_the_registry_ca_can_be_trusted() {
    use wasmlet_tests::pki::TestCa;
    use wasmlet_tests::registry::RegistrySetup;
    let ca = TestCa::new("wasmlet test CA");
    let server = ca.server_cert("127.0.0.2");
    let registry = Registry::start_with(RegistrySetup { tls: Some(&server), ..Default::default() });
    let reference = format!("{}/secure/hello:1", registry.addr);
    let hello = guest("hello", false);
    let ca_file = ca.cert.to_str().unwrap();
    let w = Wasmlet::new();

    // The registry speaks only TLS: a push that works went over HTTPS.
    let s = seen(&w.run(["push".as_ref(), hello.as_os_str(), reference.as_ref()]));
    assert_eq!(s.code, Some(1), "an unknown CA must be refused: {s:?}");
    assert!(s.stderr.contains("certificate"), "{s:?}");
    let s = seen(&w.run(["push", "--ca-file", ca_file, hello.to_str().unwrap(), &reference]));
    assert_eq!(s.code, Some(0), "{s:?}");

    let node = Wasmlet::new();
    let s = seen(&node.run(["pull", &reference]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("TLS certificate is not trusted") && s.stderr.contains("UnknownIssuer"), "{s:?}");
    assert_eq!(store_files(&node), 0);
    let s = seen(&node.run(["pull", "--ca-file", ca_file, &reference]));
    assert_eq!(s.code, Some(0), "{s:?}");

    // The operator's way: certs.d/<host:port>/ca.crt, as Docker and Podman read it.
    let certs_d = tempfile::tempdir().unwrap();
    let host_dir = certs_d.path().join(&registry.addr);
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(&ca.cert, host_dir.join("ca.crt")).unwrap();
    let other = Wasmlet::new();
    let s = seen(&other.command().env("WASMLET_CERTS_D", certs_d.path()).args(["run", &reference]).output().unwrap());
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");

    // A CA file that does not exist is named.
    let s = seen(&other.run(["pull", "--ca-file", "/nonexistent/ca.pem", &reference]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("/nonexistent/ca.pem"), "{s:?}");
}

#[test]
fn bearer_tokens_from_the_registry_token_service_and_from_the_auth_file() {
    use base64::Engine as _;
    use wasmlet_tests::registry::RegistrySetup;
    use wasmlet_tests::token::TokenIssuer;
    let issuer = TokenIssuer::start("wasm", "token-pass");
    let registry = Registry::start_with(RegistrySetup { token: Some(&issuer), ..Default::default() });
    let reference = format!("{}/tok/hello:1", registry.addr);
    let auth_dir = tempfile::tempdir().unwrap();
    let write_auth = |name: &str, entry: serde_json::Value| {
        let path = auth_dir.path().join(format!("{name}.json"));
        std::fs::write(
            &path,
            serde_json::to_vec(&serde_json::json!({"auths": {registry.addr.clone(): entry}})).unwrap(),
        )
        .unwrap();
        path
    };
    let basic = |password: &str| serde_json::json!({"auth": base64::engine::general_purpose::STANDARD.encode(format!("wasm:{password}"))});
    let good = write_auth("good", basic("token-pass"));
    let bad = write_auth("bad", basic("wrong"));
    let with_auth = |w: &Wasmlet, auth: &std::path::Path, args: &[&str]| {
        seen(&w.command().env("REGISTRY_AUTH_FILE", auth).args(args).output().unwrap())
    };

    // Credentials are exchanged for a token at the realm the registry names.
    let w = Wasmlet::new();
    let s = with_auth(&w, &good, &["push", guest("hello", false).to_str().unwrap(), &reference]);
    assert_eq!(s.code, Some(0), "{s:?}");
    assert!(issuer.issued() > 0, "the push never asked the token service");
    let node = Wasmlet::new();
    let s = with_auth(&node, &good, &["run", &reference]);
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");

    // Refused by the token service; no credentials at all: refused by the registry.
    let s = with_auth(&Wasmlet::new(), &bad, &["pull", &reference]);
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("refused the credentials"), "{s:?}");
    let s = with_auth(&Wasmlet::new(), std::path::Path::new("/nonexistent"), &["pull", &reference]);
    assert_eq!(s.code, Some(1), "{s:?}");

    // `registrytoken`: a bearer token used as is, no exchange.
    let before = issuer.issued();
    let direct = write_auth("direct", serde_json::json!({"registrytoken": issuer.mint("tok/hello", &["pull"])}));
    let s = with_auth(&Wasmlet::new(), &direct, &["run", &reference]);
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");
    assert_eq!(issuer.issued(), before, "a registrytoken must be sent as is");
    // The registry checks the token's scope: one for another repository is refused.
    let other = write_auth("other", serde_json::json!({"registrytoken": issuer.mint("tok/other", &["pull"])}));
    let s = with_auth(&Wasmlet::new(), &other, &["pull", &reference]);
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("refused the credentials"), "{s:?}");
}

/// A module over the progress bar's 1 MiB threshold: a 2 MiB data segment.
fn large_module(dir: &std::path::Path) -> std::path::PathBuf {
    let text =
        format!("(module (memory 40) (data (i32.const 0) \"{}\") (func (export \"_start\")))", "w".repeat(2 << 20));
    let path = dir.join("large.wasm");
    std::fs::write(&path, wat::parse_str(text).unwrap()).unwrap();
    path
}

/// `wasmlet ARGS` with stdout and stderr on a pseudo-terminal (util-linux
/// `script`); returns what the terminal showed.
fn on_a_terminal(w: &Wasmlet, args: &[&str]) -> Seen {
    let command = std::iter::once(wasmlet_tests::bin("wasmlet").display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("WASMLET_CACHE_DIR", w.cache.path())
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux)");
    seen(&out)
}

#[test]
fn transfers_of_large_blobs_show_progress_on_a_terminal_only() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let large = large_module(work.path());
    let reference = format!("{}/big/module:1", registry.addr);
    let w = Wasmlet::new();
    let s = on_a_terminal(&w, &["push", large.to_str().unwrap(), &reference]);
    assert_eq!(s.code, Some(0), "{s:?}");
    assert!(s.stdout.contains("pushing [") && s.stdout.contains("2.00 MiB"), "no progress bar on the terminal: {s:?}");

    let node = Wasmlet::new();
    let s = on_a_terminal(&node, &["pull", &reference]);
    assert_eq!(s.code, Some(0), "{s:?}");
    assert!(s.stdout.contains("pulling [") && s.stdout.contains("2.00 MiB"), "no progress bar on the terminal: {s:?}");

    // Piped (as in CI logs): no bar, just the result line.
    let s = seen(&Wasmlet::new().run(["pull", &reference]));
    assert_eq!(s.code, Some(0), "{s:?}");
    assert!(s.stderr.is_empty(), "{s:?}");
    assert!(s.stdout.starts_with(&reference), "{s:?}");
    let s = seen(&Wasmlet::new().run(["run", &reference]));
    assert_eq!(s.code, Some(0), "the large module runs: {s:?}");
}

fn temp_files(w: &Wasmlet) -> Vec<(std::path::PathBuf, u64)> {
    std::fs::read_dir(w.cache.path().join("oci/tmp"))
        .map(|d| d.flatten().map(|e| (e.path(), e.metadata().map_or(0, |m| m.len()))).collect())
        .unwrap_or_default()
}

#[test]
fn interrupted_pulls_store_nothing_and_restart_cleanly() {
    use wasmlet_tests::faults::{Fault, FaultyRelay};
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let large = large_module(work.path());
    let direct = format!("{}/big/interrupted:1", registry.addr);
    assert_eq!(Wasmlet::new().run(["push".as_ref(), large.as_os_str(), direct.as_ref()]).status.code(), Some(0));
    let layer = oci::sha256(&std::fs::read(&large).unwrap());
    let layer_stored =
        |w: &Wasmlet| w.cache.path().join("oci/blobs/sha256").join(layer.trim_start_matches("sha256:")).exists();
    let relay = FaultyRelay::start(&registry.addr, Fault::Cut, 1 << 20);
    let reference = format!("{}/big/interrupted:1", relay.addr);
    let node = Wasmlet::new();

    // The connection drops 1 MiB into the blob.
    let s = seen(&node.run(["pull", &reference]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("downloading sha256:") || s.stderr.contains("size"), "{s:?}");
    assert!(!layer_stored(&node), "a partial download became a blob");
    assert!(temp_files(&node).is_empty(), "{:?}", temp_files(&node));
    assert_eq!(node.run(["images"]).stdout.iter().filter(|b| **b == b'\n').count(), 1, "an image was tagged");

    // The pull is killed mid-blob: its partial download stays behind…
    relay.set(Fault::Stall);
    let mut child = node
        .command()
        .args(["pull", &reference])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !temp_files(&node).iter().any(|(_, len)| *len > 0) {
        assert!(std::time::Instant::now() < deadline, "the pull never started writing its download");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(temp_files(&node).len(), 1);
    assert!(!layer_stored(&node));

    // …and the next pull sweeps it and starts over.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    relay.set(Fault::None);
    let s = seen(&node.run(["pull", &reference]));
    assert_eq!(s.code, Some(0), "{s:?}");
    assert!(temp_files(&node).is_empty(), "{:?}", temp_files(&node));
    assert!(layer_stored(&node));
    let s = seen(&node.run(["run", &reference]));
    assert_eq!(s.code, Some(0), "{s:?}");
}

/// A registry that accepts connections and never answers fails a pull in
/// the read timeout, naming it, instead of hanging; a blob declared larger
/// than the limit is refused before a byte of it is downloaded.
#[test]
fn a_silent_registry_times_out_and_an_oversized_blob_is_refused_before_download() {
    use wasmlet_tests::faults::{Fault, FaultyRelay};
    let registry = Registry::start();
    let silent = FaultyRelay::start(&registry.addr, Fault::Stall, 0);
    let node = Wasmlet::new();
    let started = std::time::Instant::now();
    let s = seen(&node.run(["pull", "--read-timeout", "1s", &format!("{}/never/answers:1", silent.addr)]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("stopped answering (timed out"), "{s:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());

    let work = tempfile::tempdir().unwrap();
    let large = large_module(work.path());
    let reference = format!("{}/big/capped:1", registry.addr);
    assert_eq!(Wasmlet::new().run(["push".as_ref(), large.as_os_str(), reference.as_ref()]).status.code(), Some(0));
    let layer = oci::sha256(&std::fs::read(&large).unwrap());
    let s = seen(&node.run(["pull", "--max-blob-size", "1Mi", &reference]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains(&format!("blob {layer} declares")) && s.stderr.contains("1048576-byte limit"), "{s:?}");
    assert!(!node.cache.path().join("oci/blobs/sha256").join(layer.trim_start_matches("sha256:")).exists());
    assert!(temp_files(&node).is_empty(), "{:?}", temp_files(&node));
    let s = seen(&node.run(["pull", &reference]));
    assert_eq!(s.code, Some(0), "{s:?}");
}

/// A registry that floods a manifest — an endless chunked body, or a
/// `Content-Length` of 300 MiB — fails the pull at the 4 MiB cap while the
/// body streams (nothing near 300 MiB is read or held), and stores nothing.
#[test]
fn a_flooding_manifest_is_cut_at_the_cap_while_it_streams() {
    use wasmlet_tests::hostile::{Flood, HostileRegistry};
    for (flood, says) in [
        (Flood::Endless, "bytes read before the transfer was cut"),
        (Flood::Declared(300 << 20), "314572800 bytes declared; nothing read"),
    ] {
        let hostile = HostileRegistry::start(flood);
        let node = Wasmlet::new();
        let s = seen(&node.run(["pull", &format!("{}/flood/manifest:1", hostile.addr)]));
        assert_eq!(s.code, Some(1), "{flood:?}: {s:?}");
        assert!(s.stderr.contains("manifest exceeds the 4194304-byte limit") && s.stderr.contains(says), "{s:?}");
        // The cap plus what sockets buffer: far from the flood.
        assert!(hostile.sent() < 32 << 20, "{flood:?}: the registry sent {} bytes", hostile.sent());
        assert_eq!(store_files(&node), 0, "{flood:?}: something was stored");
    }
}
