//! Frames on QUIC streams: `[u32 BE length][body]` with the body decoded by
//! [`crate::protocol::decode_body`]. Used by head office and by the node.
//!
//! The length is checked against [`protocol::MAX_FRAME_BYTES`] before anything is allocated, and
//! frames are read one at a time, so a slow reader pushes back on its peer through QUIC
//! flow control.

use crate::protocol::{self, Frame, ProtocolError};

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The bytes are not a valid frame (too large, wrong version, malformed).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// Reading failed (connection lost, stream reset).
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing failed (connection lost, stream stopped).
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
}

impl WireError {
    /// The error frame to send the peer for a protocol violation, if this is one.
    pub fn to_frame(&self) -> Option<Frame> {
        let code = match self {
            WireError::Protocol(ProtocolError::UnsupportedVersion(_)) => {
                protocol::ErrorCode::UnsupportedVersion
            }
            WireError::Protocol(_) | WireError::Truncated => protocol::ErrorCode::Malformed,
            WireError::Read(_) | WireError::Write(_) => return None,
        };
        Some(Frame::Error {
            code,
            message: self.to_string(),
        })
    }
}

/// The reason the peer gave when it closed the connection on purpose (a QUIC
/// application close, e.g. "server shutting down" or "bye"), or `None` when the
/// connection failed (timeout, reset) or is still open.
pub fn closed_by_peer(e: &quinn::ConnectionError) -> Option<String> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => {
            let reason = String::from_utf8_lossy(&c.reason).trim().to_string();
            Some(if reason.is_empty() {
                format!("code {}", c.error_code)
            } else {
                reason
            })
        }
        _ => None,
    }
}

impl WireError {
    /// [`closed_by_peer`] for a read or write that failed because the peer closed the
    /// connection on purpose.
    pub fn closed_by_peer(&self) -> Option<String> {
        match self {
            WireError::Read(quinn::ReadError::ConnectionLost(c))
            | WireError::Write(quinn::WriteError::ConnectionLost(c)) => closed_by_peer(c),
            _ => None,
        }
    }
}

async fn read_exact_or_eof(recv: &mut quinn::RecvStream, buf: &mut [u8]) -> Result<bool, WireError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(true),
        Err(quinn::ReadExactError::FinishedEarly(0)) => Ok(false),
        Err(quinn::ReadExactError::FinishedEarly(_)) => Err(WireError::Truncated),
        Err(quinn::ReadExactError::ReadError(e)) => Err(WireError::Read(e)),
    }
}

/// Reads one frame (u32 BE length prefix, then body decoded with
/// [`protocol::decode_body`], checking [`protocol::MAX_FRAME_BYTES`] before allocating).
/// `Ok(None)` on a clean end of stream (between frames).
///
/// Not cancel-safe: dropping the future mid-frame loses the frame's bytes read so far.
///
/// # Errors
/// [`WireError::Protocol`] for a bad frame, [`WireError::Truncated`] when the stream ends
/// mid-frame, [`WireError::Read`] when the stream or connection fails.
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Option<Frame>, WireError> {
    let mut prefix = [0u8; 4];
    if !read_exact_or_eof(recv, &mut prefix).await? {
        return Ok(None);
    }
    let len = protocol::check_length(prefix)?;
    let mut body = vec![0u8; len];
    if !read_exact_or_eof(recv, &mut body).await? && len > 0 {
        return Err(WireError::Truncated);
    }
    Ok(Some(protocol::decode_body(&body)?))
}

/// Writes one frame with its length prefix and version header.
///
/// # Errors
/// [`WireError::Protocol`] if the frame exceeds [`protocol::MAX_FRAME_BYTES`];
/// [`WireError::Write`] when the stream or connection fails.
pub async fn write_frame(send: &mut quinn::SendStream, frame: &Frame) -> Result<(), WireError> {
    let bytes = protocol::encode_frame(frame)?;
    send.write_all(&bytes).await?;
    Ok(())
}
