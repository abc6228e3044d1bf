//! The memory budget photo decoding draws from: before a photo is decoded, the bytes its header
//! says decoding will take are reserved, and released when the photo is done. A photo that needs
//! more than the whole budget is refused; one that does not fit beside the photos being decoded
//! waits for them, up to a patience, and is then refused as busy. So however many uploads arrive
//! at once, decoding never holds more than the budget.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// A memory budget shared by everything that decodes photos.
#[derive(Debug)]
pub struct Budget {
    total: u64,
    in_use: Mutex<u64>,
    freed: Condvar,
    patience: Duration,
    waits: AtomicU64,
    refusals: AtomicU64,
}

/// Bytes reserved from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        *self.budget.in_use.lock().expect("budget lock") -= self.bytes;
        self.budget.freed.notify_all();
    }
}

impl Budget {
    /// A budget of `total` bytes whose reservations wait up to `patience` for room.
    pub fn new(total: u64, patience: Duration) -> Arc<Budget> {
        Arc::new(Budget {
            total,
            in_use: Mutex::new(0),
            freed: Condvar::new(),
            patience,
            waits: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
        })
    }

    /// Reserves `bytes` for decoding `what`: at once if they fit, after waiting for other
    /// reservations to end if they do not yet, or an error naming the limit.
    pub fn reserve(self: &Arc<Self>, bytes: u64, what: &std::path::Path) -> Result<Reservation> {
        if bytes > self.total {
            self.refusals.fetch_add(1, Ordering::Relaxed);
            return Err(Error::format(
                what,
                format!(
                    "decoding needs {:.0} MiB, more than the memory budget of {:.0} MiB",
                    bytes as f64 / MIB,
                    self.total as f64 / MIB
                ),
            ));
        }
        let mut in_use = self.in_use.lock().expect("budget lock");
        if *in_use + bytes > self.total {
            self.waits.fetch_add(1, Ordering::Relaxed);
            let deadline = Instant::now() + self.patience;
            while *in_use + bytes > self.total {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.refusals.fetch_add(1, Ordering::Relaxed);
                    return Err(Error::Busy(format!(
                        "the decoding memory budget of {:.0} MiB stayed in use for {:.1} s; try again",
                        self.total as f64 / MIB,
                        self.patience.as_secs_f64()
                    )));
                }
                in_use = self.freed.wait_timeout(in_use, left).expect("budget lock").0;
            }
        }
        *in_use += bytes;
        Ok(Reservation { budget: self.clone(), bytes })
    }

    /// The budget in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        *self.in_use.lock().expect("budget lock")
    }

    /// Reservations that had to wait.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Reservations refused (too large, or still no room after waiting).
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn reservations_wait_for_room_and_refuse_what_never_fits() {
        let budget = Budget::new(100, Duration::from_millis(300));
        let big = budget.reserve(80, Path::new("a")).unwrap();
        assert_eq!(budget.in_use(), 80);
        let err = budget.reserve(101, Path::new("huge.png")).unwrap_err().to_string();
        assert!(err.starts_with("huge.png: decoding needs") && err.contains("memory budget"), "{err}");
        let waiter = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.reserve(50, Path::new("b")).map(|r| r.bytes))
        };
        // Free the room only once the waiter is waiting for it (however busy the machine is).
        let deadline = Instant::now() + Duration::from_secs(30);
        while budget.waits() == 0 {
            assert!(Instant::now() < deadline, "the second reservation never started waiting");
            std::thread::yield_now();
        }
        drop(big);
        assert_eq!(waiter.join().unwrap().unwrap(), 50, "it got the room when the first ended");
        assert_eq!((budget.in_use(), budget.waits(), budget.refusals()), (0, 1, 1));
        let _held = budget.reserve(60, Path::new("c")).unwrap();
        let started = Instant::now();
        assert!(matches!(budget.reserve(60, Path::new("d")), Err(Error::Busy(_))));
        assert!(started.elapsed() >= Duration::from_millis(290), "it waited its patience");
        assert_eq!(budget.refusals(), 2);
    }
}
