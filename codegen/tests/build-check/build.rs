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

    upstream()?;
    Ok(())
}

/// Real-world protos, unmodified, from the crates.io packages that ship them (see
/// `../upstream/Cargo.toml`): gRPC health and reflection, and etcd's v3 API. `cargo metadata` says
/// where the packages are; their code is generated into `$OUT_DIR/upstream`.
fn upstream() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let resolve = out_dir.join("upstream-resolve");
    std::fs::create_dir_all(resolve.join("src"))?;
    std::fs::copy("../upstream/Cargo.toml", resolve.join("Cargo.toml"))?;
    std::fs::write(resolve.join("src/lib.rs"), "")?;
    println!("cargo:rerun-if-changed=../upstream/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(resolve.join("Cargo.toml"))
        .output()?;
    if !output.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    let json = String::from_utf8(output.stdout)?;
    let package = |name: &str| -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
        json.split("\"manifest_path\":\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(|path| {
                std::path::Path::new(path)
                    .parent()
                    .unwrap_or(std::path::Path::new(""))
                    .to_path_buf()
            })
            .find(|dir| {
                dir.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.rsplit_once('-'))
                    .is_some_and(|(n, _)| n == name)
            })
            .ok_or_else(|| format!("package {name} not resolved").into())
    };
    let health = package("tonic-health")?.join("proto");
    let reflection = package("tonic-reflection")?.join("proto");
    let etcd = package("etcd-client")?.join("proto");
    let target = out_dir.join("upstream");
    std::fs::create_dir_all(&target)?;
    volley_codegen::configure()
        .out_dir(&target)
        .include_file("_upstream.rs")
        .emit_rerun_if_changed(false)
        .compile_protos(
            &[
                health.join("health.proto"),
                reflection.join("reflection_v1.proto"),
                etcd.join("rpc.proto"),
                etcd.join("v3election.proto"),
                etcd.join("v3lock.proto"),
            ],
            &[health, reflection, etcd],
        )?;
    Ok(())
}
