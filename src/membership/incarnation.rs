//! Incarnations: which start of a member this process is.
//!
//! A member that dies and is restarted (`kvs-zoo serve --restart-after`) keeps its role and
//! member id, but it is a new process that remembers nothing of the old one's memory. Its
//! **incarnation** tells the two apart: 0 at the deployment's start, one more at each restart.
//! The transport sends it in each connection's hello (a receiver refuses an older incarnation
//! than one it heard), heartbeats carry it to `INFO`, and a replica's versions start above
//! every version an earlier incarnation could have issued, so none is ever reused.

/// The environment variable that gives a restarted process its incarnation (absent at the
/// deployment's first start).
pub const ENV_INCARNATION: &str = "KVS_ZOO_INCARNATION";

/// This process's incarnation: [`ENV_INCARNATION`], or 0 if unset or not a number.
pub fn incarnation() -> u32 {
    static INCARNATION: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *INCARNATION.get_or_init(|| parse(std::env::var(ENV_INCARNATION).ok().as_deref()))
}

/// The incarnation a value of [`ENV_INCARNATION`] names.
fn parse(value: Option<&str>) -> u32 {
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unset_or_malformed_incarnation_is_the_first() {
        assert_eq!(super::parse(None), 0);
        assert_eq!(super::parse(Some("x")), 0);
        assert_eq!(super::parse(Some("3")), 3);
    }
}
