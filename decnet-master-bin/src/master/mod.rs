//! The master daemon (`decnet serve`) and what it shares with `decnet init`.

pub mod api;
pub mod attacks;
pub mod auth;
pub mod events;
pub mod fleet;
pub mod layout;
pub mod lifecycle;
pub mod metrics;
pub mod mutator;
pub mod observer;
pub mod pki;
pub mod ratelimit;
pub mod run;
pub mod runner;
pub mod state;
pub mod swarm;
