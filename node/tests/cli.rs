//! The `caja-node` binary's settings: a configuration file under the environment under
//! flags, wrong keys and values named, `print-default-config` read back by `--config`, and
//! a data directory that holds no node refused unless `--init`.
#![allow(clippy::unwrap_used)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary, with no `CAJA_NODE_*` variable of the test's own environment.
fn caja_node() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caja-node"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CAJA_NODE_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn settings_come_from_the_file_then_the_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, "listen = \"0.0.0.0:1001\"\n").unwrap();
    let data = dir.path().join("data");
    // Plain HTTP on a non-loopback address is refused naming the address: which layer won.
    let serve = |env: &[(&str, &str)], flags: &[&str]| {
        let out = caja_node()
            .args(["serve", "--data-dir"])
            .arg(&data)
            .args(flags)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success());
        stderr(&out)
    };
    let f = file.to_str().unwrap();
    let err = serve(&[], &["--config", f]);
    assert!(err.contains("plain HTTP on 0.0.0.0:1001"), "{err}");
    let err = serve(&[("CAJA_NODE_CONFIG", f)], &[]);
    assert!(err.contains("plain HTTP on 0.0.0.0:1001"), "{err}");
    let err = serve(&[("CAJA_NODE_LISTEN", "0.0.0.0:1002")], &["--config", f]);
    assert!(err.contains("plain HTTP on 0.0.0.0:1002"), "{err}");
    let err = serve(
        &[("CAJA_NODE_LISTEN", "0.0.0.0:1002")],
        &["--config", f, "--listen", "0.0.0.0:1003"],
    );
    assert!(err.contains("plain HTTP on 0.0.0.0:1003"), "{err}");
    // A flag left at its default does not hide the file.
    let err = serve(&[], &["--config", f, "--terminal", "T1"]);
    assert!(err.contains("plain HTTP on 0.0.0.0:1001"), "{err}");
    assert!(!data.exists(), "a refused start created the data directory");
}

#[test]
fn a_wrong_key_or_value_in_the_file_is_named_with_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    for (text, expected) in [
        (
            "lisen = \"127.0.0.1:1\"\n",
            &["lisen", "expected one of", "`listen`"][..],
        ),
        ("pin_attempts = \"five\"\n", &["pin_attempts", "u32"][..]),
        ("listen = \"nowhere\"\n", &["listen", "nowhere"][..]),
        ("[auth]\npin_attempts = 5\n", &["auth"][..]),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = caja_node()
            .args(["serve", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let err = stderr(&out);
        assert!(err.contains("node.toml"), "{err}");
        for e in expected {
            assert!(err.contains(e), "{text}: {e} not in {err}");
        }
    }
}

#[test]
fn print_default_config_is_a_file_that_config_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = caja_node().arg("print-default-config").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
    assert!(text.contains("CAJA_NODE_PIN_ATTEMPTS"), "{text}");
    let file = dir.path().join("node.toml");
    std::fs::write(&file, &text).unwrap();
    // Accepted: what stops this start is the missing node, not the file.
    let out = caja_node()
        .args(["serve", "--config"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("holds no node"), "{}", stderr(&out));

    let help = String::from_utf8(caja_node().args(["serve", "--help"]).output().unwrap().stdout).unwrap();
    for opt in [
        "--config",
        "CAJA_NODE_CONFIG",
        "--init",
        "--listen",
        "CAJA_NODE_LISTEN",
        "[default: 127.0.0.1:8080]",
    ] {
        assert!(help.contains(opt), "serve --help lacks {opt}");
    }
}

/// Starts `serve` and waits until it serves; the child, killed on drop by the caller.
fn serve_until_serving(data: &Path, extra: &[&str]) -> std::process::Child {
    let mut child = caja_node()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    for line in lines {
        let line = line.unwrap();
        log.push_str(&line);
        if line.contains("caja-node serving") {
            return child;
        }
    }
    let _ = child.kill();
    child.wait().unwrap();
    panic!("serve stopped before serving: {log}");
}

#[test]
fn serve_refuses_a_data_dir_without_a_node_unless_init() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("typo");
    let out = caja_node()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("holds no node") && err.contains("--init") && err.contains("enroll"),
        "{err}"
    );
    assert!(!data.exists(), "a refused start created the data directory");

    let mut child = serve_until_serving(&data, &["--init"]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(data.join("node.sqlite").is_file());
    // Once made, the node starts without --init.
    let mut child = serve_until_serving(&data, &[]);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_refused_first_user_leaves_no_node_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shop");
    let out = caja_node()
        .args(["user", "add", "owner", "--role", "admin", "--data-dir"])
        .arg(&data)
        .env("CAJA_NODE_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
    assert!(!data.exists(), "a refused user add created the data directory");
    let out = caja_node()
        .args(["user", "add", "owner", "--role", "admin", "--data-dir"])
        .arg(&data)
        .env("CAJA_NODE_PASSWORD", "a long owner password")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(data.join("node.sqlite").is_file());
}
