//! Helpers: paths of the test protos, and compiling into a temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `codegen/tests/protos`.
pub(crate) fn protos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/protos")
}

/// Every file in `dir`, by name, with its bytes.
pub(crate) fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        files.insert(
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read(entry.path()).unwrap(),
        );
    }
    files
}

/// Compiles `files` (relative to `tests/protos`) into a new temporary directory.
pub(crate) fn compile(
    builder: volley_codegen::Builder,
    files: &[&str],
) -> Result<(tempfile::TempDir, BTreeMap<String, Vec<u8>>), volley_codegen::Error> {
    let out = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = files.iter().map(|f| protos().join(f)).collect();
    builder
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&paths, &[protos()])?;
    let files = read_dir(out.path());
    Ok((out, files))
}

/// The generated file `name` as text.
pub(crate) fn text(files: &BTreeMap<String, Vec<u8>>, name: &str) -> String {
    let bytes = files
        .get(name)
        .unwrap_or_else(|| panic!("no {name} among {:?}", files.keys().collect::<Vec<_>>()));
    String::from_utf8(bytes.clone()).unwrap()
}

/// Every proto the build-check crate compiles, relative to `tests/protos`.
pub(crate) const HAZARDS: &[&str] = &[
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

/// [`HAZARDS`] compiled with `_includes.rs`, as the build-check crate compiles them.
pub(crate) fn compile_hazards(builder: volley_codegen::Builder) -> BTreeMap<String, Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    let paths: Vec<_> = HAZARDS.iter().map(|f| protos().join(f)).collect();
    builder
        .out_dir(out.path())
        .include_file("_includes.rs")
        .emit_rerun_if_changed(false)
        .compile_protos(&paths, &[protos(), protos().join("third_party")])
        .unwrap();
    read_dir(out.path())
}
