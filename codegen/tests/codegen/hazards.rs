//! Hard inputs generate: keyword names, prelude-like message names, keyword packages, no
//! package, proto2, well-known types, custom options, every streaming kind, third-party protos,
//! and a service of 1000 methods. (The build-check crate compiles and runs this output.)

use std::time::{Duration, Instant};

use crate::common::{compile, compile_hazards, protos, text};

#[test]
fn hazard_protos_generate_one_file_per_package() {
    let files = compile_hazards(volley_codegen::configure());
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "_.rs",
            "_includes.rs",
            "google.r#type.rs",
            "grpc.health.v1.rs",
            "grpc.reflection.v1.rs",
            "hazards.alpha.rs",
            "hazards.beta.rs",
            "hazards.common.rs",
            "hazards.keywords.rs",
            "hazards.names.rs",
            "hazards.options.rs",
            "hazards.pricing.rs",
            "hazards.proto2.rs",
            "hazards.proto3_optional.rs",
            "hazards.r#type.r#match.rs",
            "hazards.streaming.rs",
            "hazards.well_known.rs",
        ]
    );
    let includes = text(&files, "_includes.rs");
    assert!(includes.contains("pub mod r#type {"), "{includes}");
    assert!(includes.contains("pub mod r#match {"), "{includes}");
}

#[test]
fn keywords_become_raw_identifiers_and_helper_names_get_an_underscore() {
    let files = compile_hazards(volley_codegen::configure());
    let code = text(&files, "hazards.keywords.rs");
    for expected in [
        "pub async fn r#move(",
        "pub async fn move_with(",
        "pub async fn r#return(",
        "pub async fn r#type(",
        "pub async fn r#match(",
        "pub async fn r#async(",
        "pub async fn self_(",
        "pub async fn self_with(",
        "pub async fn crate_(",
        "pub async fn new_(",
        "pub async fn new_with(",
        "pub async fn into_inner_(",
        "fn r#move(",
        "pub mod r#move {",
        r#"pub const NAME: &str = "/hazards.keywords.Keywords/move";"#,
        "Keywords::clone(&*inner, request)",
    ] {
        assert!(code.contains(expected), "missing {expected:?}");
    }
}

#[test]
fn files_without_package_use_service_slash_method_names() {
    let files = compile_hazards(volley_codegen::configure());
    let code = text(&files, "_.rs");
    assert!(code.contains(r#"pub const NAME: &str = "/Lonely/Ping";"#), "{code}");
    assert!(code.contains(r#"pub const SERVICE: &str = "Lonely";"#), "{code}");
}

#[test]
fn well_known_types_map_to_unit_and_prost_types() {
    let files = compile_hazards(volley_codegen::configure());
    let code = text(&files, "hazards.well_known.rs");
    assert!(code.contains("request: ()"), "{code}");
    assert!(code.contains("request: ::prost_types::Any"), "{code}");
    assert!(code.contains("::prost_types::Timestamp"), "{code}");
}

#[test]
fn types_from_other_packages_are_reached_through_super() {
    let files = compile_hazards(volley_codegen::configure());
    let code = text(&files, "hazards.r#type.r#match.rs");
    assert!(code.contains("super::super::super::super::google::r#type::LatLng"), "{code}");
}

#[test]
fn streaming_methods_are_generated_for_every_kind() {
    let files = compile_hazards(volley_codegen::configure());
    let code = text(&files, "hazards.streaming.rs");
    assert!(!code.contains("Skipped methods"), "{code}");
    for expected in [
        // Client: one request in, or a sender out; the stream types through volley::codegen.
        "pub async fn subscribe(\n            &self,\n            request: super::Tick,\n        )",
        "volley::codegen::Caller::server_streaming(",
        "pub async fn upload(\n            &self,\n        )",
        "pub async fn upload_with(\n            &self,\n            options: volley::codegen::CallOptions,\n        )",
        "volley::codegen::Caller::client_streaming(",
        "volley::codegen::Caller::bidi_streaming(",
        "volley::codegen::StreamSender<super::Tick>",
        "volley::codegen::Streaming<super::Tick>",
        // Server: the handler of each kind.
        "volley::codegen::ServerStreamingHandler::new(",
        "volley::codegen::ClientStreamingHandler::new(",
        "volley::codegen::BidiStreamingHandler::new(",
        "responses: volley::codegen::StreamSender<super::Tick>,",
        // Method constants for every kind.
        "pub mod subscribe {",
        "pub mod upload {",
        "pub mod chat {",
        "/// `/hazards.streaming.Mixed/Upload`, a client-streaming rpc.",
        // Keywords, client helpers, Empty and messages named like the stream types.
        "pub async fn r#move(",
        "pub async fn r#type(",
        "pub async fn new_(",
        "pub async fn new_with(",
        "volley::codegen::Streaming<super::StreamSender>",
        "volley::codegen::StreamSender<super::StreamSender>",
        "volley::codegen::StreamSender<()>",
        "#[deprecated]\n        pub async fn ping(",
        "#[deprecated]\n        fn ping(",
    ] {
        assert!(code.contains(expected), "missing {expected:?} in\n{code}");
    }
    let health = text(&files, "grpc.health.v1.rs");
    assert!(health.contains("pub async fn check("));
    assert!(health.contains("pub async fn watch("));
    assert!(health.contains("-> ::core::result::Result<\n            volley::codegen::Streaming<super::HealthCheckResponse>,"));
    let reflection = text(&files, "grpc.reflection.v1.rs");
    assert!(reflection.contains("pub async fn server_reflection_info("));
}

#[test]
fn deprecated_rpcs_and_services_are_marked() {
    let files = compile_hazards(volley_codegen::configure());
    let code = text(&files, "hazards.options.rs");
    assert!(code.contains("#[deprecated]\n        pub async fn sign_in_old("), "{code}");
    assert!(
        code.contains("#[deprecated]\n    #[derive(::core::clone::Clone, ::core::fmt::Debug)]\n    pub struct OldAuthClient"),
        "{code}"
    );
    assert!(code.contains("#[deprecated]\n    pub struct OldAuthServer"), "{code}");
    assert!(
        code.contains("#[deprecated]\n    #[allow(clippy::wrong_self_convention)]\n    pub trait OldAuth"),
        "{code}"
    );
    assert!(code.contains("#![allow(deprecated)]"), "{code}");
}

#[test]
fn rpcs_marked_idempotent_in_the_proto_say_so_in_their_call_options() {
    let files = compile_hazards(volley_codegen::configure());
    let code = text(&files, "hazards.options.rs");
    // `find` and `touch`, each with and without options; never `create` or the Auth rpcs.
    assert_eq!(code.matches(".idempotent(true)").count(), 4, "{code}");
    let create = &code[code.find("pub async fn create(").expect("create")..];
    let create = &create[..create.find("pub async fn create_with(").expect("create_with")];
    assert!(!create.contains("idempotent"), "{create}");
}

#[test]
fn a_4_mb_proto_with_1000_methods_generates_quickly() {
    let mut proto = String::from(
        "syntax = \"proto3\";\npackage big;\nmessage Req { string a = 1; }\n\
         message Resp { string b = 1; }\nservice Big {\n",
    );
    // About 4 MB of .proto: each method carries a long comment, as large API files do.
    let filler = "lorem ipsum dolor sit amet ".repeat(150);
    for i in 0..1000 {
        proto.push_str(&format!("  // Method number {i}. {filler}\n  rpc Method{i}(Req) returns (Resp);\n"));
    }
    assert!(proto.len() > 4_000_000, "{} bytes of .proto", proto.len());
    proto.push_str("}\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.proto"), proto).unwrap();
    let started = Instant::now();
    volley_codegen::configure()
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&[dir.path().join("big.proto")], &[dir.path()])
        .unwrap();
    let elapsed = started.elapsed();
    let code = std::fs::read_to_string(dir.path().join("big.rs")).unwrap();
    assert_eq!(code.matches("pub async fn method").count(), 2000);
    assert!(code.contains(r#""/big.Big/Method999""#));
    // Unoptimized, on a shared 2-core machine, this takes about a second; the bound only
    // catches a blow-up such as quadratic work per method.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    eprintln!("1000 methods: {elapsed:?}, {} bytes", code.len());
}

#[test]
fn the_simple_entry_point_uses_the_file_directory_as_include() {
    // `compile_protos` writes to OUT_DIR, which only build scripts have.
    let err = volley_codegen::compile_protos(protos().join("snapshot/greeter.proto")).unwrap_err();
    assert!(matches!(err, volley_codegen::Error::OutDirUnset), "{err}");
    let (_dir, files) = compile(volley_codegen::configure(), &["hazards/proto2.proto"]).unwrap();
    assert!(text(&files, "hazards.proto2.rs").contains("pub struct LegacyStoreClient"));
}
