//! `GET /api/v1/events`: live change notifications as server-sent events (see
//! [`crate::events`]). Public and data-free: events name only timesteps, group ids and EVSE
//! uids, never a user, token, session or figure, so any page may listen and then refetch what
//! changed through its authenticated routes.

use super::error::ApiError;
use crate::app::AppState;
use crate::events::Event;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How long a browser waits before reconnecting a dropped stream (the SSE `retry:` field).
const RETRY: Duration = Duration::from_secs(1);
/// Interval of the keep-alive comments that keep proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Event-stream routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/events", get(events))
}

/// Live change notifications (`text/event-stream`). Events: `ready` (once, on connect),
/// `tick` `{timestep, groups_solved, group_ids}` after a tick committed its schedules, `meter`
/// `{evse_uid, source}` after a meter-value batch (`source` `meter_values`) or an OCPI session
/// update (`session`; `evse_uid` null when the update does not name it), and `resync` when this
/// stream fell behind and skipped events. Keep-alive comments every 15 s.
///
/// Public, not scoped to a user or CPO: events carry no personal data (only timesteps, group
/// ids and EVSE uids, which the audit API and the chain publish anyway).
/// One server-sent event as the OpenAPI document describes it (the stream's fields).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the wire format only
pub(super) struct SseEvent {
    /// `ready`, `tick`, `meter` or `resync`.
    event: String,
    /// The event's JSON.
    data: String,
    /// The event id, where there is one.
    id: Option<String>,
    /// Reconnection delay (ms), where the server sets one.
    retry: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "live",
    responses((status = 429, description = "Too many open event streams", body = super::error::ErrorBody),
        (status = 200, description = "A stream of server-sent events (`text/event-stream`): `ready`, `tick` {timestep, groups_solved, group_ids}, `meter` {group_id, source}, `resync`. Nothing a stranger could act on: no session, EVSE, user or address.", content_type = "text/event-stream", body = SseEvent)))]
pub(super) async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    // Held by the stream, so the slot frees when the client goes away.
    let permit = state.caps.event_stream()?;
    let rx = state.engine.events.subscribe();
    let closed = Box::pin(state.engine.events.closed());
    let hello = sse::Event::default().event("ready").retry(RETRY).data("{}");
    let stream = futures_util::stream::unfold(
        (Some(hello), rx, closed, permit),
        |(hello, mut rx, mut closed, permit)| async move {
            if let Some(first) = hello {
                return Some((Ok::<_, Infallible>(first), (None, rx, closed, permit)));
            }
            let event = tokio::select! {
                _ = &mut closed => return None,
                r = rx.recv() => match r {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => Event::Resync,
                    Err(RecvError::Closed) => return None,
                },
            };
            let data = match event {
                Event::Resync => "{}".to_owned(),
                ref e => serde_json::to_string(e).unwrap_or_else(|_| "{}".to_owned()),
            };
            let sse = sse::Event::default().event(event.name()).data(data);
            Some((Ok::<_, Infallible>(sse), (None, rx, closed, permit)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}
