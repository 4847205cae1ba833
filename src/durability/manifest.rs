//! What wrote a data directory: a small text file, `DIR/MANIFEST`, naming the architecture
//! and its shape (how many members of each role, and whatever else decides where a key
//! lives). A store started on a directory another shape wrote would look for keys where they
//! are not — a shard's keys are on the shard the ring named *then* — so it is refused.
//!
//! ```text
//!   kvs-zoo data directory 1
//!   architecture: sharded
//!   shape: shard=3 virtual-nodes=512
//! ```

use std::path::Path;

/// The manifest's first line: what the file is, and the format's version.
const HEADER: &str = "kvs-zoo data directory 1";

/// The file's name in the data directory.
pub const FILE: &str = "MANIFEST";

/// What wrote a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The architecture's name.
    pub architecture: String,
    /// Its shape, as `name=value` words.
    pub shape: String,
}

/// What [`Manifest::claim`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// The directory was new (or empty): this manifest now owns it.
    New,
    /// The directory was written by this same architecture and shape.
    Same,
}

impl Manifest {
    fn render(&self) -> String {
        format!(
            "{HEADER}\narchitecture: {}\nshape: {}\n",
            self.architecture, self.shape
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let architecture = lines.next()?.strip_prefix("architecture: ")?.to_string();
        let shape = lines.next()?.strip_prefix("shape: ")?.to_string();
        Some(Self {
            architecture,
            shape,
        })
    }

    /// Claims `dir` for this architecture and shape: creates it and writes the manifest if
    /// it has none (synced, so a crash cannot leave a directory of data without one), or
    /// checks that the one there is this. Refuses a directory of another architecture or
    /// shape, and a non-empty directory without a manifest, with a message that says what to
    /// do.
    pub fn claim(&self, dir: &Path) -> Result<Claimed, String> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let Some(found) = Self::parse(&text) else {
                    return Err(format!(
                        "{} is not a kvs-zoo manifest (or of another format version): \
                         refusing to start from {}",
                        path.display(),
                        dir.display()
                    ));
                };
                if found == *self {
                    return Ok(Claimed::Same);
                }
                Err(format!(
                    "{} holds the data of '{}' ({}); this is '{}' ({}): refusing to start \
                     from it. Serve '{}' with that shape, or give another --data-dir.",
                    dir.display(),
                    found.architecture,
                    found.shape,
                    self.architecture,
                    self.shape,
                    found.architecture
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                let occupied = std::fs::read_dir(dir)
                    .map_err(|e| format!("reading {}: {e}", dir.display()))?
                    .next()
                    .is_some();
                if occupied {
                    return Err(format!(
                        "{} is not empty and has no {FILE}: refusing to write a store's data \
                         among other files (give an empty or new --data-dir)",
                        dir.display()
                    ));
                }
                let tmp = dir.join(format!("{FILE}.tmp"));
                let written = std::fs::File::create(&tmp).and_then(|mut f| {
                    std::io::Write::write_all(&mut f, self.render().as_bytes())?;
                    f.sync_all()
                });
                written.map_err(|e| format!("writing {}: {e}", tmp.display()))?;
                std::fs::rename(&tmp, &path)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| format!("syncing {}: {e}", dir.display()))?;
                Ok(Claimed::New)
            }
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(architecture: &str, shape: &str) -> Manifest {
        Manifest {
            architecture: architecture.into(),
            shape: shape.into(),
        }
    }

    #[test]
    fn a_directory_is_claimed_once_and_then_only_by_the_same_shape() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let sharded = manifest("sharded", "shard=3 virtual-nodes=512");
        assert_eq!(sharded.claim(&data), Ok(Claimed::New));
        assert_eq!(sharded.claim(&data), Ok(Claimed::Same));
        let err = manifest("local", "").claim(&data).unwrap_err();
        assert!(
            err.contains("holds the data of 'sharded' (shard=3 virtual-nodes=512)")
                && err.contains("this is 'local'"),
            "{err}"
        );
        let err = manifest("sharded", "shard=4 virtual-nodes=512")
            .claim(&data)
            .unwrap_err();
        assert!(err.contains("refusing to start"), "{err}");
    }

    #[test]
    fn a_directory_of_other_files_is_not_claimed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = manifest("local", "").claim(dir.path()).unwrap_err();
        assert!(err.contains("is not empty and has no MANIFEST"), "{err}");
        std::fs::write(dir.path().join(FILE), "something else").unwrap();
        let err = manifest("local", "").claim(dir.path()).unwrap_err();
        assert!(err.contains("is not a kvs-zoo manifest"), "{err}");
    }
}
