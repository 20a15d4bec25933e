//! What a stranger may cost: rate limits on the routes that are anonymous or expensive, and caps
//! on long-lived and CPU-heavy work. A refusal is a 429 with a JSON body that says why and a
//! `Retry-After` header.
//!
//! Per client IP address (`tower_governor`, a token bucket per key; the buckets of idle keys
//! are dropped every minute):
//!
//! | class | routes | burst | then |
//! |---|---|---|---|
//! | sign-up | `POST /api/v1/users` | 10 | 1 per 6 s |
//! | sign-in | `POST /api/v1/auth/challenge`, `POST /api/v1/auth/verify` | 20 | 1 per 3 s |
//! | key export | `POST /api/v1/users/me/wallet/export` | 3 | 1 per 20 s, per IP and per account |
//! | verify | `POST /api/v1/audit/verify`, `GET …/timesteps/{T}/verify` (each re-solves) | 10 | 1 per 2 s |
//!
//! Caps ([`Caps`]): at most `--max-event-streams` open event streams (default 512; more are
//! refused), and at most two key derivations (scrypt, 256 MiB each) at a time, so memory stays
//! bounded (more wait up to 10 s, then are refused).
//!
//! `--no-rate-limits` (env `EVFLEX_NO_RATE_LIMITS=1`) lifts the per-IP limits for simulators and
//! load tests, which play hundreds of users from one address; the caps stay.
//!
//! The key is the TCP peer address. Behind a reverse proxy every client has the proxy's
//! address, so the proxy must apply per-client limits itself (evflex does not trust
//! `X-Forwarded-For`, which any client can set).

use super::error::ApiError;
use axum::body::Body;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use sha3::Digest as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_governor::GovernorError;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::{KeyExtractor, PeerIpKeyExtractor};

/// A route class with its own bucket per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Sign-up.
    SignUp,
    /// Sign-in challenge and verification.
    SignIn,
    /// Key export.
    KeyExport,
    /// Public verification (re-solves a committed schedule).
    Verify,
}

impl Class {
    /// (burst, one more token every …).
    fn quota(self) -> (u32, Duration) {
        match self {
            Self::SignUp => (10, Duration::from_secs(6)),
            Self::SignIn => (20, Duration::from_secs(3)),
            Self::KeyExport => (3, Duration::from_secs(20)),
            Self::Verify => (10, Duration::from_secs(2)),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::SignUp => "sign-ups",
            Self::SignIn => "sign-in attempts",
            Self::KeyExport => "key exports",
            Self::Verify => "verifications",
        }
    }
}

/// The key of the per-account bucket: the caller's `Authorization` header (a user's bearer
/// token), or its IP address when there is none.
#[derive(Debug, Clone, Copy)]
pub struct AccountKey;

impl KeyExtractor for AccountKey {
    type Key = String;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        if let Some(auth) = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            // The token itself is the key only in memory; a hash keeps it out of any dump.
            return Ok(hex::encode(sha3::Keccak256::digest(auth.as_bytes())));
        }
        peer_ip(req)
            .map(|ip| ip.to_string())
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

fn peer_ip<T>(req: &Request<T>) -> Option<IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.ip())
}

type Config<K> = Arc<GovernorConfig<K, NoOpMiddleware>>;

/// The per-IP (and per-account) buckets of every class. Cheap to clone (shared buckets).
#[derive(Clone)]
pub struct RateLimits {
    by_ip: Vec<(Class, Config<PeerIpKeyExtractor>)>,
    by_account: Config<AccountKey>,
}

fn config<K: KeyExtractor>(key: K, (burst, period): (u32, Duration), on: bool) -> Config<K> {
    let mut builder = GovernorConfigBuilder::default().key_extractor(key);
    if on {
        builder.period(period).burst_size(burst);
    } else {
        builder.per_nanosecond(1).burst_size(u32::MAX);
    }
    Arc::new(builder.finish().expect("a non-zero period and burst"))
}

impl RateLimits {
    /// The buckets; with `on == false` every quota is effectively unlimited.
    pub fn new(on: bool) -> Self {
        let classes = [
            Class::SignUp,
            Class::SignIn,
            Class::KeyExport,
            Class::Verify,
        ];
        Self {
            by_ip: classes
                .iter()
                .map(|&c| (c, config(PeerIpKeyExtractor, c.quota(), on)))
                .collect(),
            by_account: config(AccountKey, Class::KeyExport.quota(), on),
        }
    }

    fn of(&self, class: Class) -> Config<PeerIpKeyExtractor> {
        self.by_ip
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, cfg)| cfg.clone())
            .expect("every class has a bucket")
    }

    /// The per-IP layer of `class`.
    pub fn per_ip(
        &self,
        class: Class,
    ) -> tower_governor::GovernorLayer<PeerIpKeyExtractor, NoOpMiddleware, Body> {
        tower_governor::GovernorLayer::new(self.of(class)).error_handler(move |e| refusal(class, e))
    }

    /// The per-account layer of key export.
    pub fn per_account(&self) -> tower_governor::GovernorLayer<AccountKey, NoOpMiddleware, Body> {
        tower_governor::GovernorLayer::new(self.by_account.clone())
            .error_handler(|e| refusal(Class::KeyExport, e))
    }

    /// Drops the buckets of keys not seen lately (call every minute).
    pub fn forget_idle(&self) {
        for (_, cfg) in &self.by_ip {
            cfg.limiter().retain_recent();
        }
        self.by_account.limiter().retain_recent();
    }
}

fn refusal(class: Class, e: GovernorError) -> Response<Body> {
    match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            let mut response = ApiError::TooManyRequests(format!(
                "too many {} from this address or account; retry in {} s",
                class.what(),
                wait_time.max(1)
            ))
            .into_response();
            if let Ok(v) = axum::http::HeaderValue::from_str(&wait_time.max(1).to_string()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            response
        }
        GovernorError::UnableToExtractKey => {
            ApiError::Internal("rate limit: no client address".to_owned()).into_response()
        }
        GovernorError::Other { msg, .. } => {
            ApiError::Internal(format!("rate limit: {msg:?}")).into_response()
        }
    }
}

/// Caps on long-lived and CPU-heavy work, shared by every request.
#[derive(Debug, Clone)]
pub struct Caps {
    event_streams: Arc<Semaphore>,
    key_work: Arc<Semaphore>,
}

/// Key derivations (scrypt) allowed at a time.
pub const KEY_WORK_AT_ONCE: usize = 2;
/// Longest wait for a key-derivation or solve slot before a 429.
pub const KEY_WORK_WAIT: Duration = Duration::from_secs(10);

impl Caps {
    /// At most `max_event_streams` open event streams.
    pub fn new(max_event_streams: usize) -> Self {
        Self {
            event_streams: Arc::new(Semaphore::new(max_event_streams)),
            key_work: Arc::new(Semaphore::new(KEY_WORK_AT_ONCE)),
        }
    }

    /// A slot for one event stream, held for as long as the stream is open.
    pub fn event_stream(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.event_streams.clone().try_acquire_owned().map_err(|_| {
            ApiError::TooManyRequests(
                "too many open event streams; the pages fall back to polling".to_owned(),
            )
        })
    }

    /// A slot for one key derivation (keystore sealing or export): waits up to
    /// [`KEY_WORK_WAIT`] for one, then refuses.
    pub async fn key_work(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        slot(
            &self.key_work,
            "the key service is busy; retry in a few seconds",
        )
        .await
    }
}

/// One permit of `slots`, waiting up to [`KEY_WORK_WAIT`]; otherwise a 429 saying `busy`. For
/// work a request may start but must not pile up: key derivations, and the public verification's
/// re-solve, which takes one of the engine's solve slots as a tick does.
pub async fn slot(slots: &Arc<Semaphore>, busy: &str) -> Result<OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(KEY_WORK_WAIT, slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::TooManyRequests(busy.to_owned())),
    }
}
