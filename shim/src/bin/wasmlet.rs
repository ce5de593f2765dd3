fn main() {
    std::process::exit(wasmlet_shim::cli::main());
}
