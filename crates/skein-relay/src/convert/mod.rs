//! Conversions between client wire formats and the OpenAI chat format, the pivot every
//! upstream adapter speaks. Each conversion carries what the target can express and refuses
//! with a clear 400 what it cannot, rather than dropping it silently.

pub mod anthropic;
pub mod gemini;
