//! The client's busy-poll option: [`ClientBuilder::busy_poll`].

use super::ClientBuilder;
use crate::busy_poll::BusyPoll;

impl ClientBuilder {
    /// Reads the connection with a dedicated busy-polling thread instead of the reader task
    /// (default: off): a response is decoded and handed to its call as soon as it arrives,
    /// without the reactor waking a thread. The thread ends with the connection. To avoid the
    /// wake-up on the caller's side too, run calls in [`spin_on`](crate::busy_poll::spin_on).
    /// See [`crate::busy_poll`] and `docs/latency.md`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), volley::Error> {
    /// use volley::busy_poll::{BusyPoll, IdleStrategy};
    /// use volley::Client;
    ///
    /// let client = Client::builder()
    ///     .busy_poll(BusyPoll::new(IdleStrategy::SpinThenYield { spins: 1_000 }).pin_to_cpu(0))
    ///     .connect("127.0.0.1:7000")
    ///     .await?;
    /// let reply: String = client.unary("/echo.Echo/Say", "hi".to_owned()).await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn busy_poll(mut self, busy_poll: BusyPoll) -> Self {
        self.config.busy_poll = Some(busy_poll);
        self
    }
}
