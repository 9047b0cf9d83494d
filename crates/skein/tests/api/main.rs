//! The HTTP integration suite: every test starts the real server (`skein_testkit::TestApp`)
//! and acts through HTTP only. Tests in `both_backends!` run on SQLite and on PostgreSQL.
//! Tests are grouped by the service they prove (`billing::payments::...`,
//! `relay::routing::...`); `platform` holds what concerns the binary as a whole.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod agents;
mod billing;
mod chat;
mod files;
mod gateway;
mod knowledge;
mod platform;
mod plugins;
mod relay;
mod user;
