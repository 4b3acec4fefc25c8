//! Failures: each is a typed error whose message names the file, the place and the fix, and
//! none panics.

use volley_codegen::Error;

use crate::common::{compile, protos};

fn compile_err(builder: volley_codegen::Builder, file: &str) -> Error {
    match compile(builder, &[file]) {
        Ok(_) => panic!("{file} compiled"),
        Err(err) => err,
    }
}

/// The error for `file`, which must be a `.proto` error at `line`:`column`.
fn proto_err(file: &str, line: usize, column: usize) -> String {
    let err = compile_err(volley_codegen::configure(), file);
    let Error::Proto(proto) = &err else {
        panic!("{file}: not a .proto error: {err:?}");
    };
    assert_eq!(proto.file(), Some(protos().join(file).as_path()), "{err}");
    assert_eq!((proto.line(), proto.column()), (Some(line), Some(column)), "{err}");
    let message = err.to_string();
    let location = format!("{}:{line}:{column}: ", protos().join(file).display());
    assert!(message.starts_with(&location), "{message}");
    assert!(message.contains("\n  help: "), "{message}");
    message
}

#[test]
fn syntax_error_names_file_line_column_and_the_fix() {
    let message = proto_err("errors/syntax.proto", 7, 1);
    assert!(message.contains("expected ';'"), "{message}");
    assert!(message.contains("    7 | }"), "{message}");
    assert!(message.contains("fix the syntax"), "{message}");
}

#[test]
fn unresolved_import_names_the_import_and_the_include_directories() {
    let message = proto_err("errors/bad_import.proto", 5, 1);
    assert!(message.contains("import 'does/not/exist.proto' not found"), "{message}");
    assert!(message.contains("    5 | import \"does/not/exist.proto\";"), "{message}");
    assert!(message.contains("include directories"), "{message}");
    assert!(message.contains(&protos().display().to_string()), "{message}");
}

#[test]
fn undefined_type_points_at_its_use() {
    let message = proto_err("errors/unknown_type.proto", 6, 3);
    assert!(message.contains("name 'Money' is not defined"), "{message}");
    assert!(message.contains("    6 |   Money price = 1;"), "{message}");
    assert!(message.contains("define or import"), "{message}");
}

#[test]
fn duplicate_definition_points_at_the_second_one() {
    let message = proto_err("errors/duplicate.proto", 9, 9);
    assert!(message.contains("defined twice"), "{message}");
    assert!(message.contains("    9 | service Order {"), "{message}");
}

#[test]
fn missing_file_is_named_with_where_it_was_looked_for() {
    let err = compile_err(volley_codegen::configure(), "errors/missing.proto");
    assert!(matches!(err, Error::ProtoNotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("missing.proto` not found"), "{message}");
    assert!(message.contains("check the path"), "{message}");
}

#[test]
fn file_outside_the_include_directories_is_a_proto_error() {
    let out = tempfile::tempdir().unwrap();
    let err = volley_codegen::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&[protos().join("hazards/common.proto")], &[protos().join("errors")])
        .unwrap_err();
    assert!(matches!(err, Error::Proto(_)), "{err:?}");
    assert!(err.to_string().contains("not in any include path"), "{err}");
    assert!(err.to_string().contains("help: "), "{err}");
}

#[test]
fn method_id_collision_names_both_methods() {
    let err = compile_err(volley_codegen::configure(), "errors/collision.proto");
    match &err {
        Error::MethodIdCollision { id, first, second, at } => {
            assert_eq!(*id, 0x82af_7c42);
            assert_eq!(first, "/collide.Clash/M329599");
            assert_eq!(second, "/collide.Clash/M532382");
            assert!(at.contains("collision.proto:9 and ") && at.ends_with("collision.proto:10)"), "{at}");
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("0x82af7c42"), "{message}");
    assert!(message.contains("rename one of them"), "{message}");
}

#[test]
fn rpcs_differing_in_case_are_a_name_clash() {
    let err = compile_err(volley_codegen::configure(), "errors/rpc_case_clash.proto");
    let Error::NameClash {
        rust_name, first, second, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(rust_name, "get");
    assert!(first.contains("/errors.rpc_case.Store/Get"), "{err}");
    assert!(second.contains("/errors.rpc_case.Store/get"), "{err}");
    // The message names where both rpcs are declared.
    assert!(err.to_string().contains("rpc_case_clash.proto:9 and "), "{err}");
}

#[test]
fn an_rpc_named_like_another_rpcs_with_variant_is_a_name_clash() {
    let err = compile_err(volley_codegen::configure(), "errors/with_clash.proto");
    assert!(
        matches!(&err, Error::NameClash { rust_name, .. } if rust_name == "get_with"),
        "{err:?}"
    );
}

#[test]
fn a_message_module_named_like_a_generated_module_is_a_name_clash() {
    let err = compile_err(volley_codegen::configure(), "errors/module_clash.proto");
    assert!(
        matches!(&err, Error::NameClash { rust_name, .. } if rust_name == "store_client"),
        "{err:?}"
    );
    assert!(err.to_string().contains("message `StoreClient`"), "{err}");
}

#[test]
fn invalid_attribute_is_an_error_not_a_panic() {
    let builder = volley_codegen::configure().type_attribute(".", "#[derive(Eq");
    let err = compile_err(builder, "hazards/common.proto");
    assert!(matches!(err, Error::InvalidRust { .. }), "{err:?}");
    assert!(err.to_string().contains("type_attribute for `.`"), "{err}");

    let builder = volley_codegen::configure().field_attribute(".hazards", "derive(Eq)");
    let err = compile_err(builder, "hazards/common.proto");
    assert!(err.to_string().contains("write whole attributes"), "{err}");
}

#[test]
fn invalid_extern_path_is_an_error_not_a_panic() {
    let builder = volley_codegen::configure().extern_path(".hazards.common", "::a::<");
    let err = compile_err(builder, "hazards/extern.proto");
    assert!(matches!(err, Error::InvalidRust { .. }), "{err:?}");

    // prost-build rejects protobuf paths that are not fully qualified.
    let builder = volley_codegen::configure().extern_path("hazards.common", "::common");
    let err = compile_err(builder, "hazards/extern.proto");
    assert!(matches!(err, Error::Prost(_)), "{err:?}");
}

/// What `fn main() -> Result<(), Box<dyn Error>>` in a `build.rs` prints for `err`: `Debug` of
/// the box.
fn as_build_rs_prints(err: Error) -> String {
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    format!("Error: {boxed:?}")
}

#[test]
fn a_build_rs_returning_a_proto_error_prints_file_line_and_the_fix_not_a_struct() {
    for (file, line, column) in [("errors/syntax.proto", 7, 1), ("errors/unknown_type.proto", 6, 3)] {
        let err = compile_err(volley_codegen::configure(), file);
        let display = err.to_string();
        let printed = as_build_rs_prints(err);
        let location = format!("{}:{line}:{column}: ", protos().join(file).display());
        assert!(printed.starts_with(&format!("Error: {location}")), "{printed}");
        assert!(printed.contains("\n  help: "), "{printed}");
        assert_eq!(printed, format!("Error: {display}"));
        for field in ["ProtoError {", "Proto(", "position: Some", "snippet: Some"] {
            assert!(!printed.contains(field), "{field} in {printed}");
        }
    }
}

#[test]
fn a_build_rs_returning_any_other_error_prints_its_message_not_a_struct() {
    let err = compile_err(volley_codegen::configure(), "errors/collision.proto");
    let display = err.to_string();
    let printed = as_build_rs_prints(err);
    assert_eq!(printed, format!("Error: {display}"));
    assert!(printed.contains("rename one of them"), "{printed}");
    assert!(!printed.contains("MethodIdCollision {"), "{printed}");

    let err = compile_err(volley_codegen::configure(), "errors/missing.proto");
    let printed = as_build_rs_prints(err);
    assert!(printed.contains("missing.proto` not found"), "{printed}");
    assert!(!printed.contains("ProtoNotFound {"), "{printed}");
}

#[test]
fn errors_are_send_sync_and_static() {
    fn check<E: std::error::Error + Send + Sync + 'static>() {}
    check::<Error>();
}

#[test]
fn a_descriptor_with_a_non_ascii_rpc_name_is_an_error_not_a_panic() {
    use volley_codegen::prost_types::{
        DescriptorProto, FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
    };
    let file = FileDescriptorProto {
        name: Some("odd.proto".into()),
        package: Some("odd".into()),
        syntax: Some("proto3".into()),
        message_type: vec![DescriptorProto {
            name: Some("M".into()),
            ..Default::default()
        }],
        service: vec![ServiceDescriptorProto {
            name: Some("S".into()),
            method: vec![MethodDescriptorProto {
                name: Some("Naïve".into()),
                input_type: Some(".odd.M".into()),
                output_type: Some(".odd.M".into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let out = tempfile::tempdir().unwrap();
    let err = volley_codegen::configure()
        .out_dir(out.path())
        .compile_fds(FileDescriptorSet { file: vec![file] })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidIdentifier { .. }), "{err:?}");
    assert!(err.to_string().contains("/odd.S/Naïve"), "{err}");
}
