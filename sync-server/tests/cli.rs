//! The `caja-sync` binary: offline commands, refusals, and `serve` stopping cleanly on
//! SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

fn caja_sync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_caja-sync"))
}

fn run(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    caja_sync()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn store_codes_nodes_users_and_fingerprint_work_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(&["store", "add", "uk", "--name", "United Kingdom"], &data);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next().unwrap().len(), 23, "{stdout}");
    assert!(lines.next().unwrap().starts_with("expires 20"), "{stdout}");

    let again = caja_sync()
        .args(["store", "add", "uk", "--name", "Again"])
        .env("CAJA_SYNC_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let code = run(&["enrollment-code", "uk", "--ttl-hours", "2"], &data);
    assert!(code.status.success());
    assert_eq!(
        String::from_utf8(code.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .len(),
        23
    );
    let bad = run(&["enrollment-code", "nope"], &data);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does not exist"));

    let list = run(&["node", "list"], &data);
    assert!(list.status.success());
    assert_eq!(
        String::from_utf8(list.stdout).unwrap().lines().count(),
        1,
        "header only"
    );
    let revoke = run(&["node", "revoke", "01900000-0000-7000-8000-000000000000"], &data);
    assert!(!revoke.status.success());
    assert!(String::from_utf8_lossy(&revoke.stderr).contains("no enrolled node"));

    // user add: the password from the environment, or a line on stdin.
    let out = caja_sync()
        .args(["user", "add", "root", "--role", "admin", "--name", "Head Office"])
        .arg("--data-dir")
        .arg(&data)
        .env("CAJA_SYNC_PASSWORD", "a long admin password")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut child = caja_sync()
        .args(["user", "add", "ana", "--role", "cashier", "--store", "uk"])
        .arg("--data-dir")
        .arg(&data)
        .env("CAJA_SYNC_PIN", "4821")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ana's long password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let short = caja_sync()
        .args(["user", "add", "bo", "--role", "cashier"])
        .arg("--data-dir")
        .arg(&data)
        .env("CAJA_SYNC_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!short.status.success());
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(err.contains("password") && !err.contains("short\""), "{err}");

    let fp = |dir: &std::path::Path| {
        let out = run(&["ca-fingerprint"], dir);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let first = fp(&data);
    assert_eq!(first.len(), 64);
    assert_eq!(fp(&data), first);
    // A mistyped data directory is refused by the commands that read one; nothing is created.
    let typo = data.with_file_name("hq-typo");
    for args in [
        vec!["ca-fingerprint"],
        vec!["node", "list"],
        vec!["enrollment-code", "uk"],
        vec!["node", "revoke", "01900000-0000-7000-8000-000000000000"],
    ] {
        let out = run(&args, &typo);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("holds no sync server"),
            "{args:?}"
        );
    }
    assert!(!typo.exists(), "a mistyped directory was created");

    let help = caja_sync().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for opt in [
        "--data-dir",
        "--listen-quic",
        "--listen-http",
        "--currency",
        "--node-cert-days",
        "--enrollments-per-minute",
        "--logins-per-minute",
        "--requests-per-second",
        "--allow-plain-http",
        "plain HTTP",
        "CAJA_SYNC_DATA_DIR",
        "CAJA_SYNC_LOGINS_PER_MINUTE",
    ] {
        assert!(help.contains(opt), "serve --help lacks {opt}");
    }
    let help = String::from_utf8(
        caja_sync()
            .args(["user", "add", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        help.contains("CAJA_SYNC_PASSWORD") && help.contains("admin API"),
        "{help}"
    );
}

#[test]
fn serve_refuses_a_public_plain_http_listener() {
    let dir = tempfile::tempdir().unwrap();
    let out = caja_sync()
        .args([
            "serve",
            "--listen-quic",
            "127.0.0.1:0",
            "--listen-http",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-plain-http"));
}

#[cfg(unix)]
#[test]
fn serve_holds_the_data_dir_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = caja_sync()
        .args([
            "serve",
            "--listen-quic",
            "127.0.0.1:0",
            "--listen-http",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Logs go to stderr; stdout is for command output.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut logs = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        logs.push_str(&line);
        if line.contains("caja-sync serving") {
            break;
        }
    }
    assert!(logs.contains("caja-sync serving"), "{logs}");
    assert!(logs.contains("ca_fingerprint"), "{logs}");
    // A new data directory (a typo, or the very first start) is said to be new.
    assert!(logs.contains("created a new one with a new CA"), "{logs}");

    // Writing users needs the documents the running server owns: refused, with the way out.
    let out = caja_sync()
        .args(["user", "add", "root", "--role", "admin"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("CAJA_SYNC_PASSWORD", "a long admin password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("admin API"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Registering a store works meanwhile.
    assert!(
        run(&["store", "add", "uk", "--name", "UK"], dir.path())
            .status
            .success()
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(rest.iter().any(|l| l.contains("caja-sync stopped")), "{rest:?}");
}
