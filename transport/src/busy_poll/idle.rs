//! An [`IdleStrategy`] at run time: counts the empty polls since the last work and waits as the
//! strategy says.

use std::time::Duration;

use super::IdleStrategy;

/// The running state of an idle strategy.
#[derive(Debug)]
pub(crate) struct Idler {
    strategy: IdleStrategy,
    /// Empty polls since the last one that found work.
    empty: u32,
    /// The next park, for [`IdleStrategy::SpinThenPark`].
    park: Duration,
}

impl Idler {
    pub(crate) fn new(strategy: IdleStrategy) -> Self {
        let mut idler = Self {
            strategy,
            empty: 0,
            park: Duration::ZERO,
        };
        idler.reset();
        idler
    }

    /// A poll found work: spin again from the start.
    pub(crate) fn reset(&mut self) {
        self.empty = 0;
        if let IdleStrategy::SpinThenPark { min_park, .. } = self.strategy {
            self.park = min_park;
        }
    }

    /// A poll found nothing: wait as the strategy says before the next one. Parking uses
    /// `thread::park_timeout`, so `Thread::unpark` ends a park early.
    pub(crate) fn idle(&mut self) {
        match self.strategy {
            IdleStrategy::Spin => {}
            IdleStrategy::SpinThenYield { spins } => {
                if self.empty < spins {
                    self.empty += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            IdleStrategy::SpinThenPark {
                spins, yields, max_park, ..
            } => {
                if self.empty < spins {
                    self.empty += 1;
                } else if self.empty - spins < yields {
                    self.empty += 1;
                    std::thread::yield_now();
                } else {
                    std::thread::park_timeout(self.park);
                    self.park = (self.park * 2).min(max_park);
                }
            }
        }
    }

    /// The strategy has reached parking: the thread sleeps between polls.
    #[cfg(test)]
    fn is_parking(&self) -> bool {
        match self.strategy {
            IdleStrategy::SpinThenPark { spins, yields, .. } => self.empty >= spins.saturating_add(yields),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_then_park_parks_only_after_its_spins_and_yields() {
        let mut idler = Idler::new(IdleStrategy::SpinThenPark {
            spins: 3,
            yields: 2,
            min_park: Duration::from_micros(1),
            max_park: Duration::from_micros(4),
        });
        for _ in 0..5 {
            assert!(!idler.is_parking());
            idler.idle();
        }
        assert!(idler.is_parking());
        for _ in 0..4 {
            idler.idle();
        }
        assert_eq!(idler.park, Duration::from_micros(4), "the park doubles up to max_park");
        idler.reset();
        assert!(!idler.is_parking());
        assert_eq!(idler.park, Duration::from_micros(1));
    }

    #[test]
    fn spin_never_parks() {
        let mut idler = Idler::new(IdleStrategy::Spin);
        for _ in 0..100_000 {
            idler.idle();
        }
        assert!(!idler.is_parking());
    }
}
