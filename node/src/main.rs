//! `caja-node`: run a store node, enroll it, or manage a standalone node's users. Thin:
//! the options live in `caja_node::cli`. (The demo and replays are the `caja-demo` crate.)

use anyhow::Context;
use caja_node::auth::local::LocalUser;
use caja_node::cli::{Cli, Command, UserCommand, default_config_toml, read_secret};
use caja_node::enroll::{self, EnrollOptions};
use caja_node::{Node, NodeConfig};
use caja_shared::auth::secrets::Secret;
use clap::{CommandFactory, FromArgMatches};
use tokio_util::sync::CancellationToken;

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A closed stderr (`serve 2>&1 | head`) must not take requests down: the
        // default reports a failed log write with eprintln!, which then panics.
        .log_internal_errors(false)
        .try_init();
}

async fn ctrl_c(token: CancellationToken) {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested: finishing requests in flight");
    token.cancel();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    caja_node::install_crypto();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Serve(a) => {
            init_tracing("info");
            let serve_matches = matches
                .subcommand_matches("serve")
                .context("the serve subcommand's options")?;
            let a = a.layered(serve_matches)?;
            let init = a.init;
            let config = a.into_config()?;
            let fresh = !config.data_dir.join("node.sqlite").is_file();
            if fresh && !init {
                // A typo in --data-dir must not pass for the store's node.
                anyhow::bail!(
                    "{} holds no node: check --data-dir. A new node is made by `caja-node enroll` (a store of a chain), or by `caja-node user add` or `caja-node serve --init` (a standalone node)",
                    config.data_dir.display()
                );
            }
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let node = Node::open(config).await?;
            if fresh {
                // A warning, as before --init existed: logs kept at `warn` still show it.
                tracing::warn!(
                    data_dir = %node.config().data_dir.display(),
                    "no node data there: started a new, empty node (--init)"
                );
            }
            let https = node.https_config().context("setting up HTTPS (--tls)")?;
            tracing::info!(
                addr = %listener.local_addr()?,
                tls = node.config().lan_tls.enabled,
                store = %node.identity().store,
                node = %node.identity().node_id,
                sync = node.config().sync.as_ref().map(|s| s.server.as_str()).unwrap_or("standalone"),
                "caja-node serving"
            );
            let stop = CancellationToken::new();
            tokio::spawn(ctrl_c(stop.clone()));
            node.serve_with(listener, https, stop).await?;
            tracing::info!("caja-node stopped");
        }
        Command::Enroll(a) => {
            init_tracing("warn");
            let code = match a.code {
                Some(c) => Secret::new(c),
                None => read_secret("CAJA_NODE_ENROLLMENT_CODE", "enrollment code")
                    .context("give the code with --code")?,
            };
            eprintln!(
                "enrolling with the sync server at {} (gives up after 30 s)…",
                a.server
            );
            let e = enroll::enroll(&EnrollOptions {
                data_dir: a.data.data_dir.clone(),
                server: a.server,
                ca_fingerprint: a.ca_fingerprint,
                code,
                lan_names: a.lan_names,
                currency: a.currency,
            })
            .await?;
            println!(
                "enrolled: node {} of store {} with {}; client certificate valid until {}",
                e.node,
                e.store,
                e.server,
                chrono::DateTime::from_timestamp(e.cert_not_after, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            );
            println!(
                "start it with: caja-node serve --data-dir {}",
                a.data.data_dir.display()
            );
        }
        Command::User {
            command: UserCommand::Add(a),
        } => {
            init_tracing("warn");
            if let Some(e) = enroll::read_dir(&a.data.data_dir)? {
                anyhow::bail!(
                    "{} is enrolled with head office as a node of store {}: its staff come from head office (caja-sync user add, or POST /v1/users on the admin API)",
                    a.data.data_dir.display(),
                    e.store
                );
            }
            let password = if a.no_password {
                None
            } else {
                Some(read_secret(
                    "CAJA_NODE_PASSWORD",
                    &format!("password for {}", a.username),
                )?)
            };
            let pin = if a.pin {
                Some(read_secret("CAJA_NODE_PIN", &format!("PIN for {}", a.username))?)
            } else {
                None
            };
            let user = LocalUser {
                username: a.username,
                display_name: a.name,
                password,
                pin,
                roles: a.roles,
            };
            if !a.data.data_dir.join("node.sqlite").is_file() {
                // This makes a new standalone node: check the user first, so a refused
                // password or role leaves no empty node behind.
                caja_node::auth::local::prepare(&user)?;
            }
            let node = Node::open(NodeConfig {
                data_dir: a.data.data_dir.clone(),
                store: a.store,
                currency: a.currency,
                ..NodeConfig::default()
            })
            .await
            .with_context(|| format!("opening {} (stop the node first)", a.data.data_dir.display()))?;
            let created = node.add_local_user(user).await?;
            println!("user {} created (id {})", created.username, created.id);
        }
        Command::LanFingerprint(a) => {
            let a = a.layered(
                matches
                    .subcommand_matches("lan-fingerprint")
                    .context("the lan-fingerprint subcommand's options")?,
            )?;
            let cfg = caja_node::config::LanTls {
                enabled: true,
                names: a.lan_names,
                ..Default::default()
            };
            if !a.data.data_dir.join("node.sqlite").is_file() {
                anyhow::bail!(
                    "{} holds no node: check --data-dir (`caja-node enroll`, `caja-node user add` or `caja-node serve --init` creates one)",
                    a.data.data_dir.display()
                );
            }
            let id = caja_node::http::tls::identity(&a.data.data_dir, a.listen, &cfg)?;
            // First line: what Caja's clients pin (the certificate's SHA-256); second: the
            // public-key pin for `curl --pinnedpubkey`.
            println!("{}", id.fingerprint());
            if let Some(pin) = id.public_key_pin() {
                println!("{pin}");
            }
            eprintln!(
                "({}; curl: --pinnedpubkey 'sha256//…' with the second line)",
                id.source
            );
        }
        Command::PrintDefaultConfig => {
            print!("{}", default_config_toml()?);
        }
    }
    Ok(())
}
