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
