//! An HTTP function that needs 160 MiB of linear memory before its first
//! request (a zeroed table in its data section, as a big lookup table or an
//! embedded model would be): under a smaller memory limit no instance of it
//! can be made, which the host must say at start, not per request.

use std::sync::atomic::{AtomicU8, Ordering};
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

const TABLE_BYTES: usize = 160 << 20;

/// Zeroed, so it costs nothing in the file, only in the initial memory.
static TABLE: [AtomicU8; TABLE_BYTES] = [const { AtomicU8::new(0) }; TABLE_BYTES];

struct Hefty;

wasi::http::proxy::export!(Hefty);

impl wasi::exports::http::incoming_handler::Guest for Hefty {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let slot = &TABLE[path.len() * 4096 % TABLE_BYTES];
        let seen = slot.fetch_add(1, Ordering::Relaxed);
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("body of a new response");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("stream of a new body");
        stream.blocking_write_and_flush(format!("seen {seen}\n").as_bytes()).expect("write");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish");
    }
}
