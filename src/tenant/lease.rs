//! This node's right to write a tenant (`crate::cluster` renews it; the
//! engine lock checks it before every append).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// This node's right to write a tenant. One node alone: always. In a
/// cluster: until the local deadline of its lease (the start of its last
/// successful renewal + `lease_ms`), and never again once fenced (the
/// lease was lost, the journal answered a stale epoch, or the tenant is
/// handed over). Checked under the engine lock before every append, so a
/// node that could not renew in time stops writing by itself, before any
/// other node may take the tenant.
#[derive(Debug)]
pub struct Lease {
    /// Milliseconds since [`Lease::origin`] until which writes are allowed.
    deadline: AtomicU64,
    fenced: AtomicBool,
    /// The journal refused an append of ours as stale: another node owns
    /// the tenant now.
    stale: AtomicBool,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            deadline: AtomicU64::new(u64::MAX),
            fenced: Default::default(),
            stale: Default::default(),
        }
    }
}

impl Lease {
    /// A fixed instant that monotonic deadlines count from.
    fn origin() -> std::time::Instant {
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        *ORIGIN.get_or_init(std::time::Instant::now)
    }

    fn since_origin(at: std::time::Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(Self::origin()).as_millis()).unwrap_or(u64::MAX)
    }

    /// Writes are allowed until `at` (monotonic clock).
    pub fn hold_until(&self, at: std::time::Instant) {
        self.deadline
            .store(Self::since_origin(at), Ordering::SeqCst);
    }

    /// Stop writing for good.
    pub fn fence(&self) {
        self.fenced.store(true, Ordering::SeqCst);
    }

    /// Whether writes are allowed now.
    pub fn valid(&self) -> bool {
        !self.fenced.load(Ordering::SeqCst)
            && Self::since_origin(std::time::Instant::now()) < self.deadline.load(Ordering::SeqCst)
    }

    /// Whether the journal told us another node owns the tenant.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::SeqCst)
    }

    pub(super) fn mark_stale(&self) {
        self.stale.store(true, Ordering::SeqCst);
        self.fence();
    }
}
