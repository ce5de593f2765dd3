//! The smallest HTTP function: answers every request with a greeting.

use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

wasi::http::proxy::export!(Hello);

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
            .expect("valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("body of a new response");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("stream of a new body");
        let greeting = format!("Hello from wasmlet! You asked for {path}\n");
        stream.blocking_write_and_flush(greeting.as_bytes()).expect("write");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish");
    }
}
