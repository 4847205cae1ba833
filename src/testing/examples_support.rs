//! Helpers shared by the examples and the book's narrated demos.

use crate::protocol::{KVSOperation, Key};
use crate::values::VectorClock;
use crate::values::causal::{CausalValue, causal_delete, causal_write};

/// A causally versioned string: the value type of the causal (replicated) demos.
pub type CausalString = CausalValue<String>;

/// Prints one step of a demo: what it shows, the command, and the reply.
pub fn log_operation(narration: &str, command: &str, reply: &str) {
    println!("# {narration}\n> {command}\n{reply}\n");
}

/// A scripted causal history on `key` by two clients, `alice` and `bob`:
/// alice writes; bob, having seen it, overwrites; alice and bob then write *concurrently*
/// (neither saw the other's), which a causal store keeps as two siblings; finally alice,
/// having read both siblings, deletes the key with a clock that dominates them.
pub fn generate_causal_operations(key: &str) -> Vec<KVSOperation<CausalString>> {
    let key = Key::from(key.to_owned());
    let first = VectorClock::new().tick("alice");
    let second = first.clone().tick("bob");
    let alice_concurrent = second.clone().tick("alice");
    let bob_concurrent = second.clone().tick("bob");
    let mut both = alice_concurrent.clone();
    lattices::Merge::merge(&mut both, bob_concurrent.clone());
    vec![
        KVSOperation::Put(key.clone(), causal_write(first, "draft".into())),
        KVSOperation::Put(key.clone(), causal_write(second, "reviewed".into())),
        KVSOperation::Put(
            key.clone(),
            causal_write(alice_concurrent, "alice's edit".into()),
        ),
        KVSOperation::Put(
            key.clone(),
            causal_write(bob_concurrent, "bob's edit".into()),
        ),
        KVSOperation::Get(key.clone()),
        KVSOperation::Put(key.clone(), causal_delete(both.tick("alice"))),
        KVSOperation::Get(key),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{KVSRequest, KVSResult};
    use crate::store::lattice_core::LatticeStore;
    use crate::store::seam::StorageInput;
    use crate::values::causal::siblings;

    #[test]
    fn the_causal_script_produces_siblings_then_a_delete() {
        let mut store = LatticeStore::default();
        let mut reads = vec![];
        for (request, op) in (0..).zip(generate_causal_operations("doc")) {
            let (reply, _) = store.apply(StorageInput::Request(KVSRequest {
                at: 0,
                client: 1,
                request,
                op,
            }));
            if let Some(KVSResult::Value(v)) = reply.map(|r| r.result) {
                reads.push(siblings(&v));
            }
        }
        assert_eq!(
            reads,
            vec![
                vec!["alice's edit".to_string(), "bob's edit".to_string()],
                vec![],
            ]
        );
    }
}
