//! Echoes a request: the method, path and headers as text, then the body,
//! streamed through chunk by chunk. Special paths exercise the host's limits:
//! `/trap` traps, `/spin` loops forever, `/sleep/<ms>` waits, `/log` writes
//! to stdout and stderr, `/grow/<MiB>` allocates that much, `/stream/<n>`
//! sends n × 64 KiB of body after the echo.

use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;

struct Echo;

wasi::http::proxy::export!(Echo);

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

impl wasi::exports::http::incoming_handler::Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let route = path.split('?').next().unwrap_or_default().to_owned();
        if route == "/trap" {
            panic!("asked to trap");
        }
        if route == "/spin" {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if let Some(ms) = route.strip_prefix("/sleep/") {
            let ms: u64 = ms.parse().unwrap_or(0);
            wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
        }
        if route == "/log" {
            println!("echo: to stdout");
            eprintln!("echo: to stderr");
        }
        let mut hog = Vec::new();
        if let Some(mib) = route.strip_prefix("/grow/") {
            let mib: usize = mib.parse().unwrap_or(0);
            hog = vec![1u8; mib << 20];
        }
        let mut head = format!("{} {}\n", method_name(&request.method()), path);
        for (name, value) in request.headers().entries() {
            head.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(&value)));
        }
        head.push('\n');
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
            .expect("valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("body of a new response");
        ResponseOutparam::set(out, Ok(response));
        let output = body.write().expect("stream of a new body");
        output.blocking_write_and_flush(head.as_bytes()).expect("write head");
        if let Some(chunks) = route.strip_prefix("/stream/") {
            // A long body, each write checked: a client that leaves early
            // must not make a write fail (the host drains what is left).
            let chunks: usize = chunks.parse().unwrap_or(0);
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..chunks {
                for piece in chunk.chunks(4096) {
                    output.blocking_write_and_flush(piece).expect("write body");
                }
            }
            eprintln!("echo: streamed {chunks} chunks");
        }
        let incoming: IncomingBody = request.consume().expect("request body");
        let input = incoming.stream().expect("request body stream");
        loop {
            match input.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    for piece in chunk.chunks(4096) {
                        output.blocking_write_and_flush(piece).expect("write body");
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => panic!("reading the body: {}", e.to_debug_string()),
            }
        }
        drop(input);
        IncomingBody::finish(incoming);
        drop(output);
        OutgoingBody::finish(body, None).expect("finish");
        std::hint::black_box(hog);
    }
}
