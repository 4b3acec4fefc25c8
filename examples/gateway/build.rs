//! Generates the gateway's messages and Volley stubs from `proto/`, with no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    volley_codegen::configure().compile_protos(&["proto/gateway.proto", "proto/journal.proto"], &["proto"])?;
    Ok(())
}
