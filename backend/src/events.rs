//! Live change notifications for the web pages (`GET /api/v1/events`, server-sent events).
//!
//! The engine and the ingest routes publish small events on a [`tokio::sync::broadcast`]
//! channel; every open event stream is one receiver. The pages refetch only what an event names
//! (a group's cockpit card, a user's status) instead of polling.
//!
//! Events carry **nothing a stranger could act on**: only timesteps and group ids, which
//! evflex publishes anyway (the audit API and the StatusLedger commits on chain list every
//! group per timestep). No user, address, token, session id, EVSE uid, card id, energy or power
//! figure is ever sent. That is why the stream is public and not scoped to a user or a CPO (an
//! `EventSource` cannot set an `Authorization` header either): an event only says *that*
//! something changed in a group; what changed is read through the authenticated routes, which
//! show each caller only its own.
//!
//! Publishing never blocks and never fails: with no stream open an event is dropped at once, and
//! a receiver that falls more than [`CAPACITY`] events behind skips the missed ones and gets a
//! `resync` event, after which a page refetches everything.

use serde::Serialize;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Events buffered per receiver before a slow one starts skipping.
pub const CAPACITY: usize = 1024;

/// One change notification. Serialised as the SSE `data:` JSON; [`Event::name`] is the SSE
/// `event:` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Event {
    /// A tick committed its schedules.
    Tick {
        /// The planned timestep (Unix seconds / 900).
        timestep: u64,
        /// How many groups were solved (skipped and failed ones are not counted).
        groups_solved: usize,
        /// The groups that were solved.
        group_ids: Vec<i64>,
    },
    /// A meter-value batch or a session update for a charge point arrived.
    Meter {
        /// The group of the charge point; `None` for a charge point outside every group.
        group_id: Option<i64>,
        /// `meter_values` or `session`.
        source: &'static str,
    },
    /// This receiver fell behind and skipped events: refetch everything.
    Resync,
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Tick { .. } => "tick",
            Event::Meter { .. } => "meter",
            Event::Resync => "resync",
        }
    }
}

/// The broadcast channel of [`Event`]s, shared by the engine and the HTTP layer.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    closed: Arc<watch::Sender<bool>>,
}

impl Default for Events {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        let (closed, _) = watch::channel(false);
        Self {
            tx,
            closed: Arc::new(closed),
        }
    }
}

impl Events {
    /// A new receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Resolves once [`Events::close`] was called (the server is shutting down), so open
    /// streams end and graceful shutdown does not wait for them.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let mut rx = self.closed.subscribe();
        async move {
            let _ = rx.wait_for(|closed| *closed).await;
        }
    }

    /// Ends every open stream (at shutdown).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// How many streams are open.
    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Publishes an event (dropped when no stream is open).
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// After a tick of `timestep` committed: `tick` with the groups it solved (collected only
    /// when a stream is open).
    pub fn tick(&self, timestep: u64, solved: impl IntoIterator<Item = i64>) {
        if self.receivers() == 0 {
            return;
        }
        let group_ids: Vec<i64> = solved.into_iter().collect();
        self.publish(Event::Tick {
            timestep,
            groups_solved: group_ids.len(),
            group_ids,
        });
    }

    /// After meter values or a session update for charge points in these groups were stored:
    /// one `meter` event per group (`None`: outside every group), each once.
    pub fn meter(&self, groups: impl IntoIterator<Item = Option<i64>>, source: &'static str) {
        let mut groups: Vec<Option<i64>> = groups.into_iter().collect();
        groups.sort_unstable();
        groups.dedup();
        for group_id in groups {
            self.publish(Event::Meter { group_id, source });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_events_name_each_group_once_and_nothing_else() {
        let events = Events::default();
        let mut rx = events.subscribe();
        events.meter([Some(2), None, Some(1), Some(2)], "meter_values");
        let sent: Vec<serde_json::Value> = std::iter::from_fn(|| rx.try_recv().ok())
            .inspect(|e| assert_eq!(e.name(), "meter"))
            .map(|e| serde_json::to_value(&e).unwrap())
            .collect();
        assert_eq!(
            sent,
            vec![
                serde_json::json!({"group_id": null, "source": "meter_values"}),
                serde_json::json!({"group_id": 1, "source": "meter_values"}),
                serde_json::json!({"group_id": 2, "source": "meter_values"}),
            ]
        );
    }

    #[test]
    fn nothing_is_sent_to_a_stream_opened_later() {
        let events = Events::default();
        events.meter([Some(1)], "session");
        let mut rx = events.subscribe();
        assert!(rx.try_recv().is_err());
    }
}
