//! Connect envelope framing: `flags (1 byte) | length (u32 big-endian) | payload`.

use bytes::{Buf, Bytes, BytesMut};

/// Flag bit of a compressed payload (never produced or accepted here).
pub const FLAG_COMPRESSED: u8 = 0x01;
/// Flag bit of the end-of-stream envelope.
pub const FLAG_END_STREAM: u8 = 0x02;

/// Largest request envelope accepted (stdin chunks, watch requests): 16 MiB.
pub const MAX_ENVELOPE: usize = 16 << 20;

/// Encodes one envelope.
pub fn encode(flags: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.extend_from_slice(&[flags]);
    // Payloads are bounded by what we serialise; a message over 4 GiB is impossible here.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.freeze()
}

/// One decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The flags byte.
    pub flags: u8,
    /// The payload.
    pub payload: Bytes,
}

/// A framing error in a request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The body ended inside an envelope.
    #[error("request body ended in the middle of an envelope")]
    Truncated,
    /// The envelope is larger than [`MAX_ENVELOPE`].
    #[error("envelope of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The envelope is compressed, which no SDK does.
    #[error("compressed envelopes are not supported")]
    Compressed,
}

/// Incremental decoder: feed body chunks, take complete envelopes.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    /// Appends a chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Returns the next complete envelope, if any.
    pub fn next_envelope(&mut self) -> Result<Option<Envelope>, FrameError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let flags = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_ENVELOPE {
            return Err(FrameError::TooLarge(len));
        }
        if flags & FLAG_COMPRESSED != 0 {
            return Err(FrameError::Compressed);
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.advance(5);
        let payload = self.buf.split_to(len).freeze();
        Ok(Some(Envelope { flags, payload }))
    }

    /// Call at end of body: fails if bytes of an unfinished envelope remain.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_test_vector_roundtrip() {
        let payload =
            br#"{"process":{"cmd":"/bin/bash","args":["-l","-c","echo hi"]},"stdin":false}"#;
        let frame = encode(0, payload);
        assert_eq!(&frame[..5], &[0, 0, 0, 0, 0x4a]);
        let mut d = Decoder::default();
        d.push(&frame[..3]);
        assert_eq!(d.next_envelope(), Ok(None));
        d.push(&frame[3..]);
        let env = d.next_envelope().ok().flatten();
        assert_eq!(
            env.map(|e| e.payload),
            Some(Bytes::copy_from_slice(payload))
        );
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn rejects_truncated_and_compressed() {
        let mut d = Decoder::default();
        d.push(&[0, 0, 0, 0, 9, b'{']);
        assert_eq!(d.next_envelope(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated));
        let mut d = Decoder::default();
        d.push(&encode(FLAG_COMPRESSED, b"{}"));
        assert_eq!(d.next_envelope(), Err(FrameError::Compressed));
    }
}
