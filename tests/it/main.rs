//! The one integration test binary: every test starts the real server (on port 0, or the
//! real binary) and talks to it over real HTTP and WebSocket connections.

mod abuse;
mod accounts;
mod bad_input;
mod care;
mod cluster;
mod crash;
mod delivery;
mod groups;
mod live;
mod moderation;
mod operations;
mod rights;
mod rooms;
mod storage;
mod summits;
mod support;
