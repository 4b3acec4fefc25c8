//! Server tokens: `pub mod foo_server { pub trait Foo; pub struct FooServer<T> }`.
//!
//! The trait's methods return `impl Future + Send`, so implementors write plain `async fn` and
//! the server calls them through `Arc<T>` without boxing. `FooServer` registers one
//! `UnaryHandler` per method with `volley::codegen::Routes`. Calls go through fully qualified
//! paths (`Foo::get_thing(&*inner, request)`), so rpcs named `clone` or `new` stay unambiguous.

use proc_macro2::TokenStream;
use quote::quote;

use crate::generator::{deprecated, docs, skipped_section};
use crate::model::{Method, MethodKind, Service};

/// The server module of `service`.
pub(crate) fn generate(service: &Service) -> TokenStream {
    let Service {
        trait_ident,
        server_ident,
        server_mod,
        server_param: t,
        full_name,
        ..
    } = service;
    let trait_methods = service.methods.iter().map(|method| match method.kind {
        MethodKind::Unary => unary_trait_method(method),
        // Streaming calls need runtime support first: they are listed in the docs instead.
        MethodKind::ClientStreaming | MethodKind::ServerStreaming | MethodKind::BidiStreaming => TokenStream::new(),
    });
    let mut routes: Vec<TokenStream> = service
        .methods
        .iter()
        .map(|method| match method.kind {
            MethodKind::Unary => unary_route(service, method),
            MethodKind::ClientStreaming | MethodKind::ServerStreaming | MethodKind::BidiStreaming => TokenStream::new(),
        })
        .collect();
    if service.unary().next().is_none() {
        // Nothing to register yet; keeps `routes` from being an unused variable.
        routes.push(quote!(let _ = routes;));
    }
    let mod_doc = format!(" Server side of the `{full_name}` service.");
    let trait_docs = docs(
        service
            .docs
            .iter()
            .cloned()
            .chain(trait_lines(service))
            .chain(skipped_section(service)),
    );
    let struct_doc = docs(
        [
            format!(" Serves a [`{trait_ident}`] implementation: pass it to"),
            " `volley::Server::builder().add_service(..)`.".to_owned(),
        ]
        .into_iter()
        .chain(skipped_section(service)),
    );
    let struct_name = server_ident.to_string();
    let deprecated = deprecated(service.deprecated);
    let allow = service.any_deprecated().then(|| quote!(#![allow(deprecated)]));
    quote! {
        #[doc = #mod_doc]
        pub mod #server_mod {
            #allow

            #trait_docs
            #deprecated
            // Method names come from the .proto: `into_x(&self)` is not a conversion here.
            #[allow(clippy::wrong_self_convention)]
            pub trait #trait_ident: ::core::marker::Send + ::core::marker::Sync + 'static {
                #(#trait_methods)*
            }

            #struct_doc
            #deprecated
            pub struct #server_ident<#t> {
                inner: volley::codegen::Arc<#t>,
            }

            impl<#t: #trait_ident> #server_ident<#t> {
                /// Serves `inner`.
                pub fn new(inner: #t) -> Self {
                    Self::from_arc(volley::codegen::Arc::new(inner))
                }

                /// Serves an implementation shared with other code.
                pub fn from_arc(inner: volley::codegen::Arc<#t>) -> Self {
                    Self { inner }
                }
            }

            impl<#t> ::core::clone::Clone for #server_ident<#t> {
                fn clone(&self) -> Self {
                    Self {
                        inner: volley::codegen::Arc::clone(&self.inner),
                    }
                }
            }

            impl<#t> ::core::fmt::Debug for #server_ident<#t> {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(#struct_name).finish_non_exhaustive()
                }
            }

            impl<#t: #trait_ident> volley::codegen::Service for #server_ident<#t> {
                fn register(self, routes: &mut volley::codegen::Routes) {
                    #(#routes)*
                }
            }
        }
    }
}

/// The lines after the service's own docs on the trait.
fn trait_lines(service: &Service) -> Vec<String> {
    let mut lines = Vec::new();
    if !service.docs.is_empty() {
        lines.push(String::new());
    }
    lines.push(format!(" Implement it and serve it with [`{}`].", service.server_ident));
    lines
}

/// The trait method of a unary rpc.
fn unary_trait_method(method: &Method) -> TokenStream {
    let Method {
        ident,
        input,
        output,
        full_name,
        ..
    } = method;
    let mut lines = method.docs.clone();
    if !lines.is_empty() {
        lines.push(String::new());
    }
    lines.push(format!(" Serves `{full_name}`."));
    let docs = docs(lines);
    let deprecated = deprecated(method.deprecated);
    quote! {
        #docs
        #deprecated
        fn #ident(
            &self,
            request: volley::codegen::Request<#input>,
        ) -> impl volley::codegen::Future<
            Output = ::core::result::Result<#output, volley::codegen::Status>,
        > + ::core::marker::Send;
    }
}

/// The registration of a unary rpc's handler.
fn unary_route(service: &Service, method: &Method) -> TokenStream {
    let Service {
        trait_ident, methods_mod, ..
    } = service;
    let Method { ident, input, .. } = method;
    quote! {
        {
            let inner = volley::codegen::Arc::clone(&self.inner);
            routes.add(
                super::#methods_mod::#ident::NAME,
                volley::codegen::UnaryHandler::new(
                    move |request: volley::codegen::Request<#input>| {
                        let inner = volley::codegen::Arc::clone(&inner);
                        async move { #trait_ident::#ident(&*inner, request).await }
                    },
                ),
            );
        }
    }
}
