//! Alongside: a WebSocket chat server for peer-support and mental-health advocacy
//! networks.
//!
//! # Layout
//!
//! Every change follows one path (ARCHITECTURE.md draws it):
//! socket frame → [`ws`] (parse with [`protocol`], check, handle) → [`store`] (commit,
//! assign the room's seq) → [`bus`] (publish) → [`hub`] (fan out to each local member's
//! bounded outbox) → the socket's writer task.
//!
//! - [`protocol`]: every JSON shape on the wire, error codes, timestamps.
//! - [`auth`]: password hashing, tokens, name rules, rate limiters.
//! - [`store`]: the storage interface and its SQLite implementation (group commit).
//! - [`bus`]: carries committed changes to the hub of every node.
//! - [`hub`]: local sessions, room subscriptions, presence, non-blocking delivery.
//! - [`ws`]: one WebSocket connection's lifecycle and its request handlers.
//! - [`http`]: the HTTP routes (accounts, health, metrics, `/ws` upgrade).
//! - [`server`]: start, shared state, graceful shutdown.
//! - [`config`]: settings, the command line and the config file.
//! - [`cli`]: what `main` runs.
//! - [`metrics`]: the Prometheus figures.

#![warn(missing_docs)]

pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod permissions;
pub mod protocol;
pub mod server;
pub mod state;
pub mod store;
pub mod ws;

pub use config::Config;
pub use server::Server;
