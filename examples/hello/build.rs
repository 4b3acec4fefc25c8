//! Generates the messages, `GreeterClient` and the `Greeter` trait from `proto/hello.proto`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    volley_codegen::compile_protos("proto/hello.proto")?;
    Ok(())
}
