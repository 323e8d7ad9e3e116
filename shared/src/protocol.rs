//! The QUIC wire protocol between a store node and the sync server.
//!
//! One bidirectional QUIC stream per connection carries length-prefixed frames:
//! `[u32 big-endian body length][body]`, where body is `[u16 big-endian protocol version]`
//! followed by the postcard encoding of a [`Frame`]. A peer that receives an unknown version
//! answers with [`Frame::Error`] ([`ErrorCode::UnsupportedVersion`]) and closes; nothing
//! panics on bad bytes.
//!
//! Compatibility rule: [`Frame`] variants are append-only (never reorder or remove: postcard
//! encodes the variant index); a change to a variant's fields bumps [`PROTOCOL_VERSION`].

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use crate::docs::DocId;
use crate::ids::{NodeId, StoreCode};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

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
    /// Node -> server, first frame: who I am and the heads of every document I have.
    Hello {
        /// The node's id.
        node: NodeId,
        /// The store the node belongs to.
        store: StoreCode,
        /// The node's secret token (walking skeleton; replaced by client certificates).
        token: String,
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
            })
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
            (heads(), "[a-z]{1,8}", ".{0,20}").prop_map(|(docs, store, token)| Frame::Hello {
                node: NodeId::new(),
                store: store.parse().unwrap(),
                token,
                docs
            }),
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
