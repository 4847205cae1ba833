//! A round-based simulation of push rumor mongering, after Demers et al.
//!
//! Section 1.4 of *Epidemic algorithms for replicated database maintenance*
//! (PODC 1987) measures rumor mongering on 1000 sites by simulation. This
//! module reruns that experiment using the very [`RumorStore`] and [`Rng`]
//! a replica uses, so the numbers it prints are numbers about *our* code,
//! not about a model of it.
//!
//! # The model
//!
//! * `n` sites, all able to talk to all. One rumor (one key) starts hot at
//!   site 0 in round 0.
//! * Each round, every site that holds the rumor hot *at the start of the
//!   round* pushes it to `fanout` distinct random peers (1 in the paper).
//! * A peer that did not know the rumor learns it and makes it hot via
//!   [`RumorStore::heard`]. By convention it starts pushing **in the next
//!   round**, not the current one: a round is one synchronous "cycle" of
//!   the paper, in which every site makes its calls once.
//! * After its pushes the sender applies loss of interest with
//!   [`RumorStore::contacted`], once per push. "The peer already had it" is
//!   judged on the state **at the start of the round**: calls within a
//!   cycle are simultaneous, so a peer told by two sites in the same round
//!   answers "that was news to me" to both. With `fanout > 1` all of a
//!   round's pushes are sent, and their feedback is applied after, even if
//!   the first one retires the rumor.
//! * The run ends when no site holds the rumor hot. It does end (for a
//!   coin, with probability 1): every hot site makes a contact each round,
//!   a contact that does not count can only reach a site in the round it
//!   learns the rumor, so there are finitely many of those, and every other
//!   contact counts against the rumor.
//!
//! # What is measured (as in the paper)
//!
//! * **residue** `s`: the fraction of sites that never heard the rumor;
//! * **traffic** `m`: total pushes divided by `n`;
//! * **t_ave**: the mean round at which the sites that heard the rumor heard
//!   it (the origin counts, at round 0);
//! * **t_last**: the round at which the last site to hear it heard it.
//!
//! # How close to the paper
//!
//! [`table`] prints the published figures next to ours (averages of many
//! runs: a single run varies a lot, since a rumor sometimes dies in its
//! first rounds). The published figures are recalled, not checked against
//! the paper. With the two conventions below, over 1000 runs, residue,
//! traffic and `t_last` agree with them to within 3% for feedback + counter
//! at every `k`, and within 15% for blind + coin (whose residue at `k = 5`
//! is the worst: 0.0068 against 0.008). That strongly suggests both the
//! recall and the conventions are right:
//!
//! * **Feedback is judged at the start of the round** (above). Judging it at
//!   the moment of the push instead makes a second push to a site that
//!   learned the rumor this round count against the sender: with `k = 1`
//!   that gives residue 0.20 and traffic 1.59 instead of the paper's 0.176
//!   and 1.74.
//! * **A counter counts contacts that count *in a row*** (see
//!   [`LossOfInterest::Counter`]): a push that was news to the peer restores
//!   full interest. Counting them cumulatively instead leaves 1.3–1.7 times
//!   the paper's residue and about 8% less traffic for `k = 2..=5`.
//!
//! One column does not agree: our `t_ave` is about 10 rounds for every `k`
//! where the paper has 11.0 rising to 12.8 (feedback + counter), and 1–2
//! rounds below it for blind + coin, while our `t_last` matches. The bulk of
//! sites hear the rumor in its exponential phase, before anyone loses
//! interest, so `t_ave` should barely depend on `k`; we suspect the paper
//! measured it differently (or the recalled column is off), and have not
//! found a definition that reproduces it.

use crate::replication::gossip::rng::Rng;
use crate::replication::gossip::rumor::{Feedback, LossOfInterest, RumorConfig, RumorStore};

/// The number of sites in the paper's simulations.
pub const DEFAULT_SITES: usize = 1000;

/// The one key every site gossips about.
const RUMOR: u32 = 0;

/// The measurements of one run, or their mean over several runs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Outcome {
    /// The fraction of sites that never heard the rumor (`s`).
    pub residue: f64,
    /// Pushes per site (`m`): total pushes divided by the number of sites.
    pub traffic: f64,
    /// The mean round at which the sites that heard the rumor heard it.
    pub t_ave: f64,
    /// The round at which the last site to hear the rumor heard it.
    pub t_last: f64,
}

/// Runs one epidemic on `n` sites with `config`, reproducibly from `seed`.
///
/// With fewer than two sites (or `fanout == 0`) nobody can be told
/// anything: the rumor stays at its origin and the run stops at once.
pub fn simulate(n: usize, config: RumorConfig, seed: u64) -> Outcome {
    let mut rng = Rng::new(seed);
    run(n, config, &mut rng)
}

/// Averages `runs` independent epidemics, each seeded from `seed`. With
/// `runs == 0` every field is zero.
pub fn average(n: usize, config: RumorConfig, runs: u32, seed: u64) -> Outcome {
    let mut seeds = Rng::new(seed);
    let mut sum = Outcome::default();
    for _ in 0..runs {
        let one = simulate(n, config, seeds.next_u64());
        sum.residue += one.residue;
        sum.traffic += one.traffic;
        sum.t_ave += one.t_ave;
        sum.t_last += one.t_last;
    }
    let runs = f64::from(runs.max(1));
    Outcome {
        residue: sum.residue / runs,
        traffic: sum.traffic / runs,
        t_ave: sum.t_ave / runs,
        t_last: sum.t_last / runs,
    }
}

/// The state of one simulated epidemic in progress (public only because Hydro's staging of
/// this crate drops the methods of private types).
pub struct World {
    /// Each site's rumor store, exactly as a replica would hold it.
    stores: Vec<RumorStore<u32>>,
    /// The round at which each site heard the rumor, if it did.
    heard_at: Vec<Option<u32>>,
    /// Every push made so far.
    pushes: u64,
}

impl World {
    /// `n` sites, of which site 0 has just heard the rumor (round 0).
    pub fn new(n: usize, config: RumorConfig) -> Self {
        let mut world = World {
            stores: (0..n).map(|_| RumorStore::new(config)).collect(),
            heard_at: vec![None; n],
            pushes: 0,
        };
        world.learn(0, 0);
        world
    }

    /// Site `site` hears the rumor for the first time, in `round`.
    pub fn learn(&mut self, site: usize, round: u32) {
        if let Some(slot) = self.heard_at.get_mut(site) {
            *slot = Some(round);
        }
        if let Some(store) = self.stores.get_mut(site) {
            store.heard(RUMOR);
        }
    }

    /// Whether `site` has heard the rumor.
    pub fn knows(&self, site: usize) -> bool {
        matches!(self.heard_at.get(site), Some(Some(_)))
    }

    /// Whether `site` had heard the rumor before `round` began: the
    /// feedback it gives to every push it receives in `round`.
    pub fn knew_before(&self, site: usize, round: u32) -> bool {
        matches!(self.heard_at.get(site), Some(Some(heard)) if *heard < round)
    }

    /// Whether `site` still holds the rumor hot.
    pub fn is_hot(&self, site: usize) -> bool {
        self.stores.get(site).is_some_and(|s| s.is_hot(&RUMOR))
    }

    /// Site `site` pushes to its random peers in `round`. Returns the sites
    /// that learned the rumor from it.
    pub fn push_from(&mut self, site: usize, round: u32, rng: &mut Rng) -> Vec<usize> {
        let n = self.stores.len();
        let fanout = self.stores[site].config().fanout;
        let peers = rng.pick_peers(site, n, fanout);
        let mut learned = Vec::new();
        let mut already_had = Vec::with_capacity(peers.len());
        for peer in peers {
            self.pushes += 1;
            already_had.push(self.knew_before(peer, round));
            if !self.knows(peer) {
                self.learn(peer, round);
                learned.push(peer);
            }
        }
        // Feedback for the whole round's pushes, after they were all sent.
        for had in already_had {
            self.stores[site].contacted(&RUMOR, had, rng);
        }
        learned
    }

    /// The measurements once the epidemic is over.
    pub fn outcome(&self) -> Outcome {
        let n = self.heard_at.len();
        let times: Vec<u32> = self.heard_at.iter().flatten().copied().collect();
        let heard = times.len();
        let mean = |total: u64| total as f64 / heard.max(1) as f64;
        Outcome {
            residue: (n - heard) as f64 / n.max(1) as f64,
            traffic: self.pushes as f64 / n.max(1) as f64,
            t_ave: mean(times.iter().map(|&t| u64::from(t)).sum()),
            t_last: f64::from(times.iter().copied().max().unwrap_or(0)),
        }
    }
}

/// Runs one epidemic to quiescence, drawing randomness from `rng`.
fn run(n: usize, config: RumorConfig, rng: &mut Rng) -> Outcome {
    if n == 0 {
        return Outcome::default();
    }
    let mut world = World::new(n, config);
    if n < 2 || config.fanout == 0 {
        return world.outcome();
    }
    // Sites hot at the start of the round: only they push this round.
    let mut senders = vec![0];
    let mut round = 0;
    while !senders.is_empty() {
        round += 1;
        let mut next = Vec::with_capacity(senders.len() * 2);
        for site in senders {
            let learned = world.push_from(site, round, rng);
            if world.is_hot(site) {
                next.push(site);
            }
            next.extend(learned);
        }
        senders = next;
    }
    world.outcome()
}

/// One row of a table published in the paper, for one `k`.
#[derive(Debug, Clone, Copy)]
struct PaperRow {
    /// Residue `s`.
    residue: f64,
    /// Traffic `m`.
    traffic: f64,
    /// Mean time to hear the rumor, in cycles.
    t_ave: f64,
    /// Time at which the last site heard it, in cycles.
    t_last: f64,
}

/// Shorthand for a [`PaperRow`] literal.
const fn row(residue: f64, traffic: f64, t_ave: f64, t_last: f64) -> PaperRow {
    PaperRow {
        residue,
        traffic,
        t_ave,
        t_last,
    }
}

// The published figures for n = 1000, k = 1..=5. RECALLED, NOT CHECKED:
// they were supplied from memory and could not be verified against the
// paper from here. Two sanity checks they pass: for feedback + counter the
// paper's own lower bound on traffic, m >= (k+1)(1-s) - 1/n, holds for
// every row; and for blind + coin with k = 1 every site pushes exactly
// once, so the rumor walks a chain until it hits a site that knew it,
// about sqrt(pi n / 2) ~ 40 sites, matching s = 0.96 and m = 0.04.

/// Table 1 of the paper: push, feedback, counter (recalled, not checked).
const TABLE_1: [PaperRow; 5] = [
    row(0.176, 1.74, 11.0, 16.8),
    row(0.037, 3.30, 12.1, 16.9),
    row(0.011, 4.53, 12.5, 17.4),
    row(0.0036, 5.64, 12.7, 17.5),
    row(0.0012, 6.68, 12.8, 17.7),
];

/// Table 2 of the paper: push, blind, coin (recalled, not checked).
const TABLE_2: [PaperRow; 5] = [
    row(0.960, 0.04, 19.0, 38.0),
    row(0.205, 1.59, 17.0, 33.0),
    row(0.060, 2.82, 15.0, 32.0),
    row(0.021, 3.91, 14.1, 32.0),
    row(0.008, 4.95, 13.8, 32.0),
];

/// The paper's push configuration (fanout 1) for a variant and `k`.
fn paper_config(feedback: Feedback, loss: LossOfInterest, k: u32) -> RumorConfig {
    RumorConfig {
        feedback,
        loss,
        k,
        fanout: 1,
    }
}

/// Simulates feedback + counter and blind + coin for `k = 1..=5` on `n`
/// sites, `runs` runs each, and lays the means out beside the paper's
/// Tables 1 and 2. The paper's figures are for `n = 1000`.
pub fn table(n: usize, runs: u32, seed: u64) -> String {
    let variants = [
        (
            "Push, feedback, counter (paper Table 1)",
            Feedback::Feedback,
            LossOfInterest::Counter,
            &TABLE_1,
        ),
        (
            "Push, blind, coin (paper Table 2)",
            Feedback::Blind,
            LossOfInterest::Coin,
            &TABLE_2,
        ),
    ];
    let mut out = format!(
        "Rumor mongering on n = {n} sites, mean of {runs} runs (paper: n = 1000; \
         its figures are recalled, not checked)\n"
    );
    for (title, feedback, loss, paper) in variants {
        out.push_str(&format!("\n{title}\n"));
        out.push_str(" k | residue s       | traffic m   | t_ave       | t_last\n");
        out.push_str("   | ours    paper   | ours  paper | ours  paper | ours  paper\n");
        for (k, published) in (1..).zip(paper.iter()) {
            let ours = average(n, paper_config(feedback, loss, k), runs, seed);
            out.push_str(&format_row(k, &ours, published));
        }
    }
    out
}

/// One line of [`table`].
fn format_row(k: u32, ours: &Outcome, paper: &PaperRow) -> String {
    format!(
        "{k:>2} | {:<7.4} {:<7.4} | {:<5.2} {:<5.2} | {:<5.1} {:<5.1} | {:<5.1} {:<5.1}\n",
        ours.residue,
        paper.residue,
        ours.traffic,
        paper.traffic,
        ours.t_ave,
        paper.t_ave,
        ours.t_last,
        paper.t_last,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feedback_counter(k: u32) -> RumorConfig {
        paper_config(Feedback::Feedback, LossOfInterest::Counter, k)
    }

    #[test]
    fn the_same_seed_gives_the_same_outcome() {
        let config = feedback_counter(2);
        assert_eq!(simulate(200, config, 9), simulate(200, config, 9));
    }

    #[test]
    fn k5_feedback_counter_leaves_under_one_percent() {
        let outcome = average(DEFAULT_SITES, feedback_counter(5), 20, 1);
        assert!(outcome.residue < 0.01, "{outcome:?}");
        // The paper's residue is 0.0012 (recalled): stay within a factor
        // of about 2 on the feedback + counter variant.
        assert!(outcome.residue < 0.003, "{outcome:?}");
    }

    #[test]
    fn k1_feedback_counter_is_near_the_paper() {
        let outcome = average(DEFAULT_SITES, feedback_counter(1), 20, 2);
        // Paper (recalled): residue 0.176, traffic 1.74.
        assert!((0.13..0.22).contains(&outcome.residue), "{outcome:?}");
        assert!((1.6..1.9).contains(&outcome.traffic), "{outcome:?}");
    }

    #[test]
    fn traffic_grows_and_residue_shrinks_with_k() {
        let outcomes: Vec<Outcome> = (1..=4)
            .map(|k| average(DEFAULT_SITES, feedback_counter(k), 10, 3))
            .collect();
        for pair in outcomes.windows(2) {
            assert!(pair[0].traffic < pair[1].traffic, "{outcomes:?}");
            assert!(pair[0].residue > pair[1].residue, "{outcomes:?}");
        }
    }

    #[test]
    fn every_site_hears_without_loss_of_interest_for_long() {
        // With a huge k nobody loses interest before everyone knows.
        let outcome = simulate(300, feedback_counter(1_000), 4);
        assert_eq!(outcome.residue, 0.0);
        assert!(outcome.t_last >= outcome.t_ave);
    }

    #[test]
    fn blind_coin_k1_is_a_short_chain() {
        // Each site pushes exactly once: traffic equals the fraction that
        // heard, minus the origin's share.
        let config = paper_config(Feedback::Blind, LossOfInterest::Coin, 1);
        let outcome = simulate(1_000, config, 5);
        let heard = 1.0 - outcome.residue;
        assert!((outcome.traffic - heard).abs() < 1e-9, "{outcome:?}");
    }

    #[test]
    fn degenerate_clusters_stop_at_once() {
        assert_eq!(simulate(0, feedback_counter(1), 0), Outcome::default());
        let alone = simulate(1, feedback_counter(1), 0);
        assert_eq!(alone.residue, 0.0);
        assert_eq!(alone.traffic, 0.0);
        let mut mute = feedback_counter(1);
        mute.fanout = 0;
        assert_eq!(simulate(10, mute, 0).residue, 0.9);
    }

    #[test]
    fn the_default_config_reaches_small_clusters() {
        let outcome = average(9, RumorConfig::default(), 2_000, 6);
        assert!(outcome.residue < 0.01, "{outcome:?}");
        assert!(outcome.t_last < 4.0, "{outcome:?}");
        let three = average(3, RumorConfig::default(), 200, 6);
        assert_eq!(three.residue, 0.0);
        assert_eq!(three.t_last, 1.0);
    }

    #[test]
    fn table_has_a_row_per_k_and_variant() {
        let text = table(50, 2, 0);
        assert_eq!(text.lines().filter(|l| l.starts_with(" 3 |")).count(), 2);
        assert!(text.contains("Table 1") && text.contains("Table 2"));
    }
}
