fn main() {
    std::process::exit(wasmlet_shim::shim::main());
}
