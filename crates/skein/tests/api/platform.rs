//! The binary as a whole: the command line, many instances on one database, services split
//! across processes, metrics, traces, the runtime report and the web app's serving.

pub(crate) mod cli;
pub(crate) mod cluster;
pub(crate) mod metrics;
pub(crate) mod runtime;
pub(crate) mod split;
pub(crate) mod traces;
pub(crate) mod web;
