//! The tags of Multi-Paxos's three clusters, as Hydro locations: `Cluster<'a, Proposer>` and
//! so on. They carry no data; they keep the roles' streams apart in the types, so a message
//! meant for an acceptor cannot be sent to a replica.

/// Tag type of the proposer cluster.
pub struct Proposer;
/// Tag type of the acceptor cluster.
pub struct Acceptor;
/// Tag type of the replica cluster.
pub struct Replica;
