//! OpenAI's own formats: its error shape, Azure's URLs, the Responses API as a client format,
//! and the stream decoder of upstreams that already speak the pivot. OpenAI and Azure as
//! upstreams are rows of the one OpenAI-compatible adapter ([`super::compat`]), beside every
//! other vendor of that family.

pub mod azure;
pub mod errors;
pub mod responses;

use bytes::Bytes;
use serde_json::Value;

use super::StreamDecoder;

/// The stream decoder of OpenAI-compatible upstreams: their stream is already the pivot.
pub struct PassThrough;

impl StreamDecoder for PassThrough {
    fn event(&mut self, event: Bytes) -> Result<Vec<Bytes>, String> {
        Ok(vec![event])
    }

    fn finish(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
}

/// The string `field` of every item of a list.
pub(crate) fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m[field].as_str().map(str::to_string))
        .collect()
}
