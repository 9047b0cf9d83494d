//! The HTTP integration suite: every test starts the real server (`skein_testkit::TestApp`)
//! and acts through HTTP only. Tests in `both_backends!` run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod accounts;
mod admin;
mod adminlog;
mod agents;
mod audit;
mod auth;
mod billing;
mod billing_faults;
mod chat;
mod chat_sources;
mod chat_tools;
mod cli;
mod cluster;
mod code_interpreter;
mod coupons;
mod endpoints;
mod files;
mod files_uploads;
mod gateway;
mod holds;
mod in_process;
mod invites;
mod invoices;
mod keys;
mod knowledge;
mod limits;
mod metrics;
mod money;
mod oauth;
mod payments;
mod payments_alipay;
mod payments_wechat;
mod phone;
mod plugins;
mod pricing;
mod profile;
mod providers;
mod refunds;
mod relay;
mod responses;
mod routing;
mod runtime;
mod sdk;
mod secrets_at_rest;
mod security;
mod settings;
mod split;
mod statements;
mod subscriptions;
mod tokens;
mod traces;
mod vendors;
mod web;
