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

use crate::deploy::{DemoStep, KVSDemo, Topology};
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
