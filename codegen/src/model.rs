//! The service model: what the token emitters need, built from a [`prost_build::Service`] and
//! checked (names, types) before any token is emitted.

use std::collections::BTreeMap;

use proc_macro2::{Ident, TokenStream};
use prost_build::Comments;
use prost_types::FileDescriptorSet;
use quote::ToTokens;

use crate::error::Error;
use crate::naming::{self, RESERVED_CLIENT_METHODS};

/// What kind of call a method is; it decides the shape of the client method, the trait method
/// and the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MethodKind {
    /// One request, one response.
    Unary,
    /// A stream of requests, one response.
    ClientStreaming,
    /// One request, a stream of responses.
    ServerStreaming,
    /// Streams both ways.
    BidiStreaming,
}

impl MethodKind {
    fn from_flags(client_streaming: bool, server_streaming: bool) -> Self {
        match (client_streaming, server_streaming) {
            (false, false) => Self::Unary,
            (true, false) => Self::ClientStreaming,
            (false, true) => Self::ServerStreaming,
            (true, true) => Self::BidiStreaming,
        }
    }

    /// How the kind is named in generated docs, as an adjective: "a {describe} rpc".
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStreaming => "client-streaming",
            Self::ServerStreaming => "server-streaming",
            Self::BidiStreaming => "bidirectional-streaming",
        }
    }
}

/// Facts about the whole descriptor set that single services need.
#[derive(Debug, Default)]
pub(crate) struct Context {
    /// Protobuf paths (`.pkg.Type` or `.pkg`) mapped to Rust paths, as prost-build maps them.
    extern_paths: Vec<String>,
    /// Per package, the modules prost-build creates for messages with nested items, and the
    /// message each belongs to.
    message_modules: BTreeMap<String, BTreeMap<String, String>>,
}

impl Context {
    /// Collects what services need from `fds`, with the user's `extern_path` protobuf paths.
    pub(crate) fn new(fds: &FileDescriptorSet, extern_paths: impl IntoIterator<Item = String>) -> Self {
        let mut message_modules: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for file in &fds.file {
            let modules = message_modules.entry(file.package().to_owned()).or_default();
            for message in &file.message_type {
                let has_module = !message.enum_type.is_empty()
                    || message
                        .nested_type
                        .iter()
                        .any(|nested| !nested.options.as_ref().is_some_and(|o| o.map_entry()))
                    || message
                        .field
                        .iter()
                        .any(|field| field.oneof_index.is_some() && !field.proto3_optional());
                if has_module {
                    modules.insert(naming::message_module(message.name()), message.name().to_owned());
                }
            }
        }
        Self {
            // prost-build maps the well-known types to prost-types unless told otherwise.
            extern_paths: std::iter::once(".google.protobuf".to_owned()).chain(extern_paths).collect(),
            message_modules,
        }
    }

    /// Whether prost-build resolves `proto_type` (`.pkg.Type`) through an extern path, so its
    /// Rust path is absolute or crate-relative rather than relative to the package module.
    fn is_extern(&self, proto_type: &str) -> bool {
        self.extern_paths.iter().any(|path| {
            proto_type == path || (proto_type.starts_with(path.as_str()) && proto_type.as_bytes().get(path.len()) == Some(&b'.'))
        })
    }

    /// The message of `package` for which prost-build creates module `module`, if any.
    pub(crate) fn message_with_module(&self, package: &str, module: &str) -> Option<&str> {
        self.message_modules.get(package)?.get(module).map(String::as_str)
    }
}

/// A service, ready for the emitters.
#[derive(Debug)]
pub(crate) struct Service {
    /// `package.Service`, or `Service` in a file without package.
    pub(crate) full_name: String,
    /// Doc lines from the .proto.
    pub(crate) docs: Vec<String>,
    /// `option deprecated = true;` on the service.
    pub(crate) deprecated: bool,
    /// The server trait (`Foo`).
    pub(crate) trait_ident: Ident,
    /// The generic parameter of the server struct: `T`, or `S` for a service named `T`.
    pub(crate) server_param: Ident,
    /// `FooClient`.
    pub(crate) client_ident: Ident,
    /// `FooServer`.
    pub(crate) server_ident: Ident,
    /// `foo_client`.
    pub(crate) client_mod: Ident,
    /// `foo_server`.
    pub(crate) server_mod: Ident,
    /// `foo_methods`.
    pub(crate) methods_mod: Ident,
    /// Methods in .proto order.
    pub(crate) methods: Vec<Method>,
}

/// A method, ready for the emitters.
#[derive(Debug)]
pub(crate) struct Method {
    /// `/package.Service/Method`.
    pub(crate) full_name: String,
    /// FNV-1a of `full_name`.
    pub(crate) id: u32,
    /// Unary or which kind of streaming.
    pub(crate) kind: MethodKind,
    /// The Rust method name (`get_thing`), also the name of its module of constants.
    pub(crate) ident: Ident,
    /// The client method taking call options (`get_thing_with`).
    pub(crate) with_ident: Ident,
    /// The request type, as seen from the generated modules.
    pub(crate) input: TokenStream,
    /// The response type, as seen from the generated modules.
    pub(crate) output: TokenStream,
    /// Doc lines from the .proto.
    pub(crate) docs: Vec<String>,
    /// `option deprecated = true;` on the rpc.
    pub(crate) deprecated: bool,
    /// `option idempotency_level = IDEMPOTENT;` (or `NO_SIDE_EFFECTS`) on the rpc: calls say
    /// so in their `CallOptions`, so a balanced channel may retry and hedge them.
    pub(crate) idempotent: bool,
}

impl Service {
    /// Builds and checks the model of `service`.
    pub(crate) fn new(service: prost_build::Service, context: &Context) -> Result<Self, Error> {
        let full_name = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        let what = format!("service `{full_name}`");
        let snake = naming::snake(&service.name);
        let bare = naming::bare(&service.name);
        let mut methods = Vec::with_capacity(service.methods.len());
        for method in service.methods {
            methods.push(Method::new(method, &full_name, context)?);
        }
        check_method_names(&full_name, &methods)?;
        Ok(Self {
            docs: doc_lines(&service.comments),
            deprecated: service.options.deprecated(),
            trait_ident: naming::ident(&service.name, &what)?,
            server_param: naming::ident(if bare == "T" { "S" } else { "T" }, &what)?,
            client_ident: naming::ident(&format!("{bare}Client"), &what)?,
            server_ident: naming::ident(&format!("{bare}Server"), &what)?,
            client_mod: naming::ident(&format!("{snake}_client"), &what)?,
            server_mod: naming::ident(&format!("{snake}_server"), &what)?,
            methods_mod: naming::ident(&format!("{snake}_methods"), &what)?,
            full_name,
            methods,
        })
    }

    /// Whether anything generated for this service is deprecated.
    pub(crate) fn any_deprecated(&self) -> bool {
        self.deprecated || self.methods.iter().any(|m| m.deprecated)
    }

    /// The modules this service adds to its package module.
    pub(crate) fn modules(&self) -> [&Ident; 3] {
        [&self.client_mod, &self.server_mod, &self.methods_mod]
    }
}

impl Method {
    fn new(method: prost_build::Method, service: &str, context: &Context) -> Result<Self, Error> {
        let full_name = format!("/{service}/{}", method.proto_name);
        let what = format!("rpc `{full_name}`");
        // prost-build's snake name without its `r#` or keyword `_`: `move`, `self`, `get_thing`.
        let stem = naming::bare(&method.name).trim_end_matches('_');
        let name = if RESERVED_CLIENT_METHODS.contains(&stem) {
            format!("{stem}_")
        } else {
            stem.to_owned()
        };
        Ok(Self {
            id: naming::method_id(&full_name),
            kind: MethodKind::from_flags(method.client_streaming, method.server_streaming),
            ident: naming::ident(&name, &what)?,
            with_ident: naming::ident(&format!("{stem}_with"), &what)?,
            input: rust_type(&method.input_proto_type, &method.input_type, context, &what)?,
            output: rust_type(&method.output_proto_type, &method.output_type, context, &what)?,
            docs: doc_lines(&method.comments),
            deprecated: method.options.deprecated(),
            idempotent: !matches!(
                method.options.idempotency_level(),
                prost_types::method_options::IdempotencyLevel::IdempotencyUnknown
            ),
            full_name,
        })
    }
}

/// Fails if two rpcs of `service` get the same Rust method (`get`, `get_with`, or one rpc's
/// `x_with` equal to another's `x`), or an rpc takes a name every client has.
fn check_method_names(service: &str, methods: &[Method]) -> Result<(), Error> {
    let mut seen: BTreeMap<String, String> = RESERVED_CLIENT_METHODS
        .iter()
        .map(|name| ((*name).to_owned(), format!("the generated client's `{name}`")))
        .collect();
    for method in methods {
        for ident in [&method.ident, &method.with_ident] {
            let owner = format!("rpc `{}`", method.full_name);
            if let Some(first) = seen.insert(ident.to_string(), owner.clone()) {
                return Err(Error::NameClash {
                    rust_name: ident.to_string(),
                    scope: format!("the methods of service `{service}`"),
                    first,
                    second: owner,
                    at: String::new(),
                });
            }
        }
    }
    Ok(())
}

/// Fails if two methods of `fds` (all services of all files, streaming ones included, since one
/// server may serve them all) share a method id.
pub(crate) fn check_method_ids(fds: &FileDescriptorSet) -> Result<(), Error> {
    let mut ids: BTreeMap<u32, String> = BTreeMap::new();
    for file in &fds.file {
        for service in &file.service {
            for method in &service.method {
                let full_name = if file.package().is_empty() {
                    format!("/{}/{}", service.name(), method.name())
                } else {
                    format!("/{}.{}/{}", file.package(), service.name(), method.name())
                };
                let id = naming::method_id(&full_name);
                if let Some(first) = ids.insert(id, full_name.clone()) {
                    return Err(Error::MethodIdCollision {
                        id,
                        first,
                        second: full_name,
                        at: String::new(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The Rust type of a request or response as seen from a generated module, one level below the
/// package module: prost-build's relative paths get `super::`, extern and absolute ones not.
fn rust_type(proto_type: &str, rust: &str, context: &Context, what: &str) -> Result<TokenStream, Error> {
    let absolute = rust == "()" || rust.starts_with("::") || rust.starts_with("crate::") || context.is_extern(proto_type);
    let path = if absolute { rust.to_owned() } else { format!("super::{rust}") };
    match syn::parse_str::<syn::Type>(&path) {
        Ok(ty) => Ok(ty.into_token_stream()),
        Err(err) => Err(Error::InvalidRust {
            what: format!("the Rust type of `{proto_type}` in {what}"),
            text: path,
            reason: err.to_string(),
            fix: "check the extern_path given for it".to_owned(),
        }),
    }
}

/// Rustdoc lines from .proto comments: leading then trailing, with URLs and brackets escaped
/// so rustdoc neither links nor warns, and fences without a language marked `text` so they
/// are not run as doctests.
pub(crate) fn doc_lines(comments: &Comments) -> Vec<String> {
    let mut lines: Vec<&str> = comments.leading.iter().map(String::as_str).collect();
    if !lines.is_empty() && !comments.trailing.is_empty() {
        lines.push("");
    }
    lines.extend(comments.trailing.iter().map(String::as_str));
    while lines.last().is_some_and(|line| line.trim().is_empty()) {
        lines.pop();
    }
    let mut in_fence = false;
    lines
        .into_iter()
        .map(|line| {
            let trimmed = line.trim_start();
            let line = if trimmed.starts_with("```") {
                let opening = !in_fence;
                in_fence = !in_fence;
                if opening && trimmed.trim_end() == "```" {
                    format!("{}text", line.trim_end())
                } else {
                    line.to_owned()
                }
            } else if in_fence {
                line.to_owned()
            } else {
                escape_brackets(&escape_angles(&escape_urls(line)))
            };
            // `#[doc = " x"]` prints as `/// x`.
            if line.is_empty() || line.starts_with(' ') {
                line
            } else {
                format!(" {line}")
            }
        })
        .collect()
}

/// Wraps bare `http://` and `https://` URLs in `<>` so rustdoc renders them as links.
fn escape_urls(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 4);
    let mut rest = line;
    while let Some(start) = ["http://", "https://"].iter().filter_map(|scheme| rest.find(scheme)).min() {
        let (before, url_on) = rest.split_at(start);
        let len = url_on
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '>' | '"' | '\''))
            .unwrap_or(url_on.len());
        let (url, after) = url_on.split_at(len);
        let wrapped = before.ends_with('<') || before.ends_with('(');
        out.push_str(before);
        if wrapped {
            out.push_str(url);
        } else {
            out.push('<');
            out.push_str(url);
            out.push('>');
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Escapes `<` unless it opens a URL autolink, so `<package>` is text, not an HTML tag.
fn escape_angles(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 4);
    for (i, c) in line.char_indices() {
        let rest = &line[i..];
        if c == '<' && !rest.starts_with("<http://") && !rest.starts_with("<https://") {
            out.push_str("\\<");
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes `[` and `]` unless they form a Markdown link `[text](target)`, so rustdoc does not
/// read them as intra-doc links.
fn escape_brackets(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 4);
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < line.len() {
        let c = bytes[i];
        if c == b'[' {
            let link_end = line[i..]
                .find(']')
                .map(|close| i + close)
                .filter(|&close| bytes.get(close + 1) == Some(&b'('));
            if let Some(close) = link_end {
                out.push_str(&line[i..=close]);
                i = close + 1;
                continue;
            }
            out.push_str("\\[");
        } else if c == b']' {
            out.push_str("\\]");
        } else {
            // Copy one whole UTF-8 character.
            let len = line[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&line[i..i + len]);
            i += len;
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comments(leading: &[&str]) -> Comments {
        Comments {
            leading: leading.iter().map(|s| (*s).to_owned()).collect(),
            ..Comments::default()
        }
    }

    #[test]
    fn doc_lines_escape_urls_and_brackets() {
        let docs = doc_lines(&comments(&[" See https://grpc.io/docs and [this](https://x.y).", " A [b] c"]));
        assert_eq!(docs, [" See <https://grpc.io/docs> and [this](https://x.y).", " A \\[b\\] c"]);
    }

    #[test]
    fn doc_lines_escape_angle_brackets_but_not_autolinks() {
        let docs = doc_lines(&comments(&[" <package>.<type>, see https://a.b or <https://c.d>"]));
        assert_eq!(docs, [" \\<package>.\\<type>, see <https://a.b> or <https://c.d>"]);
    }

    #[test]
    fn doc_lines_mark_bare_fences_as_text() {
        let docs = doc_lines(&comments(&[" ```", " let x = [1];", " ```", " ```rust", " ```"]));
        assert_eq!(docs, [" ```text", " let x = [1];", " ```", " ```rust", " ```"]);
    }

    #[test]
    fn doc_lines_join_leading_and_trailing() {
        let comments = Comments {
            leading: vec![" Lead.".to_owned()],
            trailing: vec![" Trail.".to_owned()],
            ..Comments::default()
        };
        assert_eq!(doc_lines(&comments), [" Lead.", "", " Trail."]);
    }

    #[test]
    fn extern_paths_match_whole_segments() {
        let context = Context::new(&FileDescriptorSet::default(), [".acme.types".to_owned()]);
        assert!(context.is_extern(".google.protobuf.Empty"));
        assert!(context.is_extern(".acme.types"));
        assert!(context.is_extern(".acme.types.Money"));
        assert!(!context.is_extern(".acme.typesafe.Money"));
    }
}
