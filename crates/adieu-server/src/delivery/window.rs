//! Each application's share of its host's delivery slots: a window that grows while the
//! application answers and halves when it does not (additive increase, multiplicative decrease,
//! as TCP does for a path).
//!
//! Applications often share a host name (a gateway, a multi-tenant host). The host's slots
//! (`delivery.per_host_concurrency`) protect the host; the windows keep one application that hangs
//! from taking the slots of the healthy ones beside it. A window starts at
//! `delivery.per_client_concurrency` slots, gains one for every answer that came within
//! [`RESPONSIVE`], up to the host's limit (so a healthy application that is sent a mass logout
//! soon gets every slot of its host), keeps its size for a slower answer, and is halved, down to
//! one slot, by every attempt that got no answer (it timed out or could not connect).

use adieu_core::ClientId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An answer within this counts as the application being responsive.
pub const RESPONSIVE: Duration = Duration::from_secs(1);

/// The windows of every application this worker sends to.
#[derive(Debug)]
pub(crate) struct Windows {
    initial: usize,
    max: usize,
    by_client: Mutex<HashMap<ClientId, Arc<Window>>>,
}

/// One application's window.
#[derive(Debug)]
pub(crate) struct Window {
    slots: Arc<Semaphore>,
    max: usize,
    state: Mutex<Size>,
}

#[derive(Debug)]
struct Size {
    /// Slots the window has (in use or free).
    size: usize,
    /// Slots in use that go away when they come back (the window shrank below them).
    to_forget: usize,
}

/// How an attempt went, for the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// An answer within [`RESPONSIVE`].
    Quick,
    /// An answer, but a slow one.
    Slow,
    /// No answer: a timeout or a connection failure.
    Silent,
}

/// A slot of a window, held for one attempt.
#[derive(Debug)]
pub(crate) struct Slot {
    window: Arc<Window>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Windows {
    /// Windows starting at `initial` slots, growing to `max`.
    pub(crate) fn new(initial: usize, max: usize) -> Windows {
        let max = max.max(1);
        Windows { initial: initial.clamp(1, max), max, by_client: Mutex::default() }
    }

    /// The window of `client`.
    pub(crate) fn of(&self, client: &ClientId) -> Arc<Window> {
        let mut map = self.by_client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(client.clone())
            .or_insert_with(|| {
                Arc::new(Window {
                    slots: Arc::new(Semaphore::new(self.initial)),
                    max: self.max,
                    state: Mutex::new(Size { size: self.initial, to_forget: 0 }),
                })
            })
            .clone()
    }

    /// Clients whose window has no free slot.
    pub(crate) fn full(&self) -> Vec<ClientId> {
        let map = self.by_client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter().filter(|(_, w)| w.slots.available_permits() == 0).map(|(c, _)| c.clone()).collect()
    }
}

impl Window {
    /// Waits for a free slot.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.slots.clone().acquire_owned().await.ok()?;
        Some(Slot { window: self.clone(), permit: Some(permit) })
    }

    /// Slots the window has now.
    #[cfg(test)]
    pub(crate) fn size(&self) -> usize {
        self.lock().size
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Size> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn grow(&self) {
        let mut s = self.lock();
        if s.to_forget > 0 {
            s.to_forget -= 1;
        } else if s.size < self.max {
            s.size += 1;
            self.slots.add_permits(1);
        }
    }

    fn shrink(&self) {
        let mut s = self.lock();
        let target = (s.size / 2).max(1);
        s.to_forget += s.size - target;
        s.size = target;
        // Free slots go at once; slots in use go when they come back.
        let gone = self.slots.forget_permits(s.to_forget);
        s.to_forget -= gone;
    }
}

impl Slot {
    /// Gives the slot back: a quick answer grows the window, a slow one leaves it, no answer
    /// halves it.
    pub(crate) fn finish(self, pace: Pace) {
        match pace {
            Pace::Quick => self.window.grow(),
            Pace::Slow => {}
            Pace::Silent => self.window.shrink(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else { return };
        let mut s = self.window.lock();
        if s.to_forget > 0 {
            s.to_forget -= 1;
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn take(w: &Arc<Window>, n: usize) -> Vec<Slot> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(w.acquire().await.unwrap());
        }
        v
    }

    #[tokio::test]
    async fn a_window_starts_small_and_grows_with_answers_up_to_the_host_limit() {
        let w = Windows::new(4, 32).of(&ClientId::new("a"));
        assert_eq!(w.size(), 4);
        for _ in 0..100 {
            w.acquire().await.unwrap().finish(Pace::Quick);
        }
        assert_eq!(w.size(), 32);
        let held = take(&w, 32).await;
        assert_eq!(w.slots.available_permits(), 0);
        drop(held);
        assert_eq!(w.slots.available_permits(), 32);
    }

    #[tokio::test]
    async fn a_hanging_application_is_halved_down_to_one_slot() {
        let w = Windows::new(4, 32).of(&ClientId::new("hang"));
        for s in take(&w, 4).await {
            s.finish(Pace::Silent);
        }
        assert_eq!(w.size(), 1);
        assert_eq!(w.slots.available_permits(), 1, "slots in use went away when they came back");
    }

    #[tokio::test]
    async fn a_slow_answer_keeps_the_window() {
        let w = Windows::new(4, 32).of(&ClientId::new("slow"));
        w.acquire().await.unwrap().finish(Pace::Slow);
        assert_eq!(w.size(), 4);
    }

    #[tokio::test]
    async fn shrinking_while_slots_are_in_use_never_exceeds_the_new_size() {
        let w = Windows::new(8, 32).of(&ClientId::new("x"));
        let mut held = take(&w, 8).await;
        held.pop().unwrap().finish(Pace::Silent); // 8 → 4, with 7 still in use
        assert_eq!(w.size(), 4);
        assert_eq!(w.slots.available_permits(), 0);
        for _ in 0..3 {
            drop(held.pop());
        }
        assert_eq!(w.slots.available_permits(), 0, "4 still in use, the window is 4");
        drop(held.pop());
        assert_eq!(w.slots.available_permits(), 1);
    }

    #[test]
    fn full_windows_are_reported() {
        let ws = Windows::new(1, 4);
        let w = ws.of(&ClientId::new("a"));
        let _slot = w.slots.clone().try_acquire_owned().unwrap();
        assert_eq!(ws.full(), vec![ClientId::new("a")]);
    }
}
