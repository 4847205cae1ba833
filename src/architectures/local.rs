//! The Local architecture: one Hydro process holding a last-writer-wins map.
//!
//! ```text
//!   redis-cli ──RESP──▶ [ proxy process: front ▶ KVSCore (LWW) ▶ front ]
//! ```
//!
//! Guarantees: every operation is applied in the order the process receives it, so the store
//! is linearizable — while that one process lives. It holds the only copy in memory: a crash
//! loses everything, and nothing else can serve while it is down.

use bytes::Bytes;
use hydro_lang::prelude::*;

use crate::architectures::Architecture;
use crate::architectures::options::OptionHelp;
use crate::capabilities::Capabilities;
use crate::deploy::{DemoStep, Durability, KVSDemo, Topology};
use crate::routing::local::LocalRouter;
use crate::server::{KVSServer, Proxy};
use crate::store::kvs_core::KVSCore;

/// The Local architecture (see the module docs).
pub struct Local;

/// Wires the Local architecture onto `proxy`: its RESP front's requests through the one
/// [`KVSServer`] composition, with the LWW core, and the responses back to the front.
pub fn local_kvs<'a>(proxy: &Process<'a, Proxy>) {
    let (requests, replies) = proxy
        .sidecar_bidi::<crate::edge::front::FrontRequest, crate::edge::front::FrontResponse, _>(
            q!(|| { crate::edge::front::start() }),
        );
    let server = KVSServer::<Bytes, KVSCore, _>::new(LocalRouter::new(proxy));
    // The responses are typed unordered, and that is all the front needs: each carries its
    // client and request id, and each connection's writer restores request order itself.
    replies.complete(server.serve(requests));
}

impl KVSDemo for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn build<'a>(&self, flow: &mut FlowBuilder<'a>) -> Topology<'a> {
        let proxy = flow.process::<Proxy>();
        local_kvs(&proxy);
        Topology::new(&proxy)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ONE_COPY
    }

    fn durability(&self) -> Durability {
        Durability::Everything
    }

    fn script(&self) -> Vec<DemoStep> {
        vec![
            DemoStep::new("write a key", &["SET", "color", "blue"]),
            DemoStep::new("read it back", &["GET", "color"]),
            DemoStep::new(
                "overwrite it: the last writer wins",
                &["SET", "color", "green"],
            ),
            DemoStep::new("read the newer value", &["GET", "color"]),
            DemoStep::new(
                "write two keys at once",
                &["MSET", "shape", "circle", "size", "large"],
            ),
            DemoStep::new(
                "read three keys, one missing",
                &["MGET", "color", "shape", "weight"],
            ),
            DemoStep::new("delete two keys, one missing", &["DEL", "shape", "weight"]),
            DemoStep::new("a deleted key is gone", &["EXISTS", "shape", "size"]),
            DemoStep::new(
                "an unknown command is an error, not a crash",
                &["FLY", "away"],
            ),
        ]
    }
}

impl Architecture for Local {
    fn summary(&self) -> &'static str {
        "one process, last-writer-wins"
    }

    fn options(&self) -> Vec<OptionHelp> {
        vec![]
    }

    fn set_option(&mut self, flag: &str, _value: &str) -> Result<(), String> {
        Err(format!("unknown option '{flag}'"))
    }

    fn option_value(&self, _flag: &str) -> Option<String> {
        None
    }

    fn commands(&self) -> &'static [&'static str] {
        Self::COMMANDS
    }
}

impl Local {
    /// This architecture's column of the command matrix (see [`super::MATRIX_ROWS`]).
    const COMMANDS: &'static [&'static str] = &[
        "linearizable",
        "one operation per key, in order; another client's operations may interleave (not atomic yet)",
        "error: one version per key",
        "`n` = 0",
        "`[0, [0]]`",
        "read and write in one step",
        "the store",
        "empties the store",
        "read, compute and write in one step: no update lost",
        "read, compute and write in one step",
        "`:1` if `k` held exactly `expected` and now holds `new`, else `:0` (a missing key never matches); in one step",
        "deadlines from the proxy's clock; a key is gone from its deadline on",
        "`string`/`none`; length",
        "atomic",
        "`EXEC` answers nil if a watched key changed",
        "—",
        "—",
    ];
}
