//! Starts `kvs-zoo serve …` as a user would and stops it with Ctrl-C (SIGINT).

#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the first start may take: it builds the store's process (about a minute here).
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// A running `kvs-zoo serve` process.
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// `redis://127.0.0.1:port/`.
    pub url: String,
    pub port: u16,
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// Serves `architecture` on a free port with the extra `args`, and waits for `ready:`.
    pub fn start(architecture: &str, args: &[&str]) -> Server {
        let port = kvs_zoo::demo::free_port().expect("a free port");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvs-zoo"))
            .args(["serve", architecture, "--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kvs-zoo starts");
        // Keep draining stdout for the server's whole life, so it never blocks on a full pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("[server] {line}");
                let _ = tx.send(line);
            }
        });
        let want = format!("ready: redis://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line == want => break,
                Ok(_) => continue,
                Err(e) => {
                    let _ = child.kill();
                    panic!("kvs-zoo serve {architecture} never printed '{want}': {e}");
                }
            }
        }
        Server {
            child: Some(child),
            addr: format!("127.0.0.1:{port}"),
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            lines,
        }
    }

    /// Sends Ctrl-C (SIGINT) and checks that the server stops cleanly and frees its port.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        interrupt(&child);
        let status = wait_timeout(&mut child, Duration::from_secs(30))
            .expect("kvs-zoo stops within 30 s of Ctrl-C");
        assert!(
            status.success(),
            "kvs-zoo exited with {status} after Ctrl-C"
        );
        assert!(
            TcpStream::connect(&self.addr).is_err(),
            "the port is still answering after the server stopped"
        );
    }

    /// A raw connection to the server.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).expect("connects");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            interrupt(&child);
            if wait_timeout(&mut child, Duration::from_secs(30)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn interrupt(child: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Writes `bytes` and reads until `expect` bytes have arrived (or the peer closes).
pub fn exchange(stream: &mut TcpStream, bytes: &[u8], expect: usize) -> Vec<u8> {
    stream.write_all(bytes).unwrap();
    read_at_least(stream, expect)
}

/// Reads until `n` bytes have arrived, the peer closes, or the read times out.
pub fn read_at_least(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = vec![];
    let mut buf = [0u8; 64 * 1024];
    while got.len() < n {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    }
    got
}

/// True when the peer has closed the connection (a read returns end-of-file).
pub fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(stream.read(&mut buf), Ok(0))
}
