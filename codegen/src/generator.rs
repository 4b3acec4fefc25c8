//! The [`prost_build::ServiceGenerator`]: turns each service into a model, checks it, and emits
//! its client, server and method-constant modules into prost-build's output for the package.
//!
//! `ServiceGenerator::generate` cannot fail, so the first error is kept in [`State`] and
//! returned by the builder once prost-build is done; nothing more is emitted after it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use crate::error::Error;
use crate::model::{Context, Service};
use crate::{client, server};

/// What the generator reports back to the builder.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The first error; generation stops at it.
    pub(crate) error: Option<Error>,
    /// Per package, the modules emitted so far and the service that owns each.
    modules: BTreeMap<String, BTreeMap<String, String>>,
}

/// Emits Volley stubs for prost-build.
#[derive(Debug)]
pub(crate) struct Generator {
    context: Context,
    state: Rc<RefCell<State>>,
}

impl Generator {
    /// A generator reporting into `state`.
    pub(crate) fn new(context: Context, state: Rc<RefCell<State>>) -> Self {
        Self { context, state }
    }

    fn try_generate(&self, service: prost_build::Service) -> Result<String, Error> {
        let package = service.package.clone();
        let service = Service::new(service, &self.context)?;
        self.claim_modules(&package, &service)?;
        let tokens = generate(&service);
        // prost-build re-parses its whole output and panics on a syntax error; check here so
        // a bug in the emitters is a typed error naming the service instead.
        if let Err(err) = syn::parse2::<syn::File>(tokens.clone()) {
            return Err(Error::InvalidRust {
                what: format!("the code generated for service `{}`", service.full_name),
                text: tokens.to_string(),
                reason: err.to_string(),
                fix: "this is a bug in volley-codegen; please report it with the .proto file".to_owned(),
            });
        }
        Ok(tokens.to_string())
    }

    /// Records the modules `service` adds to `package`, failing if prost-build or another
    /// service already uses one of the names.
    fn claim_modules(&self, package: &str, service: &Service) -> Result<(), Error> {
        let scope = if package.is_empty() {
            "the module of files without a package".to_owned()
        } else {
            format!("the module of package `{package}`")
        };
        let mut state = self.state.borrow_mut();
        let claimed = state.modules.entry(package.to_owned()).or_default();
        for module in service.modules() {
            let name = module.to_string();
            let owner = format!("service `{}`", service.full_name);
            if let Some(message) = self.context.message_with_module(package, &name) {
                return Err(Error::NameClash {
                    rust_name: name,
                    scope,
                    first: format!("the module of nested items of message `{message}`"),
                    second: owner,
                    at: String::new(),
                });
            }
            if let Some(first) = claimed.insert(name.clone(), owner.clone()) {
                return Err(Error::NameClash {
                    rust_name: name,
                    scope,
                    first,
                    second: owner,
                    at: String::new(),
                });
            }
        }
        Ok(())
    }
}

impl prost_build::ServiceGenerator for Generator {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        if self.state.borrow().error.is_some() {
            return;
        }
        match self.try_generate(service) {
            Ok(code) => buf.push_str(&code),
            Err(err) => self.state.borrow_mut().error = Some(err),
        }
    }
}

/// All tokens for one service.
fn generate(service: &Service) -> TokenStream {
    let client = client::generate(service);
    let server = server::generate(service);
    let methods = methods_module(service);
    quote! {
        #client
        #server
        #methods
    }
}

/// `pub mod foo_methods`: the full name and id of each generated method, and the service name.
fn methods_module(service: &Service) -> TokenStream {
    let full_name = &service.full_name;
    let methods_mod = &service.methods_mod;
    let mod_doc = format!(" Full names and wire ids of the `{full_name}` methods.");
    let methods = service.methods.iter().map(|method| {
        let ident = &method.ident;
        let name = &method.full_name;
        let mod_doc = format!(" `{name}`, a {} rpc.", method.kind.describe());
        let name_doc = format!(" The full name, `{name}`.");
        let id_doc = format!(" The wire id, `{:#010x}`: FNV-1a of [`NAME`].", method.id);
        quote! {
            #[doc = #mod_doc]
            pub mod #ident {
                #[doc = #name_doc]
                pub const NAME: &str = #name;
                #[doc = #id_doc]
                pub const ID: volley::codegen::MethodId = volley::codegen::MethodId::from_name(NAME);
            }
        }
    });
    quote! {
        #[doc = #mod_doc]
        pub mod #methods_mod {
            /// The service's full name.
            pub const SERVICE: &str = #full_name;

            #(#methods)*
        }
    }
}

/// `#[doc = ..]` attributes, one per line.
pub(crate) fn docs(lines: impl IntoIterator<Item = String>) -> TokenStream {
    let lines = lines.into_iter();
    quote!(#(#[doc = #lines])*)
}

/// `#[deprecated]` when `yes`.
pub(crate) fn deprecated(yes: bool) -> TokenStream {
    if yes { quote!(#[deprecated]) } else { TokenStream::new() }
}
