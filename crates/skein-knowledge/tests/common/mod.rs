//! Fresh, migrated databases for the index tests: a SQLite file and a PostgreSQL database of
//! their own (`SKEIN_TEST_POSTGRES_URL`, as the rest of the suite uses).

#![allow(dead_code)]

use skein_db::sqlx::{Connection, Executor, PgConnection};
use skein_db::{Backend, Db};

/// A migrated database that is dropped (PostgreSQL) or deleted (SQLite) by [`TestDb::close`].
pub struct TestDb {
    pub db: Db,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn admin_url() -> String {
    std::env::var("SKEIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    /// A fresh database of `backend` with the Knowledge migrations applied.
    pub async fn new(backend: Backend) -> TestDb {
        let (url, pg_name, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
                (url, None, Some(dir))
            }
            Backend::Postgres => {
                let admin = admin_url();
                let name = format!("skein_knowledge_{}", uuid::Uuid::now_v7().simple());
                let mut conn = PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL is required ({admin}): {e}"));
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                conn.close().await.ok();
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                (format!("{base}/{name}"), Some(name), None)
            }
        };
        let db = Db::connect(&url, 4).await.unwrap();
        db.migrate(&[&skein_knowledge::MIGRATIONS]).await.unwrap();
        TestDb {
            db,
            pg_name,
            _dir: dir,
        }
    }

    /// Closes the pool and drops a PostgreSQL database.
    pub async fn close(self) {
        self.db.close().await;
        if let Some(name) = self.pg_name {
            let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .ok();
        }
    }
}
