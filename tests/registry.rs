//! `wasmlet push/pull/run REF/images/rmi` against a real registry (Debian's
//! docker-registry on 127.0.0.1, temp storage), every packaging, and each
//! kind of bad input.

use std::process::Output;
use wasmlet_tests::registry::Registry;
use wasmlet_tests::{guest, oci, seen, Wasmlet};

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
        .map(|d| {
            d.flatten()
                .map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 })
                .sum()
        })
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
    oci::layout(&runwasi, OCI_CONFIG, br#"{"architecture":"wasm","os":"wasip2"}"#, &[(RUNWASI_LAYER, &hello)], serde_json::json!({}));
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
    let cases: [(&str, &str, Vec<(&str, &[u8])>, &str); 4] = [
        ("unknown-layer", OCI_CONFIG, vec![("text/plain", b"hello")], "unknown layer media type `text/plain`"),
        ("unknown-config", "application/x-mystery", vec![(RUNWASI_LAYER, &hello)], "unknown config media type"),
        ("two-wasm", OCI_CONFIG, vec![(RUNWASI_LAYER, &hello), (RUNWASI_LAYER, b"\0asm\x01\0\0\0")], "2 Wasm layers"),
        ("no-layers", OCI_CONFIG, vec![], "no Wasm layer"),
    ];
    for (name, config_type, layers, _) in &cases {
        let dir = work.path().join(name);
        oci::layout(&dir, config_type, b"{}", layers, serde_json::json!({}));
        registry.push_layout(&dir, &format!("bad/{name}:1"));
    }
    let node = Wasmlet::new();
    for (name, _, _, why) in &cases {
        let s = seen(&node.run(["pull".to_owned(), format!("{}/bad/{name}:1", registry.addr)]));
        assert_eq!(s.code, Some(1), "{name}: {s:?}");
        assert!(s.stderr.contains(why), "{name}: expected `{why}` in {s:?}");
    }
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
    let digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
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
    let s = seen(&node.run(["push".as_ref(), guest("hello", false).as_os_str(), format!("127.0.0.1:{port}/x:1").as_ref()]));
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
        std::fs::write(&path, serde_json::to_vec(&serde_json::json!({"auths": {registry.addr.clone(): {"auth": token}}})).unwrap()).unwrap();
        path
    };
    let good = write_auth("let-me-in");
    let bad = write_auth("wrong");
    let w = Wasmlet::new();
    let push = |auth: &std::path::Path| {
        seen(&w.command().env("REGISTRY_AUTH_FILE", auth).args(["push".as_ref(), guest("hello", false).as_os_str(), reference.as_ref()]).output().unwrap())
    };
    let s = push(&bad);
    assert_eq!(s.code, Some(1), "{s:?}");
    let s = push(&good);
    assert_eq!(s.code, Some(0), "{s:?}");

    let node = Wasmlet::new();
    let s = seen(&node.command().env("REGISTRY_AUTH_FILE", &bad).args(["pull", &reference]).output().unwrap());
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("refused the credentials"), "{s:?}");
    let s = seen(&node.command().env("REGISTRY_AUTH_FILE", "/nonexistent").args(["pull", &reference]).output().unwrap());
    assert_eq!(s.code, Some(1), "anonymous pull of a private image: {s:?}");
    let s = seen(&node.command().env("REGISTRY_AUTH_FILE", &good).args(["run", &reference]).output().unwrap());
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");
}
