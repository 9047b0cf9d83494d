//! A round-robin TCP proxy: the load balancer in front of the instances of a multi-instance
//! test. Each accepted connection goes to the next instance in turn and is copied both ways
//! until either side closes; a client that opens one connection per request (no keep-alive
//! pool) spreads its requests evenly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy.
pub struct RoundRobin {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    counts: Arc<Vec<AtomicUsize>>,
    task: JoinHandle<()>,
}

impl RoundRobin {
    /// Proxies to `backends` (`http://host:port` bases), in turn.
    pub async fn start(backends: &[&str]) -> RoundRobin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let addresses: Vec<String> = backends
            .iter()
            .map(|b| b.trim_start_matches("http://").to_string())
            .collect();
        let counts: Arc<Vec<AtomicUsize>> =
            Arc::new(addresses.iter().map(|_| AtomicUsize::new(0)).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let seen = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let index = next.fetch_add(1, Ordering::Relaxed) % addresses.len();
                seen[index].fetch_add(1, Ordering::Relaxed);
                let address = addresses[index].clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&address).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        RoundRobin { base, counts, task }
    }

    /// A full URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Connections sent to each backend so far, in the order given.
    pub fn connections(&self) -> Vec<usize> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
