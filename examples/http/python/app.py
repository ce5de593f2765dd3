"""A wasi:http function in Python, built by componentize-py (scripts/build-python-function):
a CPython runtime in one ~18 MB component, the kind of big component a real
toolchain makes. Answers every request with a greeting naming its path."""

from wit_world import exports
from wit_world.imports.types import Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam
from componentize_py_types import Ok


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = request.path_with_query() or "/"
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(f"Hello from Python! You asked for {path}\n".encode())
        OutgoingBody.finish(body, None)
