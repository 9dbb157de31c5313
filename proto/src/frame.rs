//! Framing: a 4-byte big-endian length, then one bincode-encoded message.
//!
//! Only this module knows the byte format. Frames larger than [`MAX_FRAME_BYTES`] are refused
//! on both sides before any allocation of that size, and decoding never panics on any input.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest frame either side accepts. Control messages are small; query results and status of
/// many databases stay far below this.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed by the other side")]
    Closed,
    #[error("socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not encode a message: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("received a malformed message: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("received a message with {0} unexpected trailing bytes")]
    TrailingBytes(usize),
}

/// Encodes one message into a frame payload.
pub fn encode<T: Serialize>(msg: &T) -> Result<Bytes, FrameError> {
    Ok(Bytes::from(bincode::serde::encode_to_vec(msg, config())?))
}

/// Decodes one frame payload; a payload with bytes left over is malformed.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (msg, used) = bincode::serde::decode_from_slice(payload, config())?;
    if used != payload.len() {
        return Err(FrameError::TrailingBytes(payload.len() - used));
    }
    Ok(msg)
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// A framed, typed message stream over any byte stream (the control socket in practice).
pub struct Channel<S> {
    framed: Framed<S, LengthDelimitedCodec>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Channel<S> {
    pub fn new(stream: S) -> Self {
        Channel {
            framed: Framed::new(stream, codec()),
        }
    }

    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), FrameError> {
        let payload = encode(msg)?;
        self.framed.send(payload).await?;
        Ok(())
    }

    /// The next message, or [`FrameError::Closed`] when the peer hung up between frames.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, FrameError> {
        match self.framed.next().await {
            Some(frame) => decode(&frame?),
            None => Err(FrameError::Closed),
        }
    }

    pub fn get_ref(&self) -> &S {
        self.framed.get_ref()
    }
}
