//! Local's router: the store runs in the proxy process itself, so routing is the identity —
//! nothing travels, and nothing can be lost on the way.

use hydro_lang::live_collections::stream::{NoOrder, TotalOrder};
use hydro_lang::prelude::*;

use crate::protocol::{KVSRequest, KVSResponse};
use crate::server::{Proxy, Router};

/// Routes to the proxy process itself: the Local architecture's single node.
pub struct LocalRouter<'a> {
    proxy: Process<'a, Proxy>,
}

impl<'a> LocalRouter<'a> {
    /// A router whose storage runs on `proxy`.
    pub fn new(proxy: &Process<'a, Proxy>) -> Self {
        Self {
            proxy: proxy.clone(),
        }
    }
}

impl<'a, V> Router<'a, V> for LocalRouter<'a> {
    type Storage = Process<'a, Proxy>;

    fn storage(&self) -> &Process<'a, Proxy> {
        &self.proxy
    }

    fn route(
        self,
        requests: Stream<KVSRequest<V>, Process<'a, Proxy>, Unbounded, TotalOrder>,
        serve: impl FnOnce(
            Stream<KVSRequest<V>, Process<'a, Proxy>, Unbounded, TotalOrder>,
        ) -> Stream<KVSResponse<V>, Process<'a, Proxy>, Unbounded, TotalOrder>,
    ) -> Stream<KVSResponse<V>, Process<'a, Proxy>, Unbounded, NoOrder> {
        // The store is here: nothing travels, nothing can be lost on the way.
        serve(requests).weaken_ordering()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hydro_lang::prelude::*;

    use super::*;
    use crate::KVSServer;
    use crate::protocol::{KVSOperation, KVSRequest, KVSResponse, KVSResult};
    use crate::store::kvs_core::KVSCore;

    fn req(client: u64, request: u64, op: KVSOperation<Bytes>) -> KVSRequest<Bytes> {
        KVSRequest {
            at: 0,
            client,
            request,
            op,
        }
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    /// The Local composition, run by Hydro's simulator: each reply goes to the client and
    /// request that asked, and reads see the latest write in arrival order.
    #[test]
    fn local_composition_answers_each_request_by_id() {
        let mut flow = FlowBuilder::new();
        let proxy = flow.process::<Proxy>();
        let (requests_in, requests) = proxy.sim_input();
        let server = KVSServer::<Bytes, KVSCore, _>::new(LocalRouter::new(&proxy));
        let responses = server.serve(requests).sim_output();

        flow.sim().exhaustive(async || {
            requests_in.send(req(1, 0, KVSOperation::Put(b("k"), b("v1"))));
            requests_in.send(req(2, 0, KVSOperation::Get(b("k"))));
            requests_in.send(req(1, 1, KVSOperation::Delete(b("k"))));
            requests_in.send(req(2, 1, KVSOperation::Get(b("k"))));
            requests_in.send(req(2, 2, KVSOperation::Delete(b("k"))));
            responses
                .assert_yields_only_unordered([
                    KVSResponse {
                        client: 1,
                        request: 0,
                        result: KVSResult::Ok,
                    },
                    KVSResponse {
                        client: 2,
                        request: 0,
                        result: KVSResult::Value(b("v1")),
                    },
                    KVSResponse {
                        client: 1,
                        request: 1,
                        result: KVSResult::Ok,
                    },
                    KVSResponse {
                        client: 2,
                        request: 1,
                        result: KVSResult::NotFound,
                    },
                    KVSResponse {
                        client: 2,
                        request: 2,
                        result: KVSResult::NotFound,
                    },
                ])
                .await;
        });
    }
}
