//! Which accepted call a server dispatches first: when one read brings several Requests, the
//! reader hands them to their handlers highest `priority` first (a stable order: equal
//! priorities keep the order they arrived in). Only reorders when the priorities differ, so the
//! default case (every call at priority 0) costs one pass and never allocates.

use std::collections::VecDeque;

use super::AcceptedCall;

/// Puts `accepted` in dispatch order: highest priority first, arrival order among equals.
pub(crate) fn order_by_priority(accepted: &mut VecDeque<AcceptedCall>) {
    let Some(first) = accepted.front().map(|call| call.head.priority) else {
        return;
    };
    if accepted.iter().all(|call| call.head.priority == first) {
        return;
    }
    // Stable: equal priorities keep their arrival order.
    accepted.make_contiguous().sort_by_key(|call| std::cmp::Reverse(call.head.priority));
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::wire::{CallHead, CallId};

    fn call(id: u64, priority: u8) -> AcceptedCall {
        AcceptedCall {
            call_id: CallId(id),
            head: CallHead {
                priority,
                ..CallHead::default()
            },
            message: None,
            received_at: Instant::now(),
        }
    }

    #[test]
    fn higher_priorities_go_first_and_equal_ones_keep_their_arrival_order() {
        let mut accepted: VecDeque<_> = [(1, 0), (3, 200), (5, 0), (7, 255), (9, 200)]
            .into_iter()
            .map(|(id, p)| call(id, p))
            .collect();
        order_by_priority(&mut accepted);
        let order: Vec<u64> = accepted.iter().map(|c| c.call_id.0).collect();
        assert_eq!(order, [7, 3, 9, 1, 5]);
    }
}
