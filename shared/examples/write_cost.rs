//! Cost of Caja's exact ledger write pattern with the pinned automerge: one fact appended
//! per transaction to a day document, then its change bytes taken for storage.
//!
//! `cargo run --release -p caja-shared --example write_cost` prints µs per step at growing
//! document sizes (see BENCHMARKS.md).

use std::time::Instant;

use caja_shared::docs;
use caja_shared::facts::tests_support::sample;
use caja_shared::ids::FactId;

fn main() {
    let mut am = docs::ledger_empty();
    let mut n = 0usize;
    println!("| facts in doc | append (µs) | save_after (µs) | last change by hash (µs) |");
    println!("| ---: | ---: | ---: | ---: |");
    for target in [1_000usize, 5_000, 10_000, 20_000] {
        let (mut t_append, mut t_save, mut t_hash, mut k) = (0u128, 0u128, 0u128, 0u128);
        while n < target {
            let mut f = sample();
            f.id = FactId::new();
            let before = am.get_heads();
            let t = Instant::now();
            docs::append_facts(&mut am, &[f]).expect("append");
            t_append += t.elapsed().as_nanos();
            let t = Instant::now();
            let bytes = am.save_after(&before);
            t_save += t.elapsed().as_nanos();
            let t = Instant::now();
            let heads = am.get_heads();
            let c = automerge::ReadDoc::get_change_by_hash(&am, &heads[0]).expect("change");
            assert_eq!(c.raw_bytes().len(), bytes.len());
            t_hash += t.elapsed().as_nanos();
            n += 1;
            k += 1;
        }
        println!(
            "| {target} | {:.1} | {:.1} | {:.1} |",
            t_append as f64 / k as f64 / 1000.0,
            t_save as f64 / k as f64 / 1000.0,
            t_hash as f64 / k as f64 / 1000.0
        );
    }
}
