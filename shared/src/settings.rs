//! Layered settings for both binaries: built-in defaults, then a TOML file (`--config`),
//! then the environment, then flags. One settings struct is both the clap arguments and
//! the file's shape (`#[serde(default, deny_unknown_fields)]`); these functions do the
//! layering for any such struct.
//!
//! - [`defaults`]: the struct as `--help` shows it (clap's defaults, environment off).
//! - [`read_file`] / [`parse_toml`]: a file, with errors that name the key and what is allowed.
//! - [`layer`] with [`explicit`]: the options given in the environment or on the command
//!   line over the file's (an option left at its default does not hide the file).
//! - [`commented_toml`] with [`key_docs`]: the defaults as a commented file that
//!   [`read_file`] reads back unchanged (`print-default-config`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::parser::{ArgMatches, ValueSource};
use clap::{Args, FromArgMatches};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// Why a settings file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The configuration file could not be read.
    #[error("reading the configuration file {}: {source}", path.display())]
    Read {
        /// The file given with `--config`.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The configuration file is not TOML, has a key that is not a setting, or a value of
    /// the wrong kind.
    #[error("configuration file {}: {message}", path.display())]
    File {
        /// The file given with `--config`.
        path: PathBuf,
        /// The key and what is allowed there.
        message: String,
    },
    /// The settings could not be rendered or combined as TOML (a bug, not a user error).
    #[error("combining the settings: {0}")]
    Layer(String),
}

/// The settings struct `A` with clap's defaults, the environment not read: what `--help`
/// shows, and the base a file is read over.
///
/// # Errors
/// [`SettingsError::Layer`] when an option has neither a default nor is optional, or a
/// default does not parse (a bug; each binary has a test that its defaults parse).
pub fn defaults<A: Args + FromArgMatches>() -> Result<A, SettingsError> {
    let cmd = A::augment_args(clap::Command::new("settings")).mut_args(|a| a.env(None::<&str>));
    let matches = cmd
        .try_get_matches_from(["settings"])
        .map_err(|e| SettingsError::Layer(e.to_string()))?;
    A::from_arg_matches(&matches).map_err(|e| SettingsError::Layer(e.to_string()))
}

/// Reads a TOML settings file into `T`, whose missing keys take their defaults.
///
/// # Errors
/// [`SettingsError::Read`] when the file cannot be read; [`SettingsError::File`] naming
/// the key when it is not TOML, holds a key `T` does not have (listing the ones it has) or
/// a value of the wrong type.
pub fn read_file<T: DeserializeOwned>(path: &Path) -> Result<T, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_toml(&text).map_err(|message| SettingsError::File {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses TOML text into `T`; the error names the key path and what is allowed there.
///
/// # Errors
/// A message for the user.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner().to_string();
        if key == "." {
            inner
        } else {
            format!("key `{key}`: {inner}")
        }
    })
}

/// Puts the settings given explicitly on the command line or in the environment over
/// `base` (the defaults, or a file's settings): every key of `given` for which
/// `explicit(key)` holds replaces `base`'s.
///
/// # Errors
/// [`SettingsError::Layer`] if the settings cannot be expressed in TOML (a bug).
pub fn layer<T: Serialize + DeserializeOwned>(
    base: &T,
    given: &T,
    explicit: impl Fn(&str) -> bool,
) -> Result<T, SettingsError> {
    let err = |e: &dyn std::fmt::Display| SettingsError::Layer(e.to_string());
    let mut table = toml::Table::try_from(base).map_err(|e| err(&e))?;
    for (key, value) in toml::Table::try_from(given).map_err(|e| err(&e))? {
        if explicit(&key) {
            table.insert(key, value);
        }
    }
    toml::Value::Table(table).try_into().map_err(|e| err(&e))
}

/// Whether the option `id` was given on the command line or in the environment (rather
/// than left at its default).
pub fn explicit(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// One key of a commented settings file: its name, the lines of its comment, and an
/// example value for a key without a default.
#[derive(Debug, Clone)]
pub struct KeyDoc {
    /// The key, e.g. `listen`.
    pub key: String,
    /// Comment lines (without `#`).
    pub comment: Vec<String>,
    /// What to show, commented out, when the key has no default.
    pub example: String,
}

/// The comment of every long option of `A` except `skip`, for a commented settings file:
/// its help, then its flag and environment variable.
pub fn key_docs<A: Args>(skip: &[&str]) -> Vec<KeyDoc> {
    let cmd = A::augment_args(clap::Command::new("settings"));
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some() && !skip.contains(&a.get_id().as_str()))
        .map(|a| {
            let help = a
                .get_long_help()
                .or(a.get_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            let mut comment = wrap(&help, 86);
            let mut origin = format!("flag --{}", a.get_long().unwrap_or_default());
            if let Some(env) = a.get_env() {
                origin.push_str(&format!(", environment {}", env.to_string_lossy()));
            }
            comment.push(origin);
            let name = a
                .get_value_names()
                .and_then(|n| n.first())
                .map(ToString::to_string)
                .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
            KeyDoc {
                key: a.get_id().as_str().to_string(),
                comment,
                example: format!("\"<{name}>\""),
            }
        })
        .collect()
}

/// Renders `defaults` as a TOML file with `header` and a comment over every key, in the
/// order of `keys`; keys without a value are shown commented out with their example.
/// Reading the result back with [`read_file`] gives `defaults`.
///
/// # Errors
/// [`SettingsError::Layer`] if `defaults` cannot be expressed in TOML (a bug).
pub fn commented_toml<T: Serialize>(
    header: &str,
    defaults: &T,
    keys: &[KeyDoc],
) -> Result<String, SettingsError> {
    let mut table = toml::Table::try_from(defaults).map_err(|e| SettingsError::Layer(e.to_string()))?;
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
    }
    for k in keys {
        out.push('\n');
        for line in &k.comment {
            out.push_str(&format!("# {line}\n"));
        }
        match table.remove(&k.key) {
            Some(v) => out.push_str(&format!("{} = {v}\n", k.key)),
            None => out.push_str(&format!("# {} = {}\n", k.key, k.example)),
        }
    }
    // Keys without a flag still go in, so the file reads back unchanged.
    for (key, v) in table {
        out.push_str(&format!("\n{key} = {v}\n"));
    }
    Ok(out)
}

/// Serde: a listen address as the flags take it, `IP:PORT` or `HOST:PORT`
/// ([`crate::net::parse_listen`]).
///
/// # Errors
/// The parser's message, naming the text and what is wrong.
pub fn de_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    crate::net::parse_listen(&text).map_err(serde::de::Error::custom)
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces_and_keeps_paragraphs() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("one\ntwo", 80), ["one", "two"]);
    }

    #[test]
    fn toml_errors_name_the_key() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            port: u16,
        }
        let e = parse_toml::<S>("port = \"x\"").unwrap_err();
        assert!(e.contains("port"), "{e}");
        let e = parse_toml::<S>("prot = 1").unwrap_err();
        assert!(e.contains("prot") && e.contains("port"), "{e}");
    }
}
