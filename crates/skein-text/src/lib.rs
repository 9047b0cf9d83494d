//! Text utilities Skein's services share, with no knowledge of any service: token counting
//! (`tokens`), search terms for Chinese and English (`segment`), and cutting structured
//! documents into token-sized chunks (`chunk`), the last two for the Knowledge service; and
//! YAML read into JSON values within a budget (`yaml`: plugins' OpenAPI documents, the
//! relay's channel files).
//!
//! Kept out of `skein-core` so the crates that need no tokenizer (the gateway, the User
//! service) do not carry its tables or jieba's dictionary, and so the text code can grow
//! without touching what every crate depends on.

pub mod chunk;
pub mod segment;
pub mod tokens;
pub mod yaml;
