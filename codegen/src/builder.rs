//! [`compile_protos`], [`configure`] and [`Builder`]: options in, then protox parses the
//! `.proto` files, prost-build writes the messages and the generator adds the services.

use std::cell::RefCell;
use std::env;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use prost_types::FileDescriptorSet;
use syn::parse::Parser;

use crate::error::{Error, ProtoError};
use crate::generator::{Generator, State};
use crate::model::{self, Context};
use crate::source::Locations;

/// Compiles one `.proto` file, with its directory as the include directory, into `OUT_DIR`.
///
/// Call it from `build.rs`; include the output with `volley::include_proto!("package")`.
/// For several files, include directories or prost-build options, use [`configure`].
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     volley_codegen::compile_protos("proto/orders.proto")?;
///     Ok(())
/// }
/// ```
pub fn compile_protos(proto: impl AsRef<Path>) -> Result<(), Error> {
    let proto = proto.as_ref();
    let include = proto.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    configure().compile_protos(&[proto], &[include])
}

/// A [`Builder`] with default options.
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     volley_codegen::configure()
///         .include_file("_includes.rs")
///         .bytes(["."])
///         .compile_protos(&["proto/a.proto", "proto/b.proto"], &["proto"])?;
///     Ok(())
/// }
/// ```
pub fn configure() -> Builder {
    Builder::new()
}

/// Options for code generation: where to write, and the prost-build options for messages.
///
/// The defaults write one file per protobuf package to `OUT_DIR`, as prost-build does.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(
///     dir.path().join("greeter.proto"),
///     r#"syntax = "proto3";
///        package greeter;
///        message Hello { string name = 1; }
///        service Greeter { rpc SayHello(Hello) returns (Hello); }"#,
/// )?;
/// volley_codegen::configure()
///     .out_dir(dir.path())
///     .compile_protos(&[dir.path().join("greeter.proto")], &[dir.path()])?;
/// let code = std::fs::read_to_string(dir.path().join("greeter.rs"))?;
/// assert!(code.contains("pub struct GreeterClient<C = volley::codegen::Channel>"));
/// assert!(code.contains("pub trait Greeter"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a Builder does nothing until compile_protos or compile_fds is called"]
pub struct Builder {
    out_dir: Option<PathBuf>,
    include_file: Option<PathBuf>,
    bytes: Vec<String>,
    btree_map: Vec<String>,
    type_attributes: Vec<(String, String)>,
    field_attributes: Vec<(String, String)>,
    extern_paths: Vec<(String, String)>,
    emit_rerun_if_changed: Option<bool>,
}

impl Builder {
    /// The defaults; the same as [`configure`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the generated files to `dir` instead of `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Also writes `path` (relative to the output directory), a file of nested `pub mod`s that
    /// includes every generated file, so one `include!` brings in all packages. Use it for
    /// packages whose names have keyword segments (`google.type` becomes `google::r#type`, in
    /// a file named `google.r#type.rs`).
    ///
    /// ```ignore
    /// // lib.rs, after configure().include_file("_includes.rs") in build.rs
    /// include!(concat!(env!("OUT_DIR"), "/_includes.rs"));
    /// ```
    pub fn include_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.include_file = Some(path.into());
        self
    }

    /// Generates `bytes::Bytes` instead of `Vec<u8>` for the `bytes` fields matching `paths`
    /// (prost-build paths: `"."` for all, `".pkg.Message.field"` for one).
    pub fn bytes<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.bytes.extend(paths.into_iter().map(|p| p.as_ref().to_owned()));
        self
    }

    /// Generates `BTreeMap` instead of `HashMap` for the `map` fields matching `paths`.
    pub fn btree_map<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.btree_map.extend(paths.into_iter().map(|p| p.as_ref().to_owned()));
        self
    }

    /// Adds `attribute` (such as `"#[derive(Eq, Hash)]"`) to the messages and enums matching
    /// `path`.
    pub fn type_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.type_attributes.push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Adds `attribute` to the fields matching `path`.
    pub fn field_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.field_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Uses the existing Rust type `rust_path` (absolute, like `::common::Money`) for the
    /// protobuf type or package `proto_path` (like `.common.Money`) instead of generating it.
    pub fn extern_path(mut self, proto_path: impl AsRef<str>, rust_path: impl AsRef<str>) -> Self {
        self.extern_paths
            .push((proto_path.as_ref().to_owned(), rust_path.as_ref().to_owned()));
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for the `.proto` files and include
    /// directories. The default is on inside a build script and off elsewhere.
    pub fn emit_rerun_if_changed(mut self, enabled: bool) -> Self {
        self.emit_rerun_if_changed = Some(enabled);
        self
    }

    /// Parses `protos` (searching imports in `includes`, in order) with protox and generates
    /// messages and services. Each file in `protos` must be inside one of `includes`.
    ///
    /// Errors name the file, line and column, and say what to fix. No `protoc` is needed.
    pub fn compile_protos(self, protos: &[impl AsRef<Path>], includes: &[impl AsRef<Path>]) -> Result<(), Error> {
        let includes: Vec<PathBuf> = includes.iter().map(|i| i.as_ref().to_owned()).collect();
        // protox takes a path on disk or a name inside an include directory; for a file that
        // is neither it reports "not in any include path", which hides the real problem.
        for proto in protos.iter().map(AsRef::as_ref) {
            if !proto.exists() && !includes.iter().any(|dir| dir.join(proto).exists()) {
                return Err(Error::ProtoNotFound {
                    path: proto.to_owned(),
                    cwd: env::current_dir().unwrap_or_default(),
                    includes,
                });
            }
        }
        let fds = protox::compile(protos, &includes).map_err(|err| ProtoError::new(err, &includes))?;
        if self.emit_rerun_if_changed.unwrap_or_else(in_build_script) {
            for path in protos.iter().map(AsRef::as_ref).chain(includes.iter().map(PathBuf::as_path)) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        self.compile_fds(fds)
    }

    /// Generates messages and services from a descriptor set made elsewhere, such as by
    /// `protox::compile` or `protoc --include_imports --include_source_info` (comments are
    /// copied to the generated items only when source info is present).
    ///
    /// ```
    /// use volley_codegen::prost_types::{
    ///     DescriptorProto, FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto,
    ///     ServiceDescriptorProto,
    /// };
    ///
    /// let file = FileDescriptorProto {
    ///     name: Some("ping.proto".into()),
    ///     package: Some("ping".into()),
    ///     syntax: Some("proto3".into()),
    ///     message_type: vec![DescriptorProto { name: Some("Ping".into()), ..Default::default() }],
    ///     service: vec![ServiceDescriptorProto {
    ///         name: Some("Pinger".into()),
    ///         method: vec![MethodDescriptorProto {
    ///             name: Some("Ping".into()),
    ///             input_type: Some(".ping.Ping".into()),
    ///             output_type: Some(".ping.Ping".into()),
    ///             ..Default::default()
    ///         }],
    ///         ..Default::default()
    ///     }],
    ///     ..Default::default()
    /// };
    /// let dir = tempfile::tempdir()?;
    /// volley_codegen::configure()
    ///     .out_dir(dir.path())
    ///     .compile_fds(FileDescriptorSet { file: vec![file] })?;
    /// let code = std::fs::read_to_string(dir.path().join("ping.rs"))?;
    /// assert!(code.contains(r#"pub const NAME: &str = "/ping.Pinger/Ping";"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compile_fds(self, fds: FileDescriptorSet) -> Result<(), Error> {
        if self.out_dir.is_none() && env::var_os("OUT_DIR").is_none() {
            return Err(Error::OutDirUnset);
        }
        self.check_rust()?;
        let locations = Locations::new(&fds);
        model::check_method_ids(&fds).map_err(|err| locations.annotate(err))?;
        let context = Context::new(&fds, self.extern_paths.iter().map(|(p, _)| p.clone()));
        let state = Rc::new(RefCell::new(State::default()));

        let mut config = prost_build::Config::new();
        if let Some(dir) = &self.out_dir {
            config.out_dir(dir);
        }
        if let Some(file) = &self.include_file {
            config.include_file(file);
        }
        config.bytes(&self.bytes).btree_map(&self.btree_map);
        for (path, attribute) in &self.type_attributes {
            config.type_attribute(path, attribute);
        }
        for (path, attribute) in &self.field_attributes {
            config.field_attribute(path, attribute);
        }
        for (proto, rust) in &self.extern_paths {
            config.extern_path(proto, rust);
        }
        config.service_generator(Box::new(Generator::new(context, state.clone())));
        config.compile_fds(fds).map_err(Error::Prost)?;
        drop(config);

        match state.take().error {
            Some(err) => Err(locations.annotate(err)),
            None => Ok(()),
        }
    }

    /// Checks the Rust snippets among the options, which prost-build would otherwise panic on.
    fn check_rust(&self) -> Result<(), Error> {
        let attributes = self
            .type_attributes
            .iter()
            .map(|a| ("type_attribute", a))
            .chain(self.field_attributes.iter().map(|a| ("field_attribute", a)));
        for (option, (path, attribute)) in attributes {
            if let Err(err) = syn::Attribute::parse_outer.parse_str(attribute) {
                return Err(Error::InvalidRust {
                    what: format!("the {option} for `{path}`"),
                    text: attribute.clone(),
                    reason: err.to_string(),
                    fix: "write whole attributes, like `#[derive(Eq, Hash)]`".to_owned(),
                });
            }
        }
        for (proto, rust) in &self.extern_paths {
            if let Err(err) = syn::parse_str::<syn::Type>(rust) {
                return Err(Error::InvalidRust {
                    what: format!("the extern_path for `{proto}`"),
                    text: rust.clone(),
                    reason: err.to_string(),
                    fix: "give a Rust type path, like `::common::Money`".to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// Whether this process is a Cargo build script (Cargo sets these only when running one).
fn in_build_script() -> bool {
    env::var_os("OUT_DIR").is_some() && env::var_os("TARGET").is_some()
}
