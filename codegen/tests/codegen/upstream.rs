//! Real-world protos, taken unmodified from the crates.io packages that ship them (with their
//! licences): gRPC health and reflection, and etcd's v3 API. `cargo metadata` on
//! `tests/upstream/Cargo.toml` (copied to a temporary directory) downloads the packages if needed
//! and says where they are; nothing of theirs is copied into this repository.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory of each package in `tests/upstream/Cargo.toml`, by package name.
fn upstream_packages() -> Vec<(String, PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream/Cargo.toml");
    std::fs::copy(&manifest, dir.path().join("Cargo.toml")).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "").unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(dir.path().join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json = String::from_utf8(output.stdout).unwrap();
    // Every `"manifest_path":"…/<name>-<version>/Cargo.toml"` names a package directory.
    json.split("\"manifest_path\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter_map(|path| {
            let dir = Path::new(path).parent()?.to_path_buf();
            let name = dir.file_name()?.to_str()?.rsplit_once('-')?.0.to_owned();
            Some((name, dir))
        })
        .collect()
}

fn package(packages: &[(String, PathBuf)], name: &str) -> PathBuf {
    packages
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, dir)| dir.clone())
        .unwrap_or_else(|| panic!("package {name} not resolved"))
}

fn generate(files: &[PathBuf], includes: &[PathBuf]) -> String {
    let out = tempfile::tempdir().unwrap();
    volley_codegen::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_protos(files, includes)
        .unwrap();
    let mut code = String::new();
    for entry in std::fs::read_dir(out.path()).unwrap() {
        code.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    code
}

#[test]
fn upstream_grpc_health_reflection_and_etcd_protos_generate_every_service() {
    let packages = upstream_packages();
    let health = package(&packages, "tonic-health").join("proto");
    let reflection = package(&packages, "tonic-reflection").join("proto");
    let etcd = package(&packages, "etcd-client").join("proto");

    let code = generate(&[health.join("health.proto")], &[health]);
    assert!(
        code.contains("pub struct HealthClient") && code.contains("fn watch("),
        "health: Check and the server-streaming Watch"
    );

    let code = generate(
        &[reflection.join("reflection_v1.proto"), reflection.join("reflection_v1alpha.proto")],
        &[reflection],
    );
    assert_eq!(code.matches("pub struct ServerReflectionClient").count(), 2, "v1 and v1alpha");
    assert!(code.contains("fn server_reflection_info("), "the bidirectional rpc");

    let files: Vec<PathBuf> = ["rpc.proto", "v3election.proto", "v3lock.proto"]
        .iter()
        .map(|f| etcd.join(f))
        .collect();
    let code = generate(&files, &[etcd]);
    for service in [
        "KvClient",
        "WatchClient",
        "LeaseClient",
        "ClusterClient",
        "MaintenanceClient",
        "AuthClient",
        "ElectionClient",
        "LockClient",
    ] {
        assert!(code.contains(&format!("pub struct {service}")), "etcd service {service}");
    }
}
