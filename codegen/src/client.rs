//! Client tokens: `pub mod foo_client { pub struct FooClient<C> }` with one async method per rpc.
//!
//! The generated client is generic over `volley::codegen::Caller`, so it runs over a `Client`
//! (one connection) or a `Channel` (reconnecting). Every path is fully qualified, so messages
//! named `Result`, `Status` or `Client` cannot shadow what the client uses.

use proc_macro2::TokenStream;
use quote::quote;

use crate::generator::{deprecated, docs, skipped_section};
use crate::model::{Method, MethodKind, Service};

/// The client module of `service`.
pub(crate) fn generate(service: &Service) -> TokenStream {
    let Service {
        client_ident,
        client_mod,
        full_name,
        ..
    } = service;
    let methods = service.methods.iter().map(|method| match method.kind {
        MethodKind::Unary => unary(service, method),
        // Streaming calls need runtime support first: they are listed in the docs instead.
        MethodKind::ClientStreaming | MethodKind::ServerStreaming | MethodKind::BidiStreaming => TokenStream::new(),
    });
    let mod_doc = format!(" Client for the `{full_name}` service.");
    let struct_docs = docs(
        service
            .docs
            .iter()
            .cloned()
            .chain(client_lines(service))
            .chain(skipped_section(service)),
    );
    let deprecated = deprecated(service.deprecated);
    let allow = service.any_deprecated().then(|| quote!(#![allow(deprecated)]));
    quote! {
        #[doc = #mod_doc]
        pub mod #client_mod {
            #allow

            #struct_docs
            #deprecated
            #[derive(::core::clone::Clone, ::core::fmt::Debug)]
            pub struct #client_ident<C = volley::codegen::Channel> {
                inner: C,
            }

            #[allow(clippy::wrong_self_convention)]
            impl<C: volley::codegen::Caller> #client_ident<C> {
                /// A client calling through `inner`: a `volley::Client` (one connection) or a
                /// `volley::Channel` (reconnecting).
                pub fn new(inner: C) -> Self {
                    Self { inner }
                }

                /// The connection or channel this client calls through.
                pub fn into_inner(self) -> C {
                    self.inner
                }

                #(#methods)*
            }
        }
    }
}

/// The lines after the service's own docs on the client struct.
fn client_lines(service: &Service) -> Vec<String> {
    let mut lines = Vec::new();
    if !service.docs.is_empty() {
        lines.push(String::new());
    }
    lines.push(format!(
        " Calls the `{}` service over a `volley::Client` or `volley::Channel`.",
        service.full_name
    ));
    lines
}

/// `get_thing` and `get_thing_with` for a unary method.
fn unary(service: &Service, method: &Method) -> TokenStream {
    let Method {
        ident,
        with_ident,
        input,
        output,
        ..
    } = method;
    let methods_mod = &service.methods_mod;
    let deprecated = deprecated(method.deprecated);
    let call_doc = format!(" Calls `{}` with default call options.", method.full_name);
    let with_doc = format!(" Calls `{}` with `options`: deadline, metadata, priority.", method.full_name);
    let plain_docs = docs(method.docs.iter().cloned().chain(separated(&method.docs, call_doc)));
    let with_docs = docs(method.docs.iter().cloned().chain(separated(&method.docs, with_doc)));
    quote! {
        #plain_docs
        #deprecated
        pub async fn #ident(
            &self,
            request: #input,
        ) -> ::core::result::Result<#output, volley::codegen::Status> {
            self.#with_ident(request, volley::codegen::CallOptions::new()).await
        }

        #with_docs
        #deprecated
        pub async fn #with_ident(
            &self,
            request: #input,
            options: volley::codegen::CallOptions,
        ) -> ::core::result::Result<#output, volley::codegen::Status> {
            volley::codegen::Caller::unary(
                &self.inner,
                super::#methods_mod::#ident::ID,
                &request,
                options,
            )
            .await
        }
    }
}

/// `line`, after an empty doc line when `docs` is not empty.
fn separated(docs: &[String], line: String) -> Vec<String> {
    if docs.is_empty() { vec![line] } else { vec![String::new(), line] }
}
