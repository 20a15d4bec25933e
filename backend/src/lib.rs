//! evflex: an open backend for EV smart charging with on-chain billing.
//!
//! The library holds the service; the `evflex` binary (crate `evflex-cli`) parses flags, and the
//! simulator and demo are the crate `evflex-sim`, which drives this library from outside. Layout
//! (see `DESIGN.md`): [`domain`] plain types, [`ingest`] CPO data in, [`engine`] the 15-minute
//! tick and admission control, [`api`] HTTP, [`store`] the database, [`app`] startup and
//! shared state. The optimiser is the separate crate `evflex-schedule`.

pub mod api;
pub mod app;
pub mod billing;
pub mod chain;
pub mod config;
pub mod domain;
pub mod engine;
pub mod events;
pub mod ingest;
pub mod outbound;
pub mod store;
pub mod telemetry;
pub mod wallet;

pub use app::{AppState, Application, serve};
pub use config::{EngineConfig, ServeConfig, TickMode};
