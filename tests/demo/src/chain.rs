//! An in-process chain: one sync server and one node per store, each with its own SQLite
//! file, talking real QUIC and real HTTP on loopback. The demo and the replays run on it;
//! so can tests.
//!
//! Setting it up goes the way a real roll-out does: head office registers each store and
//! issues an enrollment code; each node enrolls with it (keys made on the node, a client
//! certificate from the server's CA) and from then on syncs over mutual TLS; head office
//! creates a manager (password and PIN) and a cashier (PIN) per store; their credentials
//! replicate to the store's node, where the manager logs in. The generated credentials
//! are kept in `DIR/staff.json` (mode 0600) so a chain restarted on the same directory
//! logs in again; they are demo credentials and the demo prints one set.

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

use caja_shared::auth::secrets::{self, Secret};
use caja_sync_server::NewUser;

use crate::client::NodeClient;
use caja_node::Node;
use caja_node::config::{NodeConfig, SyncTarget};
use caja_node::enroll::{self, EnrollOptions};

/// Credentials of one member of a store's demo staff.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct StaffLogin {
    /// Username.
    pub username: String,
    /// Password, if the user has one.
    pub password: Option<Secret>,
    /// PIN.
    pub pin: Secret,
}

impl std::fmt::Debug for StaffLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffLogin")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A store's demo staff.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoreStaff {
    /// The store manager (roles `manager`): password and PIN.
    pub manager: StaffLogin,
    /// A cashier (role `cashier`): PIN only.
    pub cashier: StaffLogin,
}

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
    /// A client logged in as the store's manager.
    pub manager: NodeClient,
    /// The store's demo staff.
    pub staff: StoreStaff,
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
    /// Head office's admin (role admin, tied to no store): logs in at the admin API.
    pub hq_admin: StaffLogin,
    /// The card provider simulator head office and the nodes use (in memory, per run).
    pub payments: caja_payments::sim::SimServer,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Persisted demo staff, so a chain can be restarted on the same data directory.
fn load_staff(path: &Path) -> anyhow::Result<BTreeMap<String, StoreStaff>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A random PIN of `digits` digits (uniform: rejection of the biased top of the byte).
fn random_pin(digits: usize) -> Secret {
    let mut out = String::new();
    while out.len() < digits {
        let b: u8 = rand::random();
        if b < 250 {
            out.push(char::from(b'0' + b % 10));
        }
    }
    Secret::new(out)
}

fn new_staff(code: &StoreCode) -> StoreStaff {
    StoreStaff {
        manager: StaffLogin {
            username: format!("mgr-{code}"),
            password: Some(Secret::new(secrets::random_token()[..24].to_string())),
            pin: random_pin(6),
        },
        cashier: StaffLogin {
            username: format!("cashier-{code}"),
            password: None,
            pin: random_pin(6),
        },
    }
}

impl Chain {
    /// Starts a server in `dir/server`; for each store registers it, enrolls its node in
    /// `dir/nodes/<store>` (first start only), creates its staff at head office (first
    /// start only), starts the node on `127.0.0.1` with an ephemeral port, waits until
    /// the staff have replicated and logs the manager in.
    ///
    /// # Errors
    /// When a database cannot be opened, a port bound, an enrollment or login fails, or
    /// the staff do not reach a node within a minute.
    pub async fn start(
        dir: &Path,
        stores: &[(StoreCode, String)],
        currency: Currency,
    ) -> anyhow::Result<Chain> {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // A card provider for the chain: the simulator, on its own loopback port.
        let payments = caja_payments::sim::SimServer::start(caja_payments::sim::SimConfig::default())
            .await
            .context("starting the card provider simulator")?;
        const DEMO_PROVIDER_KEY: &str = "sk_test_caja_demo";
        // Every node of this chain connects from 127.0.0.1: lift the per-address limits.
        let options = caja_sync_server::ServerOptions {
            enrollments_per_minute: 100_000,
            connections_per_ip: 100_000,
            handshakes_per_minute: 100_000,
            payment_provider: Some(caja_sync_server::ProviderOptions::new(
                payments.base_url(),
                DEMO_PROVIDER_KEY,
            )),
            ..Default::default()
        };
        let server = SyncServer::open_with(&dir.join("server"), currency, options)
            .context("opening the sync server")?;
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
        let staff_path = dir.join("staff.json");
        let mut staff = load_staff(&staff_path)?;
        // Head office: stores and staff (hashing runs concurrently on blocking threads).
        let mut created = Vec::new();
        for (code, name) in stores {
            if staff.contains_key(code.as_str()) {
                continue;
            }
            match server
                .create_store(&caja_sync_server::Actor::local(), code.clone(), name)
                .await
            {
                Ok(()) | Err(caja_sync_server::ServerError::StoreExists(_)) => {}
                Err(e) => return Err(e).with_context(|| format!("creating store {code}")),
            }
            let st = new_staff(code);
            let (s, c) = (server.clone(), code.clone());
            let (mgr, cashier) = (st.manager.clone(), st.cashier.clone());
            let name = name.clone();
            created.push(tokio::spawn(async move {
                s.create_user(
                    &caja_sync_server::Actor::local(),
                    NewUser {
                        username: mgr.username.clone(),
                        display_name: format!("Manager, {name}"),
                        password: mgr.password.clone(),
                        pin: Some(mgr.pin.clone()),
                        roles: vec!["manager".into()],
                        stores: vec![c.clone()],
                    },
                )
                .await?;
                s.create_user(
                    &caja_sync_server::Actor::local(),
                    NewUser {
                        username: cashier.username.clone(),
                        display_name: format!("Cashier, {name}"),
                        password: None,
                        pin: Some(cashier.pin.clone()),
                        roles: vec!["cashier".into()],
                        stores: vec![c],
                    },
                )
                .await
            }));
            staff.insert(code.to_string(), st);
        }
        for t in created {
            t.await
                .context("creating staff")?
                .context("creating staff at head office")?;
        }
        caja_shared::auth::tokens::write_secret_file(&staff_path, &serde_json::to_vec_pretty(&staff)?)
            .with_context(|| format!("writing {}", staff_path.display()))?;
        let hq_path = dir.join("hq-admin.json");
        let hq_admin: StaffLogin = match std::fs::read(&hq_path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("reading {}", hq_path.display()))?,
            Err(_) => {
                let admin = StaffLogin {
                    username: "hq-admin".into(),
                    password: Some(Secret::new(secrets::random_token()[..24].to_string())),
                    pin: random_pin(8),
                };
                server
                    .create_user(
                        &caja_sync_server::Actor::local(),
                        NewUser {
                            username: admin.username.clone(),
                            display_name: "Head office".into(),
                            password: admin.password.clone(),
                            pin: None,
                            roles: vec!["admin".into()],
                            stores: Vec::new(),
                        },
                    )
                    .await
                    .context("creating head office's admin")?;
                caja_shared::auth::tokens::write_secret_file(&hq_path, &serde_json::to_vec_pretty(&admin)?)
                    .with_context(|| format!("writing {}", hq_path.display()))?;
                admin
            }
        };
        let mut nodes = Vec::new();
        for (code, name) in stores {
            let data_dir = dir.join("nodes").join(code.as_str());
            if enroll::read_dir(&data_dir)?.is_none() {
                let code_for = server
                    .enrollment_code(&caja_sync_server::Actor::local(), code, Duration::from_secs(3600))
                    .await
                    .with_context(|| format!("issuing an enrollment code for {code}"))?;
                enroll::enroll(&EnrollOptions {
                    data_dir: data_dir.clone(),
                    server: server_quic.to_string(),
                    ca_fingerprint: server.ca_fingerprint(),
                    code: code_for.code,
                    lan_names: Vec::new(),
                    currency: Some(currency),
                })
                .await
                .with_context(|| format!("enrolling the node of {code}"))?;
            }
            let mut config = NodeConfig {
                data_dir,
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                store: code.clone(),
                currency,
                sync: Some(SyncTarget {
                    server: server_quic.to_string(),
                    ca_fingerprint: server.ca_fingerprint(),
                }),
                payments: caja_node::config::PaymentProviderSettings {
                    url: Some(payments.base_url()),
                    key: Some(DEMO_PROVIDER_KEY.to_string().into()),
                },
                ..NodeConfig::default()
            };
            // One process drives every store from loopback: no per-client rate limit.
            config.limits.requests_per_second = 1_000_000;
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
            let st = staff
                .get(code.as_str())
                .cloned()
                .with_context(|| format!("no staff for {code}"))?;
            nodes.push(ChainNode {
                store: code.clone(),
                name: name.clone(),
                manager: NodeClient::new(&url, None)?,
                node,
                url,
                staff: st,
            });
        }
        for n in &nodes {
            wait_for_staff(&n.node, &n.staff.manager.username, Duration::from_secs(60)).await?;
            let password = n
                .staff
                .manager
                .password
                .clone()
                .unwrap_or_else(|| Secret::new(""));
            n.manager
                .login_password(&n.staff.manager.username, &password)
                .await
                .with_context(|| format!("logging {} in at {}", n.staff.manager.username, n.store))?;
        }
        Ok(Chain {
            server,
            server_url,
            server_quic,
            nodes,
            hq_admin,
            payments,
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
                    .read(|c| -> Result<(i64, i64), caja_node::store::StoreError> {
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
        if let Err(e) = self.payments.stop().await {
            tracing::warn!(error = %e, "the card provider simulator stopped with an error");
        }
    }

    /// Data directory layout: where a store's node keeps its files.
    pub fn node_dir(dir: &Path, store: &StoreCode) -> PathBuf {
        dir.join("nodes").join(store.as_str())
    }
}

/// Waits until a username is staff at a node (the store document has replicated).
///
/// # Errors
/// After `timeout`.
pub async fn wait_for_staff(node: &Node, username: &str, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let u = username.to_string();
        let found = node
            .db()
            .read(move |c| caja_node::auth::staff::by_username(c, &u))
            .await?
            .is_some();
        if found {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!(
                "{username} did not reach the node of {} within {timeout:?}",
                node.identity().store
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sorted hex heads of a node's catalog document.
///
/// # Errors
/// Storage failures.
pub async fn node_catalog_heads(node: &Node) -> anyhow::Result<Vec<String>> {
    let heads = node
        .db()
        .read(|c| -> Result<Vec<String>, caja_node::store::StoreError> {
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
