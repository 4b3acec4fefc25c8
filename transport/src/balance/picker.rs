//! Power of two choices: draw two endpoints at random among those a call may use and take the
//! one with the lower load ([`super::load::Load::cost`]). Random draws keep many clients from
//! piling onto the same "best" endpoint; comparing two avoids the worst.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::sync::Arc;

use super::endpoint::Endpoint;

/// Draws before a pick falls back to scanning for a pickable endpoint (4).
const DRAWS: usize = 4;

/// Picks an endpoint for a call: `exclude` lists the indices this call already tried. `now_ns`
/// reads the clock (ns since the channel's epoch), only when two endpoints are compared.
pub(crate) fn pick(endpoints: &[Arc<Endpoint>], exclude: &[usize], now_ns: impl Fn() -> u64, decay: Duration) -> Option<usize> {
    let usable = |i: usize| endpoints[i].is_pickable() && !exclude.contains(&i);
    let n = endpoints.len();
    let (a, b) = match n {
        0 => return None,
        1 => return usable(0).then_some(0),
        _ => draw_two(n),
    };
    let (a, b) = match (usable(a), usable(b)) {
        (true, true) => (a, b),
        (true, false) => (a, second_choice(n, a, &usable).unwrap_or(a)),
        (false, true) => (b, second_choice(n, b, &usable).unwrap_or(b)),
        (false, false) => {
            let first = (0..DRAWS)
                .map(|_| random_below(n))
                .find(|&i| usable(i))
                .or_else(|| scan(n, 0, &usable))?;
            (first, second_choice(n, first, &usable).unwrap_or(first))
        }
    };
    if a == b {
        return Some(a);
    }
    let now_ns = now_ns();
    let (cost_a, cost_b) = (endpoints[a].cost(now_ns, decay), endpoints[b].cost(now_ns, decay));
    Some(if cost_b < cost_a { b } else { a })
}

/// Another usable endpoint than `taken`: a few random draws, then a scan.
fn second_choice(n: usize, taken: usize, usable: &impl Fn(usize) -> bool) -> Option<usize> {
    (0..DRAWS)
        .map(|_| random_below(n))
        .find(|&i| i != taken && usable(i))
        .or_else(|| scan(n, taken + 1, &|i| i != taken && usable(i)))
}

/// The first usable index from `start`, wrapping around.
fn scan(n: usize, start: usize, usable: &impl Fn(usize) -> bool) -> Option<usize> {
    (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
}

/// Two distinct indices below `n` (at least 2).
fn draw_two(n: usize) -> (usize, usize) {
    let a = random_below(n);
    let b = (a + 1 + random_below(n - 1)) % n;
    (a, b)
}

thread_local! {
    /// Per-thread xorshift64* state: no lock and no shared cache line on the call path.
    static RANDOM: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish() | 1);
}

/// A random number in [0, 1).
pub(crate) fn random_unit() -> f64 {
    (next_random() >> 11) as f64 / (1u64 << 53) as f64
}

fn random_below(n: usize) -> usize {
    // Multiply-shift: unbiased enough for n far below 2^32.
    (((next_random() >> 32) * n as u64) >> 32) as usize
}

fn next_random() -> u64 {
    RANDOM.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Address;

    const DECAY: Duration = Duration::from_secs(1);

    fn endpoints(n: u16) -> Vec<Arc<Endpoint>> {
        (0..n)
            .map(|p| Arc::new(Endpoint::new(format!("127.0.0.1:{}", p + 1).parse::<Address>().unwrap())))
            .collect()
    }

    #[test]
    fn equal_endpoints_share_picks_evenly() {
        let set = endpoints(4);
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            counts[pick(&set, &[], || 0, DECAY).unwrap()] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn a_loaded_endpoint_loses_every_comparison() {
        let set = endpoints(3);
        for endpoint in &set {
            for _ in 0..4 {
                endpoint.load.observe(1, Duration::from_micros(100), DECAY);
            }
        }
        for _ in 0..5 {
            set[1].load.start();
        }
        let picked_loaded = (0..3_000).filter(|_| pick(&set, &[], || 1, DECAY) == Some(1)).count();
        assert_eq!(picked_loaded, 0);
    }

    #[test]
    fn excluded_and_removed_endpoints_are_never_picked() {
        let set = endpoints(3);
        set[0].remove();
        for _ in 0..1_000 {
            assert_eq!(pick(&set, &[2], || 0, DECAY), Some(1));
        }
        assert_eq!(pick(&set, &[1, 2], || 0, DECAY), None);
        assert_eq!(pick(&[], &[], || 0, DECAY), None);
    }
}
