/* The runc side of the benchmarks: a static hello, the same output as the Wasm hello. */
#include <unistd.h>

int main(void) {
    static const char msg[] = "hello from wasmlet\n";
    return write(1, msg, sizeof msg - 1) == sizeof msg - 1 ? 0 : 1;
}
