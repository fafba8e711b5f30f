//! Exit codes, in one place. `tick`, `patrol` and `doctor` follow the
//! monitoring-plugin convention; `wait` has its own meaning for 1 and 2.

/// Everything is fine.
pub const OK: i32 = 0;
/// A threshold was crossed, or the run finished incomplete.
pub const WARNING: i32 = 1;
/// The run needs a human: crashed, died, stalled, timed out, preempted.
pub const CRITICAL: i32 = 2;
/// We could not tell: unreachable, auth, host key, probe error, usage or profile error.
pub const UNKNOWN: i32 = 3;
