//! Integration tests: the real server on port 0 with a fresh database per test (PostgreSQL on
//! 127.0.0.1:5432 by default; key tests also on SQLite). One binary, one module per feature.

mod admin;
mod audit_revisions;
mod batteries;
mod chain;
mod electrical;
mod handshake;
mod health;
mod helpers;
mod implausible;
mod limits;
mod locations;
mod meter_values;
mod replan;
mod requests;
mod routing;
mod sessions;
mod sim;
mod sync;
mod tariffs;
mod tenancy;
mod tick;
mod topology;
mod versions;
mod wallet;
