//! The write queue's lanes: which frames a writer sends first (docs/PROTOCOL.md section 5.12,
//! "Lanes"). A call's `priority` (0 to 255, carried in its call head) picks the lane of its
//! frames; frames over one chunk are the bulk lane whatever lane they were queued in, cut into
//! chunks between which the higher lanes go (`interleave.rs`).

/// The lowest priority whose frames go in the high lane (128: the top half of the byte, so the
/// default, 0, and everything up to 127 stay normal).
pub(crate) const HIGH_PRIORITY_MIN: u8 = 0x80;

/// The write-queue lane a call frame is queued in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Written ahead of the normal lane in every write, and between two chunks of a bulk frame
    /// even when the normal lane must wait behind it.
    High,
    /// Everything else, connection frames included, in the order queued.
    Normal,
}

impl Lane {
    /// The lane of a call at `priority`: high from [`HIGH_PRIORITY_MIN`] up, normal below.
    #[inline]
    pub(crate) fn for_priority(priority: u8) -> Self {
        if priority >= HIGH_PRIORITY_MIN { Self::High } else { Self::Normal }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_half_of_the_priority_byte_is_the_high_lane() {
        assert_eq!(Lane::for_priority(0), Lane::Normal);
        assert_eq!(Lane::for_priority(127), Lane::Normal);
        assert_eq!(Lane::for_priority(HIGH_PRIORITY_MIN), Lane::High);
        assert_eq!(Lane::for_priority(255), Lane::High);
    }
}
