//! The `caja-sync` binary: offline commands, and `serve` stopping cleanly on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn caja_sync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_caja-sync"))
}

#[test]
fn store_add_and_fingerprint_work_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = caja_sync()
        .args(["store", "add", "uk", "--name", "United Kingdom", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.trim().len(), 64);

    let again = caja_sync()
        .args(["store", "add", "uk", "--name", "Again"])
        .env("CAJA_SYNC_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let fp = |dir: &std::path::Path| {
        let out = caja_sync()
            .args(["ca-fingerprint", "--data-dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let first = fp(&data);
    assert_eq!(first.len(), 64);
    assert_eq!(fp(&data), first);

    let help = caja_sync().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for opt in [
        "--data-dir",
        "--listen-quic",
        "--listen-http",
        "--currency",
        "CAJA_SYNC_DATA_DIR",
    ] {
        assert!(help.contains(opt), "serve --help lacks {opt}");
    }
}

#[cfg(unix)]
#[test]
fn serve_stops_on_sigterm() {
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
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it logs that it is serving (the signal handler is installed just after).
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
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
