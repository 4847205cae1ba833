//! A minimal RESP client: enough for the demo driver's scripted scenarios and its readiness
//! probe, without pulling a Redis client library into the crate.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::edge::resp::{Reply, parse_reply};

/// One connection to a RESP server.
pub struct RespClient {
    stream: TcpStream,
    buf: BytesMut,
}

impl RespClient {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: BytesMut::new(),
        })
    }

    /// Sends one command (as a multibulk array) and waits for its reply.
    pub async fn command(&mut self, args: &[impl AsRef<[u8]>]) -> std::io::Result<Reply> {
        let mut out = BytesMut::new();
        Reply::Array(
            args.iter()
                .map(|a| Reply::Bulk(bytes::Bytes::copy_from_slice(a.as_ref())))
                .collect(),
        )
        .encode(&mut out);
        self.stream.write_all(&out).await?;
        loop {
            match parse_reply(&self.buf) {
                Ok(Some((reply, used))) => {
                    let _ = self.buf.split_to(used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// Shows a reply the way `redis-cli` does.
pub fn show(reply: &Reply) -> String {
    match reply {
        Reply::Simple(s) => s.to_string(),
        Reply::Error(e) => format!("(error) {e}"),
        Reply::Integer(n) => format!("(integer) {n}"),
        Reply::Bulk(b) => format!("\"{}\"", String::from_utf8_lossy(b)),
        Reply::Nil | Reply::NilArray => "(nil)".into(),
        Reply::Array(items) | Reply::Set(items) if items.is_empty() => "(empty array)".into(),
        Reply::Array(items) | Reply::Set(items) => items
            .iter()
            .enumerate()
            .map(|(i, r)| format!("{}) {}", i + 1, show(r)))
            .collect::<Vec<_>>()
            .join(" "),
        Reply::Map(pairs) if pairs.is_empty() => "(empty hash)".into(),
        Reply::Map(pairs) => pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| format!("{}# {} => {}", i + 1, show(k), show(v)))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn replies_show_like_redis_cli() {
        assert_eq!(show(&Reply::Nil), "(nil)");
        assert_eq!(show(&Reply::Integer(2)), "(integer) 2");
        assert_eq!(
            show(&Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"a")),
                Reply::Nil
            ])),
            "1) \"a\" 2) (nil)"
        );
    }
}
