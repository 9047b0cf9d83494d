//! The Knowledge service's foundations: reading documents ([`extract`]), the lexical BM25
//! index on SQLite and PostgreSQL ([`lexical`]), fusing lexical and vector rankings
//! ([`fusion`]), and the retrieval evaluation ([`eval`]).
//!
//! Text segmentation and chunking live in `skein-text` (`segment`, `chunk`), which other
//! services may use without this crate. The HTTP service, knowledge-base tables, ingestion
//! jobs and embeddings build on these pieces and on the File service.

pub mod eval;
pub mod extract;
pub mod fusion;
pub mod lexical;

use skein_core::service::ServiceName;
use skein_db::ServiceMigrations;

/// The Knowledge service's migrations (the lexical index).
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: ServiceName::Knowledge,
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};
