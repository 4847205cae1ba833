//! Links: a stream of messages from one location to another, over either [`Transport`].
//!
//! A protocol with many roles (Multi-Paxos has eight kinds of message between four roles)
//! would otherwise spell out both transports at every edge. Each function here is one edge:
//! the sender's stream of addressed messages goes in, the receiver's stream of messages
//! (with the sender's member id) comes out. Over [`Transport::Zoo`] the sender's side ends in
//! a `for_each` that hands each message to our transport, and the receiver's side starts
//! from its inbox for `channel`; over [`Transport::Hydro`] it is Hydro's own `demux` / `send`,
//! which is what the simulator runs. The dataflow around a link is the same either way.
//!
//! A receiving process has one inbox per channel: two links into the same role must use
//! different channels ([`crate::net::channel`]).

use hydro_lang::live_collections::stream::{NoOrder, TotalOrder};
use hydro_lang::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Transport;
use crate::server::Proxy;

/// From members of one cluster to members of another (or the same) cluster: each message
/// `(to, message)` reaches member `to` of `receivers` (`role` in the topology), which sees
/// `(from, message)`.
pub fn between<'a, S: 'a, D: 'a, T>(
    messages: Stream<(u32, T), Cluster<'a, S>, Unbounded, TotalOrder>,
    receivers: &Cluster<'a, D>,
    role: &'static str,
    channel: u8,
    transport: Transport,
) -> Stream<(u32, T), Cluster<'a, D>, Unbounded, NoOrder>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let addressed = |messages: Stream<(u32, T), Cluster<'a, S>, Unbounded, TotalOrder>| {
        messages.map(q!(|(to, message)| (
            hydro_lang::location::MemberId::from_raw_id(to),
            message
        )))
    };
    match transport {
        Transport::Hydro => addressed(messages)
            .demux(receivers, TCP.fail_stop().bincode())
            .entries()
            .map(q!(|(from, message)| (from.get_raw_id(), message))),
        Transport::HydroLossy => addressed(messages)
            .demux(receivers, TCP.lossy_delayed_forever().bincode())
            .entries()
            .map(q!(|(from, message)| (from.get_raw_id(), message))),
        Transport::Zoo => {
            messages.for_each(q!(move |(to, message)| crate::net::send_to(
                role, to, channel, &message
            )));
            receivers
                .source_stream(q!(crate::net::inbox(channel)))
                .weaken_ordering()
        }
    }
}

/// From the proxy to members of a cluster: each message `(to, message)` reaches member `to`
/// of `receivers` (`role` in the topology), in the order the proxy sent them (one sender,
/// one connection). Links with the proxy are reliable under [`Transport::HydroLossy`] too.
pub fn from_proxy<'a, D: 'a, T>(
    messages: Stream<(u32, T), Process<'a, Proxy>, Unbounded, TotalOrder>,
    receivers: &Cluster<'a, D>,
    role: &'static str,
    channel: u8,
    transport: Transport,
) -> Stream<T, Cluster<'a, D>, Unbounded, TotalOrder>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    match transport {
        Transport::Hydro | Transport::HydroLossy => messages
            .map(q!(|(to, message)| (
                hydro_lang::location::MemberId::from_raw_id(to),
                message
            )))
            .demux(receivers, TCP.fail_stop().bincode()),
        Transport::Zoo => {
            messages.for_each(q!(move |(to, message)| crate::net::send_to(
                role, to, channel, &message
            )));
            receivers
                .source_stream(q!(crate::net::inbox(channel)))
                .map(q!(|(_proxy, message)| message))
        }
    }
}

/// From every member of a cluster to the proxy, which sees `(from, message)`. Reliable under
/// [`Transport::HydroLossy`] too.
pub fn to_proxy<'a, S: 'a, T>(
    messages: Stream<T, Cluster<'a, S>, Unbounded, TotalOrder>,
    proxy: &Process<'a, Proxy>,
    channel: u8,
    transport: Transport,
) -> Stream<(u32, T), Process<'a, Proxy>, Unbounded, NoOrder>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    match transport {
        Transport::Hydro | Transport::HydroLossy => messages
            .send(proxy, TCP.fail_stop().bincode())
            .entries()
            .map(q!(|(from, message)| (from.get_raw_id(), message))),
        Transport::Zoo => {
            messages.for_each(q!(move |message| crate::net::send_to(
                "proxy", 0, channel, &message
            )));
            proxy
                .source_stream(q!(crate::net::inbox(channel)))
                .weaken_ordering()
        }
    }
}
