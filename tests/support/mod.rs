//! Starts `kvs-zoo serve …` as a user would and stops it with Ctrl-C (SIGINT).

#![allow(dead_code)] // each test file uses a different part of this module

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

pub mod history;
pub mod redis_client;

/// How long the first start may take: it builds the store's process (about a minute here).
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// Held while a server starts: tests of one file run in parallel, and two first starts would
/// build the same process at once.
static STARTING: Mutex<()> = Mutex::new(());

/// A running `kvs-zoo serve` process.
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// `redis://127.0.0.1:port/`.
    pub url: String,
    pub port: u16,
    /// Each process's id, by its name in the `process <role>/<member> pid <PID>` lines.
    pub pids: HashMap<String, u32>,
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// Serves `architecture` on a free port with the extra `args`, and waits for `ready:`.
    pub fn start(architecture: &str, args: &[&str]) -> Server {
        let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let port = kvs_zoo::deploy::free_port().expect("a free port");
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
        let mut pids = HashMap::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line == want => break,
                Ok(line) => {
                    let words: Vec<&str> = line.split(' ').collect();
                    if let ["process", name, "pid", pid] = words[..] {
                        pids.insert(name.to_string(), pid.parse().expect("a process id"));
                    }
                }
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
            pids,
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

    /// Kills every process of the deployment, then the `kvs-zoo` driver, with `kill -9`:
    /// nothing gets to flush, close or say goodbye (the kernel still writes back the files'
    /// pages it holds — a crash of the processes, not of the machine). Waits until every
    /// process is gone.
    pub fn kill_all(mut self) {
        for pid in self.pids.values() {
            redis_client::kill_9(*pid);
        }
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for pid in self.pids.values() {
            while std::path::Path::new(&format!("/proc/{pid}/status")).exists()
                && !std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .is_ok_and(|s| s.contains("State:\tZ"))
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "process {pid} outlived kill -9"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Waits up to `limit` for a line of the server's output that contains `text`.
    pub fn wait_for_line(&self, text: &str, limit: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Kills `member` (`role/N`) with `kill -9` and waits for the supervisor to start it
    /// again: returns the new process's pid (from the `process role/N pid PID (restart N)`
    /// line) and the time from the kill to that line (the restarted member's first heartbeat
    /// reached the proxy).
    pub fn kill_and_await_restart(&self, member: &str) -> (u32, Duration) {
        let old = self.pids[member];
        let killed = std::time::Instant::now();
        redis_client::kill_9(old);
        let prefix = format!("process {member} pid ");
        let line = self
            .wait_for_line(&prefix, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{member} was not restarted within 60 s"));
        let took = killed.elapsed();
        let rest = line.strip_prefix(&prefix).expect("a process line");
        let (pid, restart) = rest.split_once(' ').expect("pid (restart N)");
        assert_eq!(restart, "(restart 1)", "{line}");
        let pid: u32 = pid.parse().expect("a process id");
        assert_ne!(pid, old, "{line}");
        (pid, took)
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

/// Sends `bytes` and reads one whole reply.
pub fn request(stream: &mut TcpStream, bytes: &[u8]) -> kvs_zoo::edge::resp::Reply {
    stream.write_all(bytes).unwrap();
    let mut got = vec![];
    let mut buf = [0u8; 64 * 1024];
    loop {
        if let Some((reply, _)) = kvs_zoo::edge::resp::parse_reply(&got).expect("valid RESP") {
            return reply;
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) => panic!("no whole reply: {e}"),
        }
    }
}

/// Reads until the server closes the connection; false if it is still open when the read
/// times out.
pub fn closes(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
