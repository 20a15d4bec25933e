//! Live change notifications for the web pages (`GET /api/v1/events`, server-sent events).
//!
//! The engine and the ingest routes publish small events on a [`tokio::sync::broadcast`]
//! channel; every open event stream is one receiver. The pages refetch only what an event names
//! (a group's cockpit card, a user's status) instead of polling.
//!
//! Events carry **no personal data and no secrets**: only timesteps, group ids and OCPI EVSE
//! uids, which evflex publishes anyway (the audit API and the StatusLedger commits on chain list
//! every group's members per timestep). No user, token, session id, card id, energy or power
//! figure is ever sent. That is why the stream is public and not scoped to a user or a CPO (an
//! `EventSource` cannot set an `Authorization` header either): an event only says *that*
//! something changed; what changed is read through the authenticated routes.
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
    /// A meter-value batch or a session update for an EVSE arrived.
    Meter {
        /// The EVSE's OCPI uid; `None` when the update does not name it (a session PATCH
        /// without `evse_uid`).
        evse_uid: Option<String>,
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

    /// After a meter-value batch was stored: one `meter` event per EVSE in the batch body (the
    /// JSON of `POST /api/v1/meter-values`). Parses the body only when a stream is open.
    pub fn meter_values(&self, body: &[u8]) {
        if self.receivers() == 0 {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Batch {
            meter_values: Vec<Item>,
        }
        #[derive(serde::Deserialize)]
        struct Item {
            evse_uid: String,
        }
        let Ok(batch) = serde_json::from_slice::<Batch>(body) else {
            return;
        };
        let mut uids: Vec<String> = batch.meter_values.into_iter().map(|i| i.evse_uid).collect();
        uids.sort_unstable();
        uids.dedup();
        for evse_uid in uids {
            self.publish(Event::Meter {
                evse_uid: Some(evse_uid),
                source: "meter_values",
            });
        }
    }

    /// After an OCPI session PUT/PATCH was stored: a `meter` event naming the body's `evse_uid`
    /// if it has one. Parses the body only when a stream is open.
    pub fn session(&self, body: &[u8]) {
        if self.receivers() == 0 {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Session {
            evse_uid: Option<String>,
        }
        let evse_uid = serde_json::from_slice::<Session>(body)
            .ok()
            .and_then(|s| s.evse_uid);
        self.publish(Event::Meter {
            evse_uid,
            source: "session",
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_batches_name_each_evse_once() {
        let events = Events::default();
        let mut rx = events.subscribe();
        events.meter_values(
            br#"{"meter_values":[{"evse_uid":"E2","meterValue":[]},{"evse_uid":"E1","meterValue":[]},{"evse_uid":"E2","meterValue":[]}]}"#,
        );
        let names: Vec<Option<String>> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| match e {
                Event::Meter { evse_uid, .. } => evse_uid,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(names, vec![Some("E1".to_owned()), Some("E2".to_owned())]);
    }

    #[test]
    fn session_updates_carry_only_the_evse_uid() {
        let events = Events::default();
        let mut rx = events.subscribe();
        events.session(br#"{"id":"S1","evse_uid":"E1","cdr_token":{"uid":"CARD"},"kwh":3.5}"#);
        events.session(br#"{"kwh":4.0}"#);
        let a = rx.try_recv().unwrap();
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"evse_uid": "E1", "source": "session"})
        );
        assert_eq!(a.name(), "meter");
        let b = rx.try_recv().unwrap();
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"evse_uid": null, "source": "session"})
        );
    }

    #[test]
    fn nothing_is_parsed_or_sent_without_a_stream() {
        let events = Events::default();
        events.meter_values(b"not json");
        let mut rx = events.subscribe();
        assert!(rx.try_recv().is_err());
    }
}
