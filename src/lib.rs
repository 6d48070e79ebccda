//! Alongside: a WebSocket chat server for peer-support and mental-health advocacy
//! networks.
//!
//! # Layout
//!
//! Every change follows one path (ARCHITECTURE.md draws it):
//! socket frame → [`ws`] (parse with [`protocol`], check with [`permissions`], handle)
//! → [`store`] (commit, assign the room's seq) → the events API of [`state`] (serialise
//! once) → [`bus`] → [`hub`] (apply the effect, fan out to each local member's bounded
//! outbox) → the socket's writer (or the push itself, for a quiet socket).
//!
//! - [`protocol`]: every JSON shape on the wire, error and close codes, timestamps.
//! - [`permissions`]: who may do what, every rule an exhaustive `match`.
//! - [`auth`]: password hashing, tokens, name rules.
//! - [`limits`]: rate limiters and token buckets.
//! - [`net`]: who the client is (trusted proxies, IPv6 by /64).
//! - [`store`]: the storage interface and its SQLite implementation (group commit, the
//!   write discipline, health).
//! - [`bus`]: what travels to the hub of every node.
//! - [`hub`]: local sessions, room subscriptions, presence, non-blocking delivery; the
//!   bus of a single node.
//! - [`state`]: the shared state, errors at the edge, and the events API.
//! - [`ws`]: one WebSocket connection's lifecycle, its writer and request handlers.
//! - [`http`]: the HTTP routes (accounts, health, metrics, the web client).
//! - [`calendar`]: the public programme as iCalendar.
//! - [`listener`]: the accept loop: HTTP/1 with a header-read timeout, connection caps.
//! - [`server`]: the composition root: start, routes, graceful shutdown.
//! - [`config`]: settings (flags, environment, config file).
//! - [`cli`]: the command line and what `main` runs.
//! - [`metrics`]: the Prometheus figures.
//!
//! Lower modules never import upper ones; `.ci/module-cycles` checks there is no cycle.

#![warn(missing_docs)]

pub mod auth;
pub mod bus;
pub mod calendar;
pub mod care;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod export;
pub mod http;
pub mod hub;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod permissions;
pub mod programme;
pub mod protocol;
pub mod server;
pub mod state;
pub mod store;
pub mod ws;

pub use config::Config;
pub use server::Server;
