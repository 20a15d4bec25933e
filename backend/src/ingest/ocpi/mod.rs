//! OCPI 2.2.1 and 2.3.0 in: the receiver interfaces of Locations, Sessions, CDRs and Tariffs, and the
//! credentials handshake (evflex in the eMSP / Smart Charging Service Provider role).
//! [`version`] maps what 2.3.0 puts differently on the wire to the one internal model.

pub mod credentials;
pub mod model;
mod receiver;
pub mod tariffs;
pub mod version;

pub use receiver::*;
