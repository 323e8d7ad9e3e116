//! `caja-sync`: the sync server binary. Thin: parses the command line and calls the
//! library.

use anyhow::Context;
use caja_shared::auth::secrets::Secret;
use caja_sync_server::config::{Cli, Command, NodeCommand, StoreCommand, UserCommand};
use caja_sync_server::stores::{enrollment, nodes};
use caja_sync_server::{Actor, NewUser, ServerError, SyncServer, db};
use clap::{CommandFactory, FromArgMatches};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Another component may have installed it already; either way ring is the provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve(args) => {
            use std::io::IsTerminal;
            // Logs go to stderr (stdout is for command output), coloured only on a terminal.
            tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                // A closed stderr (`serve 2>&1 | head`) must not take requests down: the
                // default reports a failed log write with eprintln!, which then panics.
                .log_internal_errors(false)
                .init();
            let serve_matches = matches
                .subcommand_matches("serve")
                .context("the serve subcommand's options")?;
            let args = args.layered(serve_matches)?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(serve(args))
        }
        Command::PrintDefaultConfig => {
            print!("{}", caja_sync_server::config::default_config_toml()?);
            Ok(())
        }
        Command::Store {
            command:
                StoreCommand::Add {
                    code,
                    name,
                    ttl_hours,
                    init,
                    data,
                },
        } => {
            if !init {
                existing_server_dir(&data.data_dir)?;
            }
            let conn = open_db(&data.data_dir)?;
            caja_sync_server::stores::register(&conn, &Actor::local(), &code, &name)?;
            print_code(&conn, &code, ttl_hours)
        }
        Command::EnrollmentCode {
            store,
            ttl_hours,
            data,
        } => {
            existing_server_dir(&data.data_dir)?;
            let conn = open_db(&data.data_dir)?;
            print_code(&conn, &store, ttl_hours)
        }
        Command::Node {
            command: NodeCommand::List(data),
        } => {
            existing_server_dir(&data.data_dir)?;
            let conn = open_db(&data.data_dir)?;
            let fmt = |t: i64| {
                chrono::DateTime::from_timestamp(t, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default()
            };
            println!("node\tstore\tenrolled\tcertificate expires\trevoked");
            for n in nodes::list(&conn)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    n.node,
                    n.store,
                    fmt(n.enrolled_at),
                    fmt(n.cert_not_after),
                    n.revoked_at.map(fmt).unwrap_or_else(|| "-".into())
                );
            }
            Ok(())
        }
        Command::Node {
            command: NodeCommand::Revoke { node, data },
        } => {
            existing_server_dir(&data.data_dir)?;
            let conn = open_db(&data.data_dir)?;
            nodes::revoke(&conn, &Actor::local(), &node)?;
            println!("node {node} revoked; a running server disconnects it within a second");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    username,
                    roles,
                    stores,
                    name,
                    no_password,
                    data,
                },
        } => {
            existing_server_dir(&data.data_dir)?;
            user_add(&data.data_dir, username, roles, stores, name, no_password)
        }
        Command::CaFingerprint(data) => {
            existing_server_dir(&data.data_dir)?;
            let tls = caja_sync_server::tls::TlsMaterial::load_or_create(&data.data_dir)?;
            println!("{}", tls.ca_fingerprint());
            Ok(())
        }
    }
}

fn open_db(dir: &std::path::Path) -> anyhow::Result<rusqlite::Connection> {
    db::open(dir).with_context(|| format!("opening the database in {}", dir.display()))
}

/// Issues an enrollment code and prints it (first line) and its expiry (second line).
fn print_code(
    conn: &rusqlite::Connection,
    store: &caja_shared::ids::StoreCode,
    ttl_hours: u32,
) -> anyhow::Result<()> {
    let ttl = std::time::Duration::from_secs(u64::from(ttl_hours) * 3600);
    let code = enrollment::issue_code(conn, &Actor::local(), store, ttl)?;
    println!("{}", code.code.expose());
    println!(
        "expires {}",
        code.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    eprintln!(
        "give this one-time code to whoever enrolls the store's node (caja-node enroll --server HOST:PORT --code CODE --ca-fingerprint SHA256, or the code in CAJA_NODE_ENROLLMENT_CODE)"
    );
    Ok(())
}

/// `caja-sync user add`: the password from the environment or stdin, never a flag.
fn user_add(
    dir: &std::path::Path,
    username: String,
    roles: Vec<String>,
    stores: Vec<caja_shared::ids::StoreCode>,
    name: Option<String>,
    no_password: bool,
) -> anyhow::Result<()> {
    let password = if no_password {
        None
    } else {
        Some(
            caja_shared::auth::secrets::read_secret("CAJA_SYNC_PASSWORD", &format!("password for {username}"))
                .context("reading the password")?
                .context("no password given: set CAJA_SYNC_PASSWORD or type it, or pass --no-password for a PIN-only user")?,
        )
    };
    let pin = std::env::var("CAJA_SYNC_PIN")
        .ok()
        .filter(|p| !p.is_empty())
        .map(Secret::new);
    if password.is_none() && pin.is_none() {
        anyhow::bail!("a user needs a password or a PIN: set CAJA_SYNC_PIN for a PIN-only user");
    }
    // The currency the data dir was created with (a new one gets the serve default).
    let currency = match db::setting(&open_db(dir)?, "currency")? {
        Some(c) => c
            .parse()
            .map_err(|e| anyhow::anyhow!("stored currency {c:?}: {e:?}"))?,
        None => caja_shared::money::Currency::GBP,
    };
    let server = match SyncServer::open(dir, currency) {
        Err(ServerError::Locked(_)) => anyhow::bail!(
            "a caja-sync server is running on {}: create users through its admin API instead (POST /v1/users)",
            dir.display()
        ),
        other => other.with_context(|| format!("opening data dir {}", dir.display()))?,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let user = runtime.block_on(server.create_user(
        &Actor::local(),
        NewUser {
            display_name: name.unwrap_or_else(|| username.clone()),
            username,
            password,
            pin,
            roles,
            stores,
        },
    ))?;
    println!("{}", user.id);
    Ok(())
}

/// Refuses a data directory that holds no sync server: a typo in `--data-dir` must not
/// create a second head office (a new CA whose fingerprint no node trusts). Only `serve
/// --init` and `store add --init` create one.
fn existing_server_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if !dir.join(caja_sync_server::db::DB_FILE).is_file() {
        anyhow::bail!(
            "{} holds no sync server: check --data-dir, or create a new head office there with `caja-sync serve --init` or `caja-sync store add --init`",
            dir.display()
        );
    }
    Ok(())
}

async fn serve(args: caja_sync_server::config::ServeArgs) -> anyhow::Result<()> {
    args.validate().map_err(anyhow::Error::msg)?;
    let fresh = !args.data_dir.join(caja_sync_server::db::DB_FILE).is_file();
    if fresh && !args.init {
        existing_server_dir(&args.data_dir)?;
    }
    let server = SyncServer::open_with(&args.data_dir, args.currency, args.options())
        .with_context(|| format!("opening data dir {}", args.data_dir.display()))?;
    if fresh {
        tracing::warn!(
            data_dir = %args.data_dir.display(),
            "no sync server there: created a new one with a new CA and no users (--init)"
        );
    }
    let quic = std::net::UdpSocket::bind(args.listen_quic)
        .with_context(|| format!("binding QUIC on {}", args.listen_quic))?;
    let http = tokio::net::TcpListener::bind(args.listen_http)
        .await
        .with_context(|| format!("binding HTTP on {}", args.listen_http))?;
    let tls = match args.admin_cert() {
        Some(cert) => Some(
            caja_sync_server::http::https::admin_server_config(server.tls(), &cert)
                .context("setting up HTTPS for the admin API")?,
        ),
        None => None,
    };
    let shutdown = CancellationToken::new();
    // Register the signal handlers before announcing that we serve.
    let signals = Signals::register()?;
    tokio::spawn(signals.cancel_on_signal(shutdown.clone()));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        quic = %quic.local_addr()?,
        http = %http.local_addr()?,
        admin_api = %format!("{scheme}://{}", http.local_addr()?),
        ca_fingerprint = %server.ca_fingerprint(),
        data_dir = %args.data_dir.display(),
        "caja-sync serving"
    );
    match tls {
        Some(tls) => server.serve_https(quic, http, tls, shutdown).await?,
        None => server.serve(quic, http, shutdown).await?,
    }
    tracing::info!("caja-sync stopped");
    Ok(())
}

/// The termination signals `serve` stops on: Ctrl-C (SIGINT) and SIGTERM.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Cancels `shutdown` when a signal arrives.
    async fn cancel_on_signal(mut self, shutdown: CancellationToken) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested");
        shutdown.cancel();
    }
}
