//! The client's busy-poll options: [`ClientBuilder::busy_poll`], and [`Client::spin_on`], where
//! the caller's own thread reads its connection while it waits.

use std::future::Future;

use super::{Client, ClientBuilder};
use crate::busy_poll::spin::spin_on_with;
use crate::busy_poll::{BusyPoll, IdleStrategy};
use crate::driver::Polled;

impl ClientBuilder {
    /// Reads the connection with a dedicated busy-polling thread instead of the reader task
    /// (default: off): a response is decoded and handed to its call as soon as it arrives,
    /// without the reactor waking a thread. The thread ends with the connection. To avoid the
    /// hand-over from that thread to the caller too, run calls in [`Client::spin_on`]. See
    /// [`crate::busy_poll`] and `docs/latency.md`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use volley::busy_poll::{BusyPoll, IdleStrategy};
    /// use volley::{CallOptions, Client};
    ///
    /// let client = Client::builder()
    ///     .busy_poll(BusyPoll::new(IdleStrategy::default()).pin_to_cpu(0))
    ///     .connect("127.0.0.1:7000")
    ///     .await?;
    /// let reply: String = client.unary("/echo.Echo/Say", &"hi".to_owned(), CallOptions::default()).await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn busy_poll(mut self, busy_poll: BusyPoll) -> Self {
        self.config.busy_poll = Some(busy_poll);
        self
    }
}

impl Client {
    /// Runs `future` (typically one of this client's calls) on the calling thread until it
    /// completes, like [`crate::busy_poll::spin_on`], and while it waits, reads this client's
    /// connection itself when it is in the busy-poll mode: the thread that waits for the
    /// response is the one that reads it, so no thread hands the outcome to another. The
    /// connection's poller thread reads whenever no caller does (a `SpinThenPark` poller keeps
    /// out of the way while callers spin). Without the busy-poll mode this is plain `spin_on`.
    ///
    /// It blocks the calling thread: call it from a thread of your own (with the runtime entered,
    /// `Handle::enter`, for calls with deadlines), not from inside an async task. It does not
    /// drive the runtime, and the connection's writer task (control frames, batches written
    /// under load) runs there: the runtime must keep running meanwhile (a multi-thread runtime,
    /// or a current-thread one that another thread drives with `block_on`).
    ///
    /// ```no_run
    /// # fn demo(client: volley::Client, handle: tokio::runtime::Handle) -> Result<(), volley::Status> {
    /// use volley::CallOptions;
    /// use volley::busy_poll::IdleStrategy;
    ///
    /// let _runtime = handle.enter();
    /// let reply: String = client.spin_on(client.unary("/echo.Echo/Say", &"hi".to_owned(), CallOptions::default()), IdleStrategy::Spin)?;
    /// # Ok(()) }
    /// ```
    pub fn spin_on<F: Future>(&self, future: F, idle: IdleStrategy) -> F::Output {
        let poller = self.shared().poller.get().and_then(std::sync::Weak::upgrade);
        spin_on_with(future, idle, || poller.as_ref().is_some_and(|poller| poller.poll() == Polled::Work))
    }
}
