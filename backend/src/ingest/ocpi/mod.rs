//! OCPI 2.2.1 in: the receiver interfaces of Locations, Sessions, CDRs and Tariffs, and the
//! credentials handshake (evflex in the eMSP / Smart Charging Service Provider role).

pub mod credentials;
pub mod model;
mod receiver;
pub mod tariffs;

pub use receiver::*;
