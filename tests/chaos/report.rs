//! What the chaos workload did, printed for whoever reports a run's figures: the operations
//! depend on the seed, and they describe the run rather than decide whether it passed.

use crate::fleet::Fleet;

/// Resources and the operations performed on them, per kind.
pub fn tally(fleet: &Fleet) {
    let mut total = (0, 0, 0);
    for (kind, tally) in fleet.tally() {
        println!(
            "  {kind:<30} created {:>3}  rotations {:>3}  deleted {:>3}",
            tally.creates, tally.rotations, tally.deletions
        );
        total = (
            total.0 + tally.creates,
            total.1 + tally.rotations,
            total.2 + tally.deletions,
        );
    }
    println!(
        "  {:<30} created {:>3}  rotations {:>3}  deleted {:>3}",
        "all", total.0, total.1, total.2
    );
}
