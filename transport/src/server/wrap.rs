//! Middleware around a server's handlers: what [`super::ServerBuilder::interceptor`] and the
//! tower layers install, applied to each route's handler when the server is built. A server
//! with none keeps its handlers as registered, so its call path is unchanged.

use std::sync::Arc;

use super::Handler;

/// Wraps one route's handler (given the method's full name) in middleware.
type WrapFn = dyn Fn(&Arc<str>, Arc<dyn Handler>) -> Arc<dyn Handler> + Send + Sync;

/// One piece of middleware, for every method or for one.
struct Wrap {
    /// The method it applies to; `None`: all of them.
    only: Option<String>,
    wrap: Box<WrapFn>,
}

/// The middleware of a server, in the order it was installed: the first installed runs first.
#[derive(Default)]
pub(crate) struct HandlerWraps {
    wraps: Vec<Wrap>,
}

impl std::fmt::Debug for HandlerWraps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.wraps.iter().map(|w| w.only.as_deref().unwrap_or("*")))
            .finish()
    }
}

impl HandlerWraps {
    /// Adds middleware for every method (`only: None`) or for the method named `only`.
    pub(crate) fn push(
        &mut self,
        only: Option<String>,
        wrap: impl Fn(&Arc<str>, Arc<dyn Handler>) -> Arc<dyn Handler> + Send + Sync + 'static,
    ) {
        self.wraps.push(Wrap {
            only,
            wrap: Box::new(wrap),
        });
    }

    /// Whether no middleware is installed.
    pub(crate) fn is_empty(&self) -> bool {
        self.wraps.is_empty()
    }

    /// The methods middleware was installed for by name.
    pub(crate) fn named_methods(&self) -> impl Iterator<Item = &str> {
        self.wraps.iter().filter_map(|w| w.only.as_deref())
    }

    /// `handler` of method `name` inside its middleware: the last installed innermost, so the
    /// first installed sees the call first.
    pub(crate) fn apply(&self, name: &str, mut handler: Arc<dyn Handler>) -> Arc<dyn Handler> {
        let name: Arc<str> = Arc::from(name);
        for wrap in self.wraps.iter().rev() {
            if wrap.only.as_deref().is_none_or(|only| only == &*name) {
                handler = (wrap.wrap)(&name, handler);
            }
        }
        handler
    }
}
