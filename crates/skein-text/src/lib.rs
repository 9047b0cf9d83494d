//! Text utilities Skein's services share, with no knowledge of any service: token counting
//! (`tokens`) now; segmentation (jieba) and chunking for the Knowledge service will join it.
//!
//! Kept out of `skein-core` so the crates that need no tokenizer (the gateway, the User
//! service) do not carry its tables, and so the text code can grow without touching what
//! every crate depends on.

pub mod tokens;
