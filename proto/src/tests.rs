//! Property tests: every message survives a round trip, and no byte string panics the decoder.

use proptest::prelude::*;

use crate::*;

/// Round trip compared by re-encoding, so that NaN scores still compare equal.
fn round_trips<T>(msg: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let bytes = encode(msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: T = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let again = encode(&back).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(bytes, again);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hello_round_trips(m in any::<Hello>()) { round_trips(&m)?; }

    #[test]
    fn hello_reply_round_trips(m in any::<HelloReply>()) { round_trips(&m)?; }

    #[test]
    fn requests_round_trip(m in any::<Request>()) { round_trips(&m)?; }

    #[test]
    fn server_messages_round_trip(m in any::<ServerMessage>()) { round_trips(&m)?; }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = decode::<Request>(&bytes);
        let _ = decode::<ServerMessage>(&bytes);
        let _ = decode::<Hello>(&bytes);
    }

    /// Corrupting one byte of a valid frame must give an error or another message, never a panic.
    #[test]
    fn mutated_frames_never_panic(m in any::<ServerMessage>(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = encode(&m).map_err(|e| TestCaseError::fail(e.to_string()))?.to_vec();
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = byte;
        }
        let _ = decode::<ServerMessage>(&bytes);
    }
}

#[test]
fn huge_length_prefixes_are_refused_without_allocating() {
    // A string claiming 2^60 bytes must be refused by the limit, not attempted.
    let mut bytes = vec![3u8]; // Request::Pause
    bytes.push(0); // DbTarget::One
    bytes.push(255); // varint marker for a u64 length
    bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(decode::<Request>(&bytes).is_err());
}

#[test]
fn trailing_bytes_are_malformed() {
    let mut bytes = encode(&Request::Status)
        .map(|b| b.to_vec())
        .unwrap_or_default();
    bytes.push(0);
    assert!(matches!(
        decode::<Request>(&bytes),
        Err(FrameError::TrailingBytes(1))
    ));
}

#[tokio::test]
async fn oversized_frames_close_the_stream_with_an_error() {
    use tokio::io::AsyncWriteExt;
    let (a, mut b) = tokio::io::duplex(64);
    let mut chan = Channel::new(a);
    let len = u32::try_from(MAX_FRAME_BYTES + 1).unwrap_or(u32::MAX);
    let writer = tokio::spawn(async move {
        let _ = b.write_all(&len.to_be_bytes()).await;
        b
    });
    let got = chan.recv::<Request>().await;
    assert!(matches!(got, Err(FrameError::Io(_))), "{got:?}");
    drop(writer.await);
}

#[test]
fn socket_path_follows_systemd_then_xdg_then_uid() {
    use std::ffi::OsString;
    use std::path::PathBuf;
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| OsString::from(v))
        }
    };
    assert_eq!(
        paths::default_socket_path_from(
            1000,
            env(&[
                ("RUNTIME_DIRECTORY", "/run/hrag:/run/x"),
                ("XDG_RUNTIME_DIR", "/run/user/1000")
            ])
        ),
        PathBuf::from("/run/hrag/hragd.sock")
    );
    assert_eq!(
        paths::default_socket_path_from(1000, env(&[("XDG_RUNTIME_DIR", "/run/user/1000")])),
        PathBuf::from("/run/user/1000/hrag/hragd.sock")
    );
    assert_eq!(
        paths::default_socket_path_from(0, env(&[])),
        PathBuf::from(paths::SYSTEM_SOCKET)
    );
}
