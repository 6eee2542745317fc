//! One port, two protocols: a connection's first byte decides between TLS (a ClientHello
//! starts with the handshake record type 0x16, which no HTTP request line can) and plain
//! HTTP, so the wildcard domain over HTTPS and the one-port `http://` URLs work side by
//! side. HTTP/1.1 and HTTP/2 on both (h2 by ALPN under TLS, by its preface in plain text).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The TLS record type of a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;

/// An accepted connection, plain or TLS.
pub enum Stream {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS, after the handshake.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Peeks at the first byte and, for a ClientHello with `acceptor` set, completes the TLS
/// handshake. Without an acceptor the connection stays plain whatever it sends. The caller
/// bounds the time this takes.
pub async fn accept(tcp: TcpStream, acceptor: Option<&TlsAcceptor>) -> std::io::Result<Stream> {
    let Some(acceptor) = acceptor else {
        return Ok(Stream::Plain(tcp));
    };
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await?;
    if n == 1 && first[0] == TLS_HANDSHAKE {
        Ok(Stream::Tls(Box::new(acceptor.accept(tcp).await?)))
    } else {
        Ok(Stream::Plain(tcp))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
