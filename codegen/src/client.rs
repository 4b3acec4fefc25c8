//! Client tokens: `pub mod foo_client { pub struct FooClient<C> }` with two async methods per
//! rpc, one with default call options and one (`_with`) taking them.
//!
//! The generated client is generic over `volley::codegen::Caller`, so it runs over a `Client`
//! (one connection) or a `Channel` (reconnecting). Every path is fully qualified, so messages
//! named `Result`, `Status`, `Client` or `Streaming` cannot shadow what the client uses.

use proc_macro2::TokenStream;
use quote::quote;

use crate::generator::{deprecated, docs};
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
        MethodKind::ServerStreaming => server_streaming(service, method),
        MethodKind::ClientStreaming | MethodKind::BidiStreaming => request_stream(service, method),
    });
    let mod_doc = format!(" Client for the `{full_name}` service.");
    let struct_docs = docs(service.docs.iter().cloned().chain(client_lines(service)));
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
                timeout: ::core::option::Option<volley::codegen::Duration>,
            }

            impl #client_ident<volley::codegen::Channel> {
                /// Connects to `address` (`"127.0.0.1:7000"`, `"unix:/run/app.sock"`) through a
                /// `volley::Channel`: when the server closes the connection (its idle timeout, a
                /// restart) the next call opens a new one, so the client lives as long as you keep
                /// it. Fails if the first connection cannot be made.
                pub async fn connect(
                    address: impl volley::codegen::ToAddress,
                ) -> ::core::result::Result<Self, volley::codegen::Error> {
                    ::core::result::Result::Ok(Self::new(volley::codegen::Channel::builder().connect(address).await?))
                }
            }

            #[allow(clippy::wrong_self_convention)]
            impl<C: volley::codegen::Caller> #client_ident<C> {
                /// A client calling through `inner`: a `volley::Channel` (reconnecting) or a
                /// `volley::Client` (one connection, which ends when the server closes it).
                pub fn new(inner: C) -> Self {
                    Self { inner, timeout: ::core::option::Option::None }
                }

                /// The timeout of every call that sets no deadline of its own in its
                /// `CallOptions`.
                #[must_use]
                pub fn timeout(mut self, timeout: volley::codegen::Duration) -> Self {
                    self.timeout = ::core::option::Option::Some(timeout);
                    self
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
        " Calls the `{}` service. `connect(address)` gives one over a reconnecting",
        service.full_name
    ));
    lines.push(" `volley::Channel`; `new(..)` takes any `volley::Channel` or `volley::Client`.".to_owned());
    lines
}

/// `get_thing` and `get_thing_with` for a unary method.
fn unary(service: &Service, method: &Method) -> TokenStream {
    let Method {
        ident,
        with_ident,
        input,
        output,
        full_name,
        ..
    } = method;
    let methods_mod = &service.methods_mod;
    let deprecated = deprecated(method.deprecated);
    // An rpc the .proto marks idempotent says so in every call's options.
    let idempotent = method.idempotent.then(|| quote!(.idempotent(true)));
    let plain_docs = method_docs(method, format!(" Calls `{full_name}` with default call options."), &[]);
    let with_docs = method_docs(
        method,
        format!(" Calls `{full_name}` with `options` (deadline, metadata, priority); the response carries"),
        &[],
    );
    let with_docs = quote! {
        #with_docs
        #[doc = " the head metadata and trailers the server sent."]
    };
    quote! {
        #plain_docs
        #deprecated
        pub async fn #ident(
            &self,
            request: #input,
        ) -> ::core::result::Result<#output, volley::codegen::Status> {
            volley::codegen::Caller::unary(
                &self.inner,
                super::#methods_mod::#ident::ID,
                &request,
                volley::codegen::CallOptions::new()#idempotent.timeout_if_unset(self.timeout),
            )
            .await
        }

        #with_docs
        #deprecated
        pub async fn #with_ident(
            &self,
            request: #input,
            options: volley::codegen::CallOptions,
        ) -> ::core::result::Result<volley::codegen::Response<#output>, volley::codegen::Status> {
            volley::codegen::Caller::unary_response(
                &self.inner,
                super::#methods_mod::#ident::ID,
                &request,
                options #idempotent .timeout_if_unset(self.timeout),
            )
            .await
        }
    }
}

/// `watch` and `watch_with` for a server-streaming method: one request in, a `Streaming` of
/// responses out.
fn server_streaming(service: &Service, method: &Method) -> TokenStream {
    let Method {
        ident,
        with_ident,
        input,
        output,
        full_name,
        ..
    } = method;
    let methods_mod = &service.methods_mod;
    let deprecated = deprecated(method.deprecated);
    let usage = [
        " Returns once the server's handler has taken the call (what it set up before its first wait",
        " is in place). Read the responses with `message().await` until it gives `Ok(None)`; an `Err`",
        " is the call's status. Dropping the stream cancels the call.",
    ];
    let plain_docs = method_docs(
        method,
        format!(" Calls `{full_name}` with default call options and returns the stream of responses."),
        &usage,
    );
    let with_docs = method_docs(
        method,
        format!(" Calls `{full_name}` with `options`: deadline (covering the whole stream), metadata, priority."),
        &usage,
    );
    quote! {
        #plain_docs
        #deprecated
        pub async fn #ident(
            &self,
            request: #input,
        ) -> ::core::result::Result<volley::codegen::Streaming<#output>, volley::codegen::Status> {
            self.#with_ident(request, volley::codegen::CallOptions::new()).await
        }

        #with_docs
        #deprecated
        pub async fn #with_ident(
            &self,
            request: #input,
            options: volley::codegen::CallOptions,
        ) -> ::core::result::Result<volley::codegen::Streaming<#output>, volley::codegen::Status> {
            volley::codegen::Caller::server_streaming(
                &self.inner,
                super::#methods_mod::#ident::ID,
                &request,
                options.timeout_if_unset(self.timeout),
            )
            .await
        }
    }
}

/// `upload` and `upload_with` for a client-streaming method, or `chat` and `chat_with` for a
/// bidirectional one: both open the call and return a `StreamSender` for the requests and a
/// `Streaming` for the response or responses.
fn request_stream(service: &Service, method: &Method) -> TokenStream {
    let Method {
        ident,
        with_ident,
        input,
        output,
        full_name,
        ..
    } = method;
    let methods_mod = &service.methods_mod;
    let deprecated = deprecated(method.deprecated);
    let (caller_fn, returns, usage) = if method.kind == MethodKind::ClientStreaming {
        (
            quote!(client_streaming),
            quote!(volley::codegen::ClientStreamingCall<#input, #output>),
            [
                " Send the requests with `send(..).await` on the returned call, then `finish().await` it:",
                " that closes the request stream and returns the one response. Dropping the call",
                " unfinished cancels it.",
            ],
        )
    } else {
        (
            quote!(bidi_streaming),
            quote!((volley::codegen::StreamSender<#input>, volley::codegen::Streaming<#output>)),
            [
                " Send requests with the returned `StreamSender`; `close()` (or dropping it) ends them.",
                " Read responses from the returned `Streaming` with `message().await` until it gives",
                " `Ok(None)`; an `Err` is the call's status. Dropping the `Streaming` cancels the call.",
            ],
        )
    };
    let plain_docs = method_docs(method, format!(" Starts `{full_name}` with default call options."), &usage);
    let with_docs = method_docs(
        method,
        format!(" Starts `{full_name}` with `options`: deadline (covering the whole call), metadata, priority."),
        &usage,
    );
    quote! {
        #plain_docs
        #deprecated
        pub async fn #ident(
            &self,
        ) -> ::core::result::Result<#returns, volley::codegen::Status> {
            self.#with_ident(volley::codegen::CallOptions::new()).await
        }

        #with_docs
        #deprecated
        pub async fn #with_ident(
            &self,
            options: volley::codegen::CallOptions,
        ) -> ::core::result::Result<#returns, volley::codegen::Status> {
            volley::codegen::Caller::#caller_fn(
                &self.inner,
                super::#methods_mod::#ident::ID,
                options.timeout_if_unset(self.timeout),
            )
            .await
        }
    }
}

/// The docs of a client method: the rpc's own docs, then `lead`, then the `usage` paragraph.
fn method_docs(method: &Method, lead: String, usage: &[&str]) -> TokenStream {
    let mut lines = method.docs.clone();
    if !lines.is_empty() {
        lines.push(String::new());
    }
    lines.push(lead);
    if !usage.is_empty() {
        lines.push(String::new());
        lines.extend(usage.iter().map(|line| (*line).to_owned()));
    }
    docs(lines)
}
