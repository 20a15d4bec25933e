//! Integration tests of evflex-chain against a real anvil started from `anvil/state.json`
//! (each test gets its own node on a free port).

mod assets;
mod billing;
mod consent;
mod helpers;
mod restart;
mod status;
mod topology;
mod wallet;
mod work;
