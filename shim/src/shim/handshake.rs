//! What `start` reads from containerd and answers.
//!
//! containerd 2.3 introduced a bootstrap protocol: `start` gets a
//! `containerd.runtime.bootstrap.v1.BootstrapParams` protobuf on stdin and
//! answers with a `BootstrapResult` protobuf on stdout. It still passes the
//! older flags and environment as well. containerd 1.6–2.2 instead send the
//! runtime options (a protobuf `Any`, or nothing) and read a bare socket
//! address, the only answer 1.6/1.7 understand.
//!
//! An `Any` can decode as `BootstrapParams` too (its type URL lands in
//! `instance_id`), so, as containerd's own shim library does, stdin counts as
//! bootstrap parameters only when its instance id and namespace are the ones
//! the flags name.
//!
//! The two messages are small and stable, so they are read and written here
//! by hand rather than generated (proto: containerd's
//! `api/runtime/bootstrap/v1/bootstrap.proto`).

/// The fields of `BootstrapParams` the shim uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BootstrapParams {
    pub instance_id: String,
    pub namespace: String,
    /// INFO = 0; more verbose levels are negative (DEBUG = -4).
    pub log_level: i32,
    pub containerd_ttrpc_address: String,
    pub containerd_grpc_address: String,
}

const LOG_LEVEL_DEBUG: i32 = -4;

impl BootstrapParams {
    /// `stdin` as bootstrap parameters, if it is that and names this
    /// container (`id`) in `namespace`; `None` for a legacy caller.
    pub fn from_stdin(stdin: &[u8], id: &str, namespace: &str) -> Option<Self> {
        let params = Self::decode(stdin)?;
        (params.instance_id == id && params.namespace == namespace).then_some(params)
    }

    pub fn debug(&self) -> bool {
        self.log_level <= LOG_LEVEL_DEBUG
    }

    fn decode(mut bytes: &[u8]) -> Option<Self> {
        let mut params = Self::default();
        while !bytes.is_empty() {
            let key = read_varint(&mut bytes)?;
            let (field, wire_type) = (key >> 3, key & 7);
            match wire_type {
                0 => {
                    let value = read_varint(&mut bytes)?;
                    if field == 3 {
                        // An int32 enum: negative values are sign-extended to 64 bits.
                        params.log_level = value as i64 as i32;
                    }
                }
                2 => {
                    let len = usize::try_from(read_varint(&mut bytes)?).ok()?;
                    let value = bytes.get(..len)?;
                    bytes = &bytes[len..];
                    let text = || std::str::from_utf8(value).ok().map(str::to_owned);
                    match field {
                        1 => params.instance_id = text()?,
                        2 => params.namespace = text()?,
                        5 => params.containerd_ttrpc_address = text()?,
                        6 => params.containerd_grpc_address = text()?,
                        _ => {} // versions, binaries, extensions: not needed
                    }
                }
                1 => bytes = bytes.get(8..)?,
                5 => bytes = bytes.get(4..)?,
                _ => return None,
            }
        }
        Some(params)
    }
}

/// `BootstrapResult { version, address, protocol: "ttrpc" }`. The daemon
/// serves the task API as both v2 and v3; containerd 2.3's own shims say 3.
pub fn bootstrap_result(address: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(address.len() + 16);
    out.extend([0x08, 3]); // field 1, varint: version 3
    write_bytes(&mut out, 2, address.as_bytes());
    write_bytes(&mut out, 3, b"ttrpc");
    out
}

fn write_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    write_varint(out, (field << 3) | 2);
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::well_known_types::any::Any;
    use containerd_shim::protos::protobuf::{CodedInputStream, CodedOutputStream, Message as _};

    /// BootstrapParams as containerd 2.3 writes it (protobuf's own encoder).
    fn params_bytes(id: &str, namespace: &str, log_level: i32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut out = CodedOutputStream::vec(&mut bytes);
        out.write_string(1, id).unwrap();
        out.write_string(2, namespace).unwrap();
        out.write_int32(3, log_level).unwrap();
        out.write_string(4, "2.3.4").unwrap();
        out.write_string(5, "/run/containerd/containerd.sock.ttrpc").unwrap();
        out.write_string(6, "/run/containerd/containerd.sock").unwrap();
        out.write_string(7, "/usr/bin/containerd").unwrap();
        // One extension: a message holding an Any.
        let any = Any {
            type_url: "containerd.io/cri.v1.PodSandboxConfig".into(),
            value: vec![1, 2, 3],
            ..Default::default()
        };
        let mut extension = Vec::new();
        let mut ext = CodedOutputStream::vec(&mut extension);
        ext.write_bytes(1, &any.write_to_bytes().unwrap()).unwrap();
        ext.flush().unwrap();
        drop(ext);
        out.write_bytes(8, &extension).unwrap();
        out.flush().unwrap();
        drop(out);
        bytes
    }

    #[test]
    fn reads_containerd_2_3_bootstrap_params() {
        let bytes = params_bytes("c1", "k8s.io", -4);
        let params = BootstrapParams::from_stdin(&bytes, "c1", "k8s.io").expect("bootstrap params");
        assert_eq!(params.containerd_ttrpc_address, "/run/containerd/containerd.sock.ttrpc");
        assert_eq!(params.containerd_grpc_address, "/run/containerd/containerd.sock");
        assert!(params.debug());
        assert!(!BootstrapParams::from_stdin(&params_bytes("c1", "k8s.io", 0), "c1", "k8s.io").unwrap().debug());
        // Another container's parameters are not ours.
        assert_eq!(BootstrapParams::from_stdin(&bytes, "c2", "k8s.io"), None);
    }

    #[test]
    fn legacy_stdin_is_not_bootstrap_params() {
        // containerd 1.x/2.0–2.2: the runtime options as an Any, or nothing.
        let options =
            Any { type_url: "containerd.runc.v1.Options".into(), value: b"k8s.io".to_vec(), ..Default::default() };
        let bytes = options.write_to_bytes().unwrap();
        assert_eq!(BootstrapParams::from_stdin(&bytes, "c1", "k8s.io"), None);
        assert_eq!(BootstrapParams::from_stdin(b"", "c1", "k8s.io"), None);
        assert_eq!(BootstrapParams::from_stdin(b"\xff\xff", "c1", "k8s.io"), None);
    }

    #[test]
    fn bootstrap_result_decodes_as_the_proto() {
        let bytes = bootstrap_result("unix:///run/containerd/s/abc");
        let mut input = CodedInputStream::from_bytes(&bytes);
        let mut seen = (0, String::new(), String::new());
        while let Some(tag) = input.read_raw_tag_or_eof().unwrap() {
            match tag >> 3 {
                1 => seen.0 = input.read_int32().unwrap(),
                2 => seen.1 = input.read_string().unwrap(),
                3 => seen.2 = input.read_string().unwrap(),
                other => panic!("unexpected field {other}"),
            }
        }
        assert_eq!(seen, (3, "unix:///run/containerd/s/abc".to_owned(), "ttrpc".to_owned()));
    }
}
