//! The generated code for `protos/snapshot/greeter.proto`, compared byte for byte with
//! `snapshots/snapshot.greeter.rs`. Run with `VOLLEY_BLESS=1` to rewrite the snapshot after an
//! intended change, and review the diff.

use std::path::Path;

use crate::common::{compile, compile_hazards, text};

const SNAPSHOT: &str = "tests/snapshots/snapshot.greeter.rs";

#[test]
fn generated_code_matches_the_snapshot() {
    let (_dir, files) = compile(volley_codegen::configure(), &["snapshot/greeter.proto"]).unwrap();
    let generated = text(&files, "snapshot.greeter.rs");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    if std::env::var_os("VOLLEY_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{SNAPSHOT}: {err}; run with VOLLEY_BLESS=1 to create it"));
    assert!(
        generated == expected,
        "the generated code differs from {SNAPSHOT}; if the change is intended, rerun with \
         VOLLEY_BLESS=1 and review the diff.\n--- generated ---\n{generated}"
    );
}

#[test]
fn the_same_input_twice_gives_the_same_bytes() {
    let builder = || volley_codegen::configure().bytes(["."]).btree_map(["."]);
    let first = compile_hazards(builder());
    let second = compile_hazards(builder());
    assert_eq!(first.keys().collect::<Vec<_>>(), second.keys().collect::<Vec<_>>());
    for (name, bytes) in &first {
        assert!(bytes == &second[name], "{name} differs between two runs");
    }
    let (_a, first) = compile(volley_codegen::configure(), &["snapshot/greeter.proto"]).unwrap();
    let (_b, second) = compile(volley_codegen::configure(), &["snapshot/greeter.proto"]).unwrap();
    assert_eq!(first, second);
}
