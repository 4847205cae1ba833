//! What a reader sees on the terminal while a deployment builds and runs.
//!
//! hydro_deploy prints to this process's standard output: each process's launch command (with
//! its whole environment and library path) and the compiler's warnings about the code Hydro
//! generates for each location — warnings a reader cannot act on. Between a demo's narrated
//! steps that is noise, so [`Console::new`] routes standard output through a filter that
//! drops those, unless the user asked for `--verbose`. Everything else passes unchanged: the
//! narration, `ready:` and `process …` lines, build progress, and what the deployed processes
//! themselves print (hydro_deploy prefixes it with the process's name).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

/// Decides, line by line, which of hydro_deploy's output lines a reader sees.
#[derive(Default)]
pub struct ChatterFilter {
    state: State,
}

#[derive(Default, PartialEq, Eq)]
enum State {
    #[default]
    Showing,
    /// Inside a compiler warning (it ends at a blank line).
    InWarning,
    /// Just after a warning: the blank lines that separate it are dropped too.
    AfterWarning,
}

impl ChatterFilter {
    /// True when `line` (without its newline) should be shown.
    pub fn show(&mut self, line: &str) -> bool {
        let plain = strip_ansi(line);
        let blank = plain.trim().is_empty();
        match self.state {
            State::InWarning => {
                if blank {
                    self.state = State::AfterWarning;
                }
                return false;
            }
            State::AfterWarning if blank => return false,
            _ => self.state = State::Showing,
        }
        if plain.starts_with("warning") {
            self.state = State::InWarning;
            return false;
        }
        !plain.contains("] running command: `")
    }
}

/// `line` without terminal colour codes (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the escape sequence.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// While alive, standard output goes through a [`ChatterFilter`] (unless verbose). Dropping
/// it forwards whatever is still in flight and puts standard output back.
pub struct Console {
    filtered: Option<Filtered>,
}

struct Filtered {
    /// The real standard output, saved.
    saved: OwnedFd,
    /// Signalled by the forwarding thread when it has forwarded everything.
    done: mpsc::Receiver<()>,
}

impl Console {
    /// Filters standard output unless `verbose`. If the filter cannot be set up (no pipes
    /// left, say), output is simply left unfiltered.
    pub fn new(verbose: bool) -> Self {
        Self {
            filtered: if verbose { None } else { filter_stdout().ok() },
        }
    }

    /// A console for a program whose command line may hold `--verbose`.
    pub fn from_args() -> Self {
        Self::new(std::env::args().any(|a| a == "--verbose"))
    }
}

fn filter_stdout() -> std::io::Result<Filtered> {
    std::io::stdout().flush()?;
    // SAFETY: dup and dup2 only duplicate file descriptors; every descriptor passed is open
    // and owned here (fd 1 is the process's standard output).
    let saved = unsafe { libc::dup(1) };
    if saved < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `saved` was just returned by dup, and nothing else owns it.
    let saved = unsafe { OwnedFd::from_raw_fd(saved) };
    let (reader, writer) = std::io::pipe()?;
    // SAFETY: as above.
    if unsafe { libc::dup2(writer.as_raw_fd(), 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(writer);
    let mut out = std::fs::File::from(saved.try_clone()?);
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let mut filter = ChatterFilter::default();
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            if filter.show(text.trim_end_matches(['\n', '\r'])) {
                let _ = out.write_all(&line);
                let _ = out.flush();
            }
            line.clear();
        }
        let _ = done_tx.send(());
    });
    Ok(Filtered { saved, done })
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(f) = self.filtered.take() {
            let _ = std::io::stdout().flush();
            // Put the real standard output back; that closes the pipe, and the thread
            // forwards what is left and stops.
            // SAFETY: both descriptors are open; dup2 only duplicates.
            unsafe { libc::dup2(f.saved.as_raw_fd(), 1) };
            // A child process that inherited the pipe would keep it open: do not wait forever.
            let _ = f.done.recv_timeout(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_commands_and_compiler_warnings_are_hidden() {
        let output = "\
   Compiling kvs_zoo v0.1.0
\u{1b}[0m\u{1b}[1m\u{1b}[33mwarning\u{1b}[0m: variable does not need to be mutable
  --> generated.rs:37:17
   |
37 |             let mut dfir_metrics = DfirMetrics::default();
   |                 ----^^^^^^^^^^^^

\n\
[kvs_zoo::server::Proxy (process loc1v1)] running command: `KVS_ZOO_BIND=\"127.0.0.1:1\" /x`
[kvs_zoo::server::Proxy (process loc1v1)] kvs-zoo: closing client 3
process proxy/0 pid 12
ready: redis://127.0.0.1:1

# a narrated step
> GET color";
        let mut filter = ChatterFilter::default();
        let shown: Vec<&str> = output.lines().filter(|l| filter.show(l)).collect();
        assert_eq!(
            shown,
            vec![
                "Compiling kvs_zoo v0.1.0",
                "[kvs_zoo::server::Proxy (process loc1v1)] kvs-zoo: closing client 3",
                "process proxy/0 pid 12",
                "ready: redis://127.0.0.1:1",
                "",
                "# a narrated step",
                "> GET color",
            ]
        );
    }

    #[test]
    fn colour_codes_are_stripped_for_matching() {
        assert_eq!(
            strip_ansi("\u{1b}[1m\u{1b}[33mwarning\u{1b}[0m: x"),
            "warning: x"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
