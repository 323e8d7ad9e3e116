//! The QUIC wire protocol between a store node and the sync server.
//!
//! One bidirectional QUIC stream per connection carries length-prefixed frames:
//! `[u32 big-endian body length][body]`, where body is `[u16 big-endian protocol version]`
//! followed by the postcard encoding of a [`Frame`]. A peer that receives an unknown version
//! answers with [`Frame::Error`] ([`ErrorCode::UnsupportedVersion`]) and closes; nothing
//! panics on bad bytes.
//!
//! Who the node is comes from its client certificate (mutual TLS), never from a frame: a
//! connection without one may only [`Frame::Enroll`].
//!
//! Compatibility rule: [`Frame`] variants are append-only (never reorder or remove: postcard
//! encodes the variant index); a change to a variant's fields bumps [`PROTOCOL_VERSION`].
//! Version 2 removed the store token from `Hello` and added enrollment and renewal.
//! Version 3 added the chain currency to `Enrolled`.

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use crate::auth::secrets::Secret;
use crate::docs::DocId;
use crate::ids::{NodeId, StoreCode};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 3;

/// The TLS ALPN protocol id (RFC 7301) of Caja sync.
pub const ALPN: &[u8] = b"caja-sync/1";

/// Largest frame body accepted, in bytes (32 MiB). A ledger day is far below this; a
/// larger frame is a protocol violation.
pub const MAX_FRAME_BYTES: usize = 32 << 20;

/// Errors decoding frames.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The length prefix announces more than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    /// The frame is shorter than its version header.
    #[error("frame too short ({0} bytes)")]
    Truncated(usize),
    /// The peer speaks another protocol version.
    #[error("protocol version {0} is not supported (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u16),
    /// The body is not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Why a peer refused or ended a session; sent in [`Frame::Error`] and used as the QUIC
/// application close code (`code as u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum ErrorCode {
    /// The peer speaks a protocol version we do not.
    UnsupportedVersion = 1,
    /// Bad or missing credentials.
    Unauthorized = 2,
    /// The peer asked for a document it may not see.
    Forbidden = 3,
    /// A frame or sync message could not be decoded.
    Malformed = 4,
    /// The frame arrived out of order (e.g. a Sync before Hello).
    UnexpectedFrame = 5,
    /// A fault on our side; details are in our log.
    Internal = 6,
    /// Too many attempts (enrollment) from this address; try again later.
    RateLimited = 7,
}

/// A document and its current heads (automerge change hashes, 32 bytes each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocHeads {
    /// The document.
    pub doc: DocId,
    /// Its heads; empty for a document with no changes.
    pub heads: Vec<[u8; 32]>,
}

impl DocHeads {
    /// Builds the wire form from automerge heads.
    pub fn new(doc: DocId, heads: &[ChangeHash]) -> Self {
        Self {
            doc,
            heads: heads.iter().map(|h| h.0).collect(),
        }
    }

    /// The heads as automerge hashes.
    pub fn change_hashes(&self) -> Vec<ChangeHash> {
        self.heads.iter().map(|h| ChangeHash(*h)).collect()
    }
}

/// One message on the sync stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Node -> server, first frame of a sync session (on a connection with the node's
    /// client certificate): who I think I am and the heads of every document I have. The
    /// server refuses it unless `node` and `store` are the ones its certificate was issued
    /// to.
    Hello {
        /// The node's id.
        node: NodeId,
        /// The store the node belongs to.
        store: StoreCode,
        /// Heads of the node's documents.
        docs: Vec<DocHeads>,
    },
    /// Server -> node, answer to Hello: the heads of every document the node may see.
    Welcome {
        /// Heads of the server's documents for this node.
        docs: Vec<DocHeads>,
    },
    /// Either way: one automerge sync message for one document.
    Sync {
        /// The document.
        doc: DocId,
        /// The encoded `automerge::sync::Message`.
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
    },
    /// Either way: the session is refused or ends; the sender closes after it.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// New node -> server, first and only frame of an enrollment connection (no client
    /// certificate): the one-time code head office issued and certificate signing requests
    /// for keys the node generated itself (the private keys never leave the node).
    Enroll {
        /// The enrollment code (single use, expires).
        code: Secret,
        /// PKCS#10 CSR (DER) for the node's QUIC client certificate.
        #[serde(with = "serde_bytes")]
        csr: Vec<u8>,
        /// Optionally a CSR (DER) for the node's LAN server certificate, and the DNS names
        /// and IP addresses it should be valid for.
        lan: Option<LanRequest>,
    },
    /// Server -> new node: the enrollment succeeded.
    Enrolled {
        /// The node id head office assigned.
        node: NodeId,
        /// The store the code was issued for.
        store: StoreCode,
        /// The client certificate (DER), signed by the sync server's CA.
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
        /// The CA certificate (DER); its SHA-256 is the fingerprint the node pinned.
        #[serde(with = "serde_bytes")]
        ca: Vec<u8>,
        /// When the client certificate expires, seconds since the epoch (UTC).
        not_after: i64,
        /// The LAN server certificate (DER), when one was requested.
        #[serde(with = "serde_bytes")]
        lan_certificate: Option<Vec<u8>>,
        /// The chain currency (ISO 4217 code): every amount the node records is in it.
        currency: String,
    },
    /// Node -> server during a sync session: a CSR (DER) for a fresh key, to replace the
    /// client certificate before it expires.
    Renew {
        /// PKCS#10 CSR (DER).
        #[serde(with = "serde_bytes")]
        csr: Vec<u8>,
    },
    /// Server -> node: the renewed client certificate. The old one stays valid until it
    /// expires, so nothing is interrupted.
    Renewed {
        /// The new client certificate (DER).
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
        /// When it expires, seconds since the epoch (UTC).
        not_after: i64,
    },
}

/// What a node asks for its LAN (REST over TLS) certificate at enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanRequest {
    /// PKCS#10 CSR (DER) for the LAN key.
    #[serde(with = "serde_bytes")]
    pub csr: Vec<u8>,
    /// DNS names and IP addresses (as text) the certificate must name; at most 16.
    pub names: Vec<String>,
}

/// Encodes a frame with its length prefix and version header, ready to write.
///
/// # Errors
/// [`ProtocolError::TooLarge`] when the body would exceed [`MAX_FRAME_BYTES`].
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, ProtocolError> {
    let mut body = PROTOCOL_VERSION.to_be_bytes().to_vec();
    body = postcard::to_extend(frame, body)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::TooLarge(body.len()));
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks a length prefix before reading the body.
///
/// # Errors
/// [`ProtocolError::TooLarge`] beyond [`MAX_FRAME_BYTES`].
pub fn check_length(prefix: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_BYTES {
        Err(ProtocolError::TooLarge(len))
    } else {
        Ok(len)
    }
}

/// Decodes a frame body (without the length prefix).
///
/// # Errors
/// [`ProtocolError::Truncated`], [`ProtocolError::UnsupportedVersion`] or
/// [`ProtocolError::Malformed`].
pub fn decode_body(body: &[u8]) -> Result<Frame, ProtocolError> {
    if body.len() < 2 {
        return Err(ProtocolError::Truncated(body.len()));
    }
    let version = u16::from_be_bytes([body[0], body[1]]);
    if version != PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    let (frame, rest) = postcard::take_from_bytes(&body[2..])?;
    if !rest.is_empty() {
        return Err(ProtocolError::Malformed(postcard::Error::DeserializeBadEncoding));
    }
    Ok(frame)
}

/// Incremental decoder for a byte stream: push bytes as they arrive, pop whole frames.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    /// Any [`ProtocolError`]; the stream is unusable afterwards.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = check_length([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let frame = decode_body(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        frame.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_doc() -> impl Strategy<Value = DocId> {
        prop_oneof![
            Just(DocId::Catalog),
            ("[a-z][a-z0-9-]{0,10}", 2000i32..2030, 1u32..13, 1u32..29).prop_map(|(s, y, m, d)| {
                DocId::Ledger {
                    store: s.parse().unwrap(),
                    date: chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap(),
                }
            }),
            "[a-z][a-z0-9-]{0,10}".prop_map(|s| DocId::Store {
                store: s.parse().unwrap()
            }),
        ]
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        let heads = || {
            proptest::collection::vec(
                (arb_doc(), proptest::collection::vec(any::<[u8; 32]>(), 0..3)),
                0..4,
            )
            .prop_map(|v| {
                v.into_iter()
                    .map(|(doc, heads)| DocHeads { doc, heads })
                    .collect::<Vec<_>>()
            })
        };
        prop_oneof![
            (heads(), "[a-z]{1,8}").prop_map(|(docs, store)| Frame::Hello {
                node: NodeId::new(),
                store: store.parse().unwrap(),
                docs
            }),
            (
                ".{0,20}",
                proptest::collection::vec(any::<u8>(), 0..50),
                proptest::option::of(proptest::collection::vec("[a-z.]{1,10}", 0..3))
            )
                .prop_map(|(code, csr, names)| Frame::Enroll {
                    code: Secret::new(code),
                    lan: names.map(|names| LanRequest {
                        csr: csr.clone(),
                        names
                    }),
                    csr,
                }),
            (
                proptest::collection::vec(any::<u8>(), 0..50),
                any::<i64>(),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..9))
            )
                .prop_map(|(certificate, not_after, lan_certificate)| Frame::Enrolled {
                    node: NodeId::new(),
                    store: "s".parse().unwrap(),
                    ca: certificate.clone(),
                    certificate,
                    not_after,
                    lan_certificate,
                    currency: "GBP".into(),
                }),
            proptest::collection::vec(any::<u8>(), 0..50).prop_map(|csr| Frame::Renew { csr }),
            (proptest::collection::vec(any::<u8>(), 0..50), any::<i64>()).prop_map(
                |(certificate, not_after)| Frame::Renewed {
                    certificate,
                    not_after
                }
            ),
            heads().prop_map(|docs| Frame::Welcome { docs }),
            (arb_doc(), proptest::collection::vec(any::<u8>(), 0..200))
                .prop_map(|(doc, message)| Frame::Sync { doc, message }),
            ".{0,30}".prop_map(|message| Frame::Error {
                code: ErrorCode::Forbidden,
                message
            }),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip(frames in proptest::collection::vec(arb_frame(), 1..5), split in 1usize..50) {
            let bytes: Vec<u8> = frames.iter().flat_map(|f| encode_frame(f).unwrap()).collect();
            let mut dec = FrameDecoder::new();
            let mut out = Vec::new();
            for chunk in bytes.chunks(split) {
                dec.push(chunk);
                while let Some(f) = dec.next_frame().unwrap() { out.push(f); }
            }
            prop_assert_eq!(out, frames);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_body(&bytes);
            let mut dec = FrameDecoder::new();
            dec.push(&bytes);
            let _ = dec.next_frame();
        }
    }

    #[test]
    fn refuses_other_versions_and_huge_frames() {
        let mut body = encode_frame(&Frame::Welcome { docs: vec![] }).unwrap()[4..].to_vec();
        body[1] = 9;
        assert!(matches!(
            decode_body(&body),
            Err(ProtocolError::UnsupportedVersion(9))
        ));
        assert!(matches!(
            check_length([0xff, 0xff, 0xff, 0xff]),
            Err(ProtocolError::TooLarge(_))
        ));
        assert!(matches!(decode_body(&[0]), Err(ProtocolError::Truncated(1))));
    }
}
