//! Code generation needs no `protoc`: the hazard protos compile in a process whose `PATH` is an
//! empty directory and whose `PROTOC` points nowhere.
//!
//! Changing the environment of this process would need `unsafe` (`set_var`), so the test
//! runs its child half in a fresh copy of this test binary with that environment.

use std::process::Command;

use crate::common::compile;

/// Set in the child's environment; the child half runs only when it is.
const CHILD: &str = "VOLLEY_CODEGEN_NO_PROTOC_CHILD";

#[test]
fn codegen_works_with_an_empty_path_and_no_protoc() {
    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "no_protoc::child_compiles_without_protoc", "--ignored", "--nocapture"])
        .env_clear()
        .env("PATH", empty.path())
        .env("PROTOC", empty.path().join("protoc"))
        .env(CHILD, empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child did not run:\n{stdout}\n{stderr}");
}

#[test]
#[ignore = "the child half of codegen_works_with_an_empty_path_and_no_protoc"]
fn child_compiles_without_protoc() {
    let empty = std::env::var_os(CHILD).expect("run by codegen_works_with_an_empty_path_and_no_protoc");
    assert_eq!(std::env::var_os("PATH"), Some(empty.clone()));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "PATH is not empty");
    let (_dir, files) = compile(
        volley_codegen::configure(),
        &["snapshot/greeter.proto", "hazards/options.proto", "hazards/well_known.proto"],
    )
    .unwrap();
    assert!(files.contains_key("snapshot.greeter.rs"));
    assert!(files.contains_key("hazards.options.rs"));
}
