//! Generates code for the test protos with volley-codegen, as a user's `build.rs` would.

/// The hazard protos and third-party-shaped protos, relative to `../protos`.
const HAZARDS: &[&str] = &[
    "hazards/keywords.proto",
    "hazards/names.proto",
    "hazards/keyword_package.proto",
    "hazards/no_package.proto",
    "hazards/proto2.proto",
    "hazards/proto3_optional.proto",
    "hazards/well_known.proto",
    "hazards/store_alpha.proto",
    "hazards/store_beta.proto",
    "hazards/options.proto",
    "hazards/streaming.proto",
    "hazards/extern.proto",
    "third_party/grpc/health/v1/health.proto",
    "third_party/grpc/reflection/v1/reflection.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos: Vec<String> = HAZARDS.iter().map(|f| format!("../protos/{f}")).collect();
    volley_codegen::configure()
        .include_file("_hazards.rs")
        .bytes([".hazards.proto3_optional"])
        .btree_map([".hazards.proto3_optional"])
        .type_attribute(".hazards.names.Request", "#[derive(PartialOrd)]")
        .field_attribute(".hazards.names.Response.id", "#[doc(alias = \"identifier\")]")
        .extern_path(".hazards.common", "crate::common")
        .compile_protos(&protos, &["../protos", "../protos/third_party"])?;

    // A fully documented proto, through the simple entry point.
    volley_codegen::compile_protos("../protos/documented/orders.proto")?;
    Ok(())
}
