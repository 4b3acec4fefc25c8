//! The method table of a server, and dispatch of accepted calls to it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::call::Accepted;
use super::load::{LoadReports, ServerLoad};
use super::{Handler, ServerCall};
use crate::driver::{AcceptedCall, Dispatch, Shared};
use crate::error::Error;
use crate::observe::{CallObserver, MethodSlot};
use crate::protocol::Answer;
use crate::status::Code;
use crate::wire::{Metadata, MethodId};

/// A method registered with a server.
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) handler: Arc<dyn Handler>,
    /// Where the method's metrics live (nothing without the `metrics` feature).
    pub(crate) slot: MethodSlot,
}

/// Hashes a method id for the route table. The id is already a hash of the method's name
/// (FNV-1a), so SipHash on every call (about 0.7 % of a pipelined call's CPU, `perf` of
/// `volley-bench --scenarios unary_64B_128`) buys nothing: one multiply spreads its bits over
/// the 64 the table uses. A peer choosing ids can make a lookup probe at most the few routes
/// registered: the table holds only the server's own methods.
#[derive(Default)]
struct MethodIdHasher(u64);

impl Hasher for MethodIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8 | u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type RouteMap = HashMap<MethodId, Route, BuildHasherDefault<MethodIdHasher>>;

/// Methods by id.
pub(crate) struct Router {
    routes: RouteMap,
    /// The server's calls in flight, for its load reports (`None`: reports are off).
    load: Option<ServerLoad>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.routes.values().map(|r| &r.name)).finish()
    }
}

/// Collects methods for a server; generated `FooServer` types add theirs through it.
#[derive(Default)]
pub struct Routes {
    pending: Vec<(String, Arc<dyn Handler>)>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.pending.iter().map(|(name, _)| name)).finish()
    }
}

impl Routes {
    /// Registers `handler` for the method with full name `name` (`/package.Service/Method`).
    pub fn add(&mut self, name: impl Into<String>, handler: impl Handler) {
        self.pending.push((name.into(), Arc::new(handler)));
    }

    /// Puts every handler inside the server's middleware, failing if middleware names a method
    /// that is not registered.
    pub(crate) fn wrap(&mut self, wraps: &super::wrap::HandlerWraps) -> Result<(), Error> {
        if wraps.is_empty() {
            return Ok(());
        }
        if let Some(unknown) = wraps.named_methods().find(|name| !self.pending.iter().any(|(n, _)| n == name)) {
            return Err(Error::Config(format!(
                "middleware was installed for method `{unknown}`, which is not registered; register the method first or fix its name"
            )));
        }
        for (name, handler) in &mut self.pending {
            *handler = wraps.apply(name, handler.clone());
        }
        Ok(())
    }

    /// Builds the table, failing on a duplicate method or a method-id collision.
    pub(crate) fn build(self) -> Result<Router, Error> {
        let mut routes = RouteMap::with_capacity_and_hasher(self.pending.len(), Default::default());
        for (name, handler) in self.pending {
            let id = MethodId::from_name(&name);
            if let Some(existing) = routes.get(&id) {
                return Err(if existing.name == name {
                    Error::DuplicateMethod(name)
                } else {
                    Error::MethodIdCollision {
                        id,
                        first: existing.name.clone(),
                        second: name,
                    }
                });
            }
            routes.insert(
                id,
                Route {
                    name,
                    handler,
                    slot: MethodSlot::OTHER,
                },
            );
        }
        Ok(Router { routes, load: None })
    }
}

impl Router {
    /// Calls in flight over every connection; `None` when the server does not count them
    /// (load reports off).
    pub(crate) fn calls_in_flight(&self) -> Option<usize> {
        self.load.as_ref().map(|load| load.in_flight())
    }

    /// Sets when the server reports its load ([`LoadReports`]).
    pub(crate) fn set_load_reports(&mut self, reports: LoadReports) {
        self.load = ServerLoad::new(reports);
    }

    /// Gives every route its own metrics slot.
    #[cfg(feature = "metrics")]
    pub(crate) fn register_metrics(&mut self, metrics: &crate::metrics::Metrics) {
        for route in self.routes.values_mut() {
            route.slot = metrics.register_server_method(&route.name);
        }
    }
}

/// A set of methods that registers itself with a server, as generated `FooServer` types do.
pub trait Service {
    /// Adds this service's methods.
    fn register(self, routes: &mut Routes);
}

impl Dispatch for Router {
    fn end_load(&self, stripe: u8) {
        if let Some(load) = &self.load {
            load.end(stripe);
        }
    }

    fn load_in_flight(&self) -> u32 {
        self.load
            .as_ref()
            .map_or(0, |load| u32::try_from(load.in_flight()).unwrap_or(u32::MAX))
    }

    fn dispatch(&self, shared: &Arc<Shared>, call: AcceptedCall) {
        let AcceptedCall {
            call_id,
            head,
            message,
            received_at,
        } = call;
        shared.stats.call_started();
        let Some(route) = self.routes.get(&head.method_id) else {
            let mut observer = CallObserver::server(
                shared.recorder(),
                &head.method_id,
                MethodSlot::OTHER,
                call_id,
                head.sent_at_ns,
                received_at,
            );
            let mut state = shared.lock_state();
            if state.proto.is_call_open(call_id) {
                let message = format!(
                    "method id {} is not served here; check the method name and that the service is registered",
                    head.method_id
                );
                let answer = Answer::Status {
                    code: Code::Unimplemented,
                    message: &message,
                    metadata: &Metadata::new(),
                };
                state.proto.send_answer::<()>(shared.queue.lock().batch(), call_id, answer);
            }
            drop(state);
            shared.stats.call_finished(Code::Unimplemented);
            observer.finish(shared.recorder(), Code::Unimplemented);
            return;
        };
        let observer = CallObserver::server(shared.recorder(), &route.name, route.slot, call_id, head.sent_at_ns, received_at);
        let load = self.load.as_ref().map(|load| load.start(&head.metadata, shared.identity.id()));
        let deadline = head.timeout.map(|timeout| received_at + timeout);
        let accepted = Accepted {
            call_id,
            method: head.method_id,
            deadline,
            metadata: head.metadata,
            priority: head.priority,
            message,
        };
        let call = ServerCall::new(shared.clone(), accepted, observer, load);
        if let Some(handle) = route.handler.call(call) {
            shared.register_handler(call_id, handle);
        }
    }
}
