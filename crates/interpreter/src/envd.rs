//! The sandbox-wide environment variables, asked once from envd in the same sandbox
//! (`GET /envs`), as E2B's server does, with the caller's access token.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers larger than this are refused.
const MAX_RESPONSE: u64 = 1 << 20;

/// `GET /envs` over one HTTP/1.1 connection. `token` is sent as `X-Access-Token`; it comes
/// from a request header, which cannot contain CR or LF.
pub async fn fetch(
    addr: SocketAddr,
    token: Option<&str>,
) -> Result<BTreeMap<String, String>, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to envd: {e}"))?;
        let auth = token
            .filter(|t| !t.contains(['\r', '\n']))
            .map(|t| format!("X-Access-Token: {t}\r\n"))
            .unwrap_or_default();
        let head =
            format!("GET /envs HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("asking envd: {e}"))?;
        let mut response = Vec::new();
        stream
            .take(MAX_RESPONSE)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("reading envd's answer: {e}"))?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "envd did not answer in 5 s".to_owned())??;
    parse(&response)
}

fn parse(response: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("envd's answer has no header end")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("envd answered /envs with {status}"));
    }
    serde_json::from_slice(&response[split + 4..]).map_err(|e| format!("envd's /envs body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_json_answer() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{\"A\":\"b\"}";
        assert_eq!(parse(r).expect("ok")["A"], "b");
    }

    #[test]
    fn refuses_other_statuses() {
        assert!(parse(b"HTTP/1.1 401 Unauthorized\r\n\r\n").is_err());
    }
}
