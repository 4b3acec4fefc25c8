//! Server tokens: `pub mod foo_server { pub trait Foo; pub struct FooServer<T> }`.
//!
//! The trait's methods return `impl Future + Send`, so implementors write plain `async fn` and
//! the server calls them through `Arc<T>` without boxing. `FooServer` registers one handler per
//! method with `volley::codegen::Routes`: a `UnaryHandler`, `ServerStreamingHandler`,
//! `ClientStreamingHandler` or `BidiStreamingHandler` by the rpc's kind. Calls go through fully
//! qualified paths (`Foo::get_thing(&*inner, request)`), so rpcs named `clone` or `new` stay
//! unambiguous.

use proc_macro2::TokenStream;
use quote::quote;

use crate::generator::{deprecated, docs};
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
    let trait_methods = service.methods.iter().map(trait_method);
    let mut routes: Vec<TokenStream> = service.methods.iter().map(|method| route(service, method)).collect();
    if service.methods.is_empty() {
        // A service without rpcs: keeps `routes` from being an unused variable.
        routes.push(quote!(let _ = routes;));
    }
    let mod_doc = format!(" Server side of the `{full_name}` service.");
    let trait_docs = docs(service.docs.iter().cloned().chain(trait_lines(service)));
    let struct_doc = docs([
        format!(" Serves a [`{trait_ident}`] implementation: pass it to"),
        " `volley::Server::builder().add_service(..)`.".to_owned(),
    ]);
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

/// The trait method of an rpc. Streaming requests arrive as a `Request<Streaming<Req>>`;
/// streaming responses go out through a `StreamSender<Resp>` argument, and the future then
/// yields only the call's status.
fn trait_method(method: &Method) -> TokenStream {
    let Method {
        ident,
        input,
        output,
        full_name,
        kind,
        ..
    } = method;
    let (request, responses, yields, usage): (_, _, _, &[&str]) = match kind {
        MethodKind::Unary => (
            quote!(#input),
            TokenStream::new(),
            quote!(volley::codegen::Response<#output>),
            &[
                " Answer with `Ok(reply.into())`, or `Ok(Response::new(reply).with_metadata(..))` to send",
                " head metadata or trailers with it.",
            ],
        ),
        MethodKind::ServerStreaming => (
            quote!(#input),
            quote!(responses: volley::codegen::StreamSender<#output>,),
            quote!(()),
            &[
                " Send the responses with `responses.send(..).await`; an `Err` from it means the call is over",
                " (the client cancelled or went away). The client's call returns when the handler first",
                " waits or sends, so subscribe to what you stream before your first `.await`. The call ends,",
                " with the returned status, when the future completes; `request.context().shutdown()`",
                " resolves when the server shuts down, so a long stream can end cleanly.",
            ],
        ),
        MethodKind::ClientStreaming => (
            quote!(volley::codegen::Streaming<#input>),
            TokenStream::new(),
            quote!(volley::codegen::Response<#output>),
            &[
                " Read the requests with `request.message().await` until it gives `Ok(None)`, then return",
                " the one response (`Ok(reply.into())`).",
            ],
        ),
        MethodKind::BidiStreaming => (
            quote!(volley::codegen::Streaming<#input>),
            quote!(responses: volley::codegen::StreamSender<#output>,),
            quote!(()),
            &[
                " Read the requests with `request.message().await` until it gives `Ok(None)`, and send",
                " responses with `responses.send(..).await`. The call ends, with the returned status, when",
                " the future completes. `request.context().shutdown()` resolves when the server shuts down.",
            ],
        ),
    };
    let mut lines = method.docs.clone();
    if !lines.is_empty() {
        lines.push(String::new());
    }
    lines.push(format!(" Serves `{full_name}`."));
    if !usage.is_empty() {
        lines.push(String::new());
        lines.extend(usage.iter().map(|line| (*line).to_owned()));
    }
    let docs = docs(lines);
    let deprecated = deprecated(method.deprecated);
    quote! {
        #docs
        #deprecated
        fn #ident(
            &self,
            request: volley::codegen::Request<#request>,
            #responses
        ) -> impl volley::codegen::Future<
            Output = ::core::result::Result<#yields, volley::codegen::Status>,
        > + ::core::marker::Send;
    }
}

/// The registration of an rpc's handler: a closure of the handler's shape that calls the trait
/// method on a clone of the shared implementation.
fn route(service: &Service, method: &Method) -> TokenStream {
    let Service {
        trait_ident, methods_mod, ..
    } = service;
    let Method {
        ident,
        input,
        output,
        kind,
        ..
    } = method;
    let (handler, params, args) = match kind {
        MethodKind::Unary => (
            quote!(UnaryHandler),
            quote!(request: volley::codegen::Request<#input>),
            quote!(request),
        ),
        MethodKind::ServerStreaming => (
            quote!(ServerStreamingHandler),
            quote!(request: volley::codegen::Request<#input>, responses: volley::codegen::StreamSender<#output>),
            quote!(request, responses),
        ),
        MethodKind::ClientStreaming => (
            quote!(ClientStreamingHandler),
            quote!(request: volley::codegen::Request<volley::codegen::Streaming<#input>>),
            quote!(request),
        ),
        MethodKind::BidiStreaming => (
            quote!(BidiStreamingHandler),
            quote!(
                request: volley::codegen::Request<volley::codegen::Streaming<#input>>,
                responses: volley::codegen::StreamSender<#output>
            ),
            quote!(request, responses),
        ),
    };
    quote! {
        {
            let inner = volley::codegen::Arc::clone(&self.inner);
            routes.add(
                super::#methods_mod::#ident::NAME,
                volley::codegen::#handler::new(
                    move |#params| {
                        let inner = volley::codegen::Arc::clone(&inner);
                        async move { #trait_ident::#ident(&*inner, #args).await }
                    },
                ),
            );
        }
    }
}
