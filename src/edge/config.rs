//! The front's settings, and how they reach the proxy process.
//!
//! They travel by environment variables rather than being compiled into the process's code,
//! so serving on another port, or with another password, reuses the already-built process
//! instead of rebuilding it.

use std::time::Duration;

use crate::capabilities::Capabilities;
use crate::edge::auth::Password;
use crate::edge::commands::Settings;
use crate::membership::Layout;
use crate::routing::ring::Shards;

/// Where and how the front listens, and what it bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontConfig {
    /// The architecture served, as `INFO` reports it (`kvs_zoo_architecture`).
    pub architecture: String,
    /// What the architecture can honestly do (which `INFO` sections it has); the deployment
    /// sets it from the architecture it deploys.
    pub capabilities: Capabilities,
    /// `host:port` to listen on; `127.0.0.1` unless the user asks otherwise.
    pub bind: String,
    /// What the command table enforces: value limit, password, DEBUG.
    pub commands: Settings,
    /// Most clients connected at once (Redis's `maxclients`); the next one is refused.
    pub max_clients: usize,
    /// Most bytes of replies a client may leave unread (Redis's `client-output-buffer-limit`);
    /// past it the client is disconnected.
    pub client_output_limit: usize,
    /// How long a request may wait for its result before it is answered with a timeout error.
    pub request_timeout: Duration,
}

/// Redis's default `maxclients`.
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
/// Default output limit per client: 64 MiB, enough for an MGET of 64 values of the largest
/// size, small enough that 40 clients that never read stay far below a gigabyte.
pub const DEFAULT_CLIENT_OUTPUT_LIMIT: usize = 64 * 1024 * 1024;
/// Default request timeout: long enough for a distributed store to fail over, short enough
/// that a client is not left wondering.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Environment variable names, one per setting.
const ARCHITECTURE: &str = "KVS_ZOO_ARCHITECTURE";
const CAPABILITIES: &str = "KVS_ZOO_CAPABILITIES";
const BIND: &str = "KVS_ZOO_BIND";
const MAX_VALUE: &str = "KVS_ZOO_MAX_VALUE_BYTES";
const MAX_TRANSACTION: &str = "KVS_ZOO_MAX_TRANSACTION_BYTES";
const REQUIREPASS: &str = "KVS_ZOO_REQUIREPASS_SHA256";
const DEBUG_COMMAND: &str = "KVS_ZOO_ENABLE_DEBUG_COMMAND";
const MAX_CLIENTS: &str = "KVS_ZOO_MAX_CLIENTS";
const OUTPUT_LIMIT: &str = "KVS_ZOO_CLIENT_OUTPUT_LIMIT";
const TIMEOUT_MS: &str = "KVS_ZOO_REQUEST_TIMEOUT_MS";

impl FrontConfig {
    /// Serves `architecture` on 127.0.0.1:`port` with every other setting at its default.
    pub fn localhost(architecture: &str, port: u16) -> Self {
        Self {
            architecture: architecture.into(),
            capabilities: Capabilities::default(),
            bind: format!("127.0.0.1:{port}"),
            commands: Settings::new(),
            max_clients: DEFAULT_MAX_CLIENTS,
            client_output_limit: DEFAULT_CLIENT_OUTPUT_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// The port clients connect to (`INFO`'s `tcp_port`).
    pub fn port(&self) -> u16 {
        self.bind
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// The settings as environment variables for the proxy process.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (ARCHITECTURE, self.architecture.clone()),
            (CAPABILITIES, self.capabilities.to_words()),
            (BIND, self.bind.clone()),
            (MAX_VALUE, self.commands.max_value_bytes.to_string()),
            (
                MAX_TRANSACTION,
                self.commands.max_transaction_bytes.to_string(),
            ),
            (DEBUG_COMMAND, self.commands.debug_command.to_string()),
            (MAX_CLIENTS, self.max_clients.to_string()),
            (OUTPUT_LIMIT, self.client_output_limit.to_string()),
            (TIMEOUT_MS, self.request_timeout.as_millis().to_string()),
        ];
        if let Some(pass) = &self.commands.requirepass {
            env.push((REQUIREPASS, pass.to_hex()));
        }
        env
    }

    /// Reads the settings [`FrontConfig::to_env`] wrote, from `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| var(name).ok_or_else(|| format!("{name} is not set"));
        let number = |name: &str| -> Result<u64, String> {
            let v = get(name)?;
            v.parse()
                .map_err(|_| format!("{name}={v} is not a whole number"))
        };
        Ok(Self {
            architecture: get(ARCHITECTURE)?,
            capabilities: Capabilities::from_words(&get(CAPABILITIES)?)?,
            bind: get(BIND)?,
            commands: Settings {
                max_value_bytes: number(MAX_VALUE)? as usize,
                max_transaction_bytes: number(MAX_TRANSACTION)? as usize,
                requirepass: match var(REQUIREPASS) {
                    Some(hex) => Some(
                        Password::from_hex(&hex)
                            .ok_or_else(|| format!("{REQUIREPASS} is not a SHA-256 digest"))?,
                    ),
                    None => None,
                },
                debug_command: get(DEBUG_COMMAND)? == "true",
                // Set by the deployment for every process: the router reads the same.
                shards: Shards::new(Layout::from_vars(&var)?),
            },
            max_clients: number(MAX_CLIENTS)? as usize,
            client_output_limit: number(OUTPUT_LIMIT)? as usize,
            request_timeout: Duration::from_millis(number(TIMEOUT_MS)?),
        })
    }

    /// Reads the settings from this process's environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(config: &FrontConfig) -> Result<FrontConfig, String> {
        let env = config.to_env();
        FrontConfig::from_vars(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn settings_survive_the_trip_through_the_environment() {
        let defaults = FrontConfig::localhost("local", 7000);
        assert_eq!(round_trip(&defaults), Ok(defaults.clone()));
        let mut config = defaults;
        config.commands.requirepass = Some(Password::new("pä ss=word".as_bytes()));
        config.commands.debug_command = true;
        config.max_clients = 3;
        config.client_output_limit = 1234;
        config.request_timeout = Duration::from_millis(1500);
        config.bind = "[::1]:7001".into();
        assert_eq!(round_trip(&config), Ok(config.clone()));
        // The password itself never travels.
        assert!(config.to_env().iter().all(|(_, v)| !v.contains("word")));
    }

    #[test]
    fn missing_or_bad_settings_are_explained() {
        assert_eq!(
            FrontConfig::from_vars(|_| None),
            Err("KVS_ZOO_ARCHITECTURE is not set".into())
        );
        let env = FrontConfig::localhost("local", 1).to_env();
        let bad = FrontConfig::from_vars(|name| {
            if name == MAX_CLIENTS {
                return Some("many".into());
            }
            env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
        });
        assert_eq!(
            bad,
            Err("KVS_ZOO_MAX_CLIENTS=many is not a whole number".into())
        );
    }

    #[test]
    fn the_port_is_read_from_the_bind_address() {
        assert_eq!(FrontConfig::localhost("local", 6380).port(), 6380);
        let mut c = FrontConfig::localhost("local", 1);
        c.bind = "[::1]:7001".into();
        assert_eq!(c.port(), 7001);
    }
}
