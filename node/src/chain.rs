//! An in-process chain: one sync server and one node per store, each with its own SQLite
//! file, talking real QUIC and real HTTP on loopback. The demo and the replays run on it;
//! so can tests.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use caja_shared::docs::DocId;
use caja_shared::ids::StoreCode;
use caja_shared::money::Currency;
use caja_sync_server::SyncServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::Node;
use crate::config::{NodeConfig, SyncTarget};

/// One store's node in the chain.
pub struct ChainNode {
    /// Store code.
    pub store: StoreCode,
    /// Display name.
    pub name: String,
    /// The node (library handle).
    pub node: Node,
    /// Base URL of its REST API, e.g. `http://127.0.0.1:40123`.
    pub url: String,
}

/// A running chain.
pub struct Chain {
    /// The sync server (library handle).
    pub server: SyncServer,
    /// Base URL of the server's admin API.
    pub server_url: String,
    /// The server's QUIC address.
    pub server_quic: SocketAddr,
    /// The nodes, in store-code order.
    pub nodes: Vec<ChainNode>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Persisted node tokens, so a chain can be restarted on the same data directory.
fn load_tokens(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

impl Chain {
    /// Starts a server in `dir/server` and one node per store in `dir/nodes/<store>`, all
    /// on `127.0.0.1` with ephemeral ports, and connects the nodes.
    ///
    /// # Errors
    /// When a database cannot be opened or a port bound.
    pub async fn start(
        dir: &Path,
        stores: &[(StoreCode, String)],
        currency: Currency,
    ) -> anyhow::Result<Chain> {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let server = SyncServer::open(&dir.join("server"), currency).context("opening the sync server")?;
        let quic = UdpSocket::bind("127.0.0.1:0").context("binding QUIC")?;
        let server_quic = quic.local_addr()?;
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding server HTTP")?;
        let server_url = format!("http://{}", http.local_addr()?);
        {
            let (s, stop) = (server.clone(), shutdown.clone());
            tasks.spawn(async move {
                if let Err(e) = s.serve(quic, http, stop).await {
                    tracing::error!(error = %e, "sync server stopped");
                }
            });
        }
        let tokens_path = dir.join("tokens.json");
        let mut tokens = load_tokens(&tokens_path)?;
        let mut nodes = Vec::new();
        for (code, name) in stores {
            let token = match tokens.get(code.as_str()) {
                Some(t) => t.clone(),
                None => {
                    let t = server
                        .create_store(code.clone(), name)
                        .await
                        .with_context(|| format!("creating store {code}"))?;
                    tokens.insert(code.to_string(), t.clone());
                    std::fs::write(&tokens_path, serde_json::to_vec_pretty(&tokens)?)?;
                    t
                }
            };
            let config = NodeConfig {
                data_dir: dir.join("nodes").join(code.as_str()),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                store: code.clone(),
                currency,
                sync: Some(SyncTarget {
                    server: server_quic.to_string(),
                    ca_fingerprint: server.ca_fingerprint(),
                    token,
                }),
                ..NodeConfig::default()
            };
            let node = Node::open(config)
                .await
                .with_context(|| format!("opening node {code}"))?;
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let (n, stop) = (node.clone(), shutdown.clone());
            tasks.spawn(async move {
                if let Err(e) = n.serve(listener, stop).await {
                    tracing::error!(error = %e, "node stopped");
                }
            });
            nodes.push(ChainNode {
                store: code.clone(),
                name: name.clone(),
                node,
                url,
            });
        }
        Ok(Chain {
            server,
            server_url,
            server_quic,
            nodes,
            shutdown,
            tasks,
        })
    }

    /// The node of a store.
    pub fn node(&self, store: &StoreCode) -> Option<&ChainNode> {
        self.nodes.iter().find(|n| &n.store == store)
    }

    /// Waits until every node whose link is enabled has the server's catalog.
    ///
    /// # Errors
    /// After `timeout`, naming the nodes still behind.
    pub async fn wait_catalog(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let want = self.server.catalog_heads().await?;
            let mut behind = Vec::new();
            for n in self.nodes.iter().filter(|n| n.node.link().enabled()) {
                if node_catalog_heads(&n.node).await? != want {
                    behind.push(n.store.to_string());
                }
            }
            if behind.is_empty() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!(
                    "catalog not replicated after {timeout:?} to: {}",
                    behind.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until no node has facts the server has not acknowledged and the server holds
    /// every fact the nodes recorded. Returns how long it took.
    ///
    /// # Errors
    /// After `timeout`, with the counts still missing.
    pub async fn wait_converged(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let mut pending = 0u64;
            let mut recorded = 0u64;
            for n in &self.nodes {
                let (p, r) = n
                    .node
                    .db()
                    .read(|c| -> Result<(i64, i64), crate::store::StoreError> {
                        Ok(c.query_row(
                            "SELECT COALESCE(SUM(acked = 0), 0), COUNT(*) FROM facts WHERE local = 1",
                            [],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )?)
                    })
                    .await?;
                pending += p as u64;
                recorded += r as u64;
            }
            let at_server = self.server.fact_count().await?;
            if pending == 0 && at_server >= recorded {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!(
                    "not converged after {timeout:?}: {pending} facts pending at nodes, server has {at_server} of {recorded}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every node and the server and waits for them.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Data directory layout: where a store's node keeps its files.
    pub fn node_dir(dir: &Path, store: &StoreCode) -> PathBuf {
        dir.join("nodes").join(store.as_str())
    }
}

/// The sorted hex heads of a node's catalog document.
///
/// # Errors
/// Storage failures.
pub async fn node_catalog_heads(node: &Node) -> anyhow::Result<Vec<String>> {
    let heads = node
        .db()
        .read(|c| -> Result<Vec<String>, crate::store::StoreError> {
            let mut h: Vec<String> = caja_shared::docstore::all_heads(c)?
                .into_iter()
                .filter(|(d, _)| *d == DocId::Catalog)
                .flat_map(|(_, h)| h.into_iter().map(|x| x.to_string()))
                .collect();
            h.sort();
            Ok(h)
        })
        .await?;
    Ok(heads)
}
