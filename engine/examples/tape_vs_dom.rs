//! simd-json's borrowed DOM versus its tape, on one NDJSON file: parse alone, and parse
//! plus the key lookups of a typical view (the root and nested elements the shipped
//! Observation view reads), taking the first item of arrays.
//!
//! `cargo run --release --example tape_vs_dom -- Observation.000.ndjson`
//!
//! The lookups are a stand-in for view evaluation, to tell whether evaluating views over the
//! tape would pay: they exercise the representation, not FHIRPath.
use std::time::{Duration, Instant};

use simd_json::prelude::*;
use simd_json::{BorrowedValue, Buffers};

/// Paths as key sequences; arrays on the way contribute their first element.
const PATHS: &[&[&str]] = &[
    &["id"],
    &["subject", "reference"],
    &["encounter", "reference"],
    &["status"],
    &["category", "coding", "code"],
    &["code", "coding", "system"],
    &["code", "coding", "code"],
    &["code", "coding", "display"],
    &["code", "text"],
    &["effectiveDateTime"],
    &["issued"],
    &["valueQuantity", "value"],
    &["valueQuantity", "unit"],
    &["valueQuantity", "code"],
    &["valueCodeableConcept", "coding", "code"],
    &["valueString"],
    &["interpretation", "coding", "code"],
    &["component"],
];

fn dom_lookup<'v>(mut node: &'v BorrowedValue<'v>, path: &[&str]) -> Option<&'v BorrowedValue<'v>> {
    for key in path {
        node = node.as_object()?.get(*key)?;
        if let Some(array) = node.as_array() {
            node = array.first()?;
        }
    }
    Some(node)
}

fn tape_lookup<'t, 'i>(
    mut node: simd_json::tape::Value<'t, 'i>,
    path: &[&str],
) -> Option<simd_json::tape::Value<'t, 'i>> {
    for key in path {
        node = node.as_object()?.get(*key)?;
        if let Some(array) = node.as_array() {
            node = array.iter().next()?;
        }
    }
    Some(node)
}

fn best(mut run: impl FnMut() -> usize) -> (Duration, usize) {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let found = run();
            (start.elapsed(), found)
        })
        .min_by_key(|(t, _)| *t)
        .expect("five rounds")
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: tape_vs_dom <file.ndjson>");
    let data = std::fs::read(path).expect("input file");
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut scratch = Vec::new();
    let mut buffers = Buffers::default();
    let mut each_line = |visit: &mut dyn FnMut(&mut Vec<u8>, &mut Buffers) -> usize| {
        let mut total = 0;
        for line in &lines {
            scratch.clear();
            scratch.extend_from_slice(line);
            total += visit(&mut scratch, &mut buffers);
        }
        total
    };
    let (dom, _) = best(|| {
        each_line(&mut |s, b| simd_json::to_borrowed_value_with_buffers(s, b).map(|d| d.is_object() as usize).unwrap())
    });
    let (tape, _) = best(|| each_line(&mut |s, b| simd_json::to_tape_with_buffers(s, b).map(|t| t.0.len()).unwrap()));
    let (dom_nav, dom_found) = best(|| {
        each_line(&mut |s, b| {
            let doc = simd_json::to_borrowed_value_with_buffers(s, b).unwrap();
            PATHS.iter().filter(|p| dom_lookup(&doc, p).is_some()).count()
        })
    });
    let (tape_nav, tape_found) = best(|| {
        each_line(&mut |s, b| {
            let tape = simd_json::to_tape_with_buffers(s, b).unwrap();
            let root = tape.as_value();
            PATHS.iter().filter(|p| tape_lookup(root, p).is_some()).count()
        })
    });
    assert_eq!(dom_found, tape_found, "both representations find the same elements");
    println!("{} lines, {} lookups found", lines.len(), dom_found);
    println!(
        "parse only:            dom {dom:>10.2?}  tape {tape:>10.2?}  tape/dom {:.2}",
        tape.as_secs_f64() / dom.as_secs_f64()
    );
    println!(
        "parse + {} lookups:    dom {dom_nav:>10.2?}  tape {tape_nav:>10.2?}  tape/dom {:.2}",
        PATHS.len(),
        tape_nav.as_secs_f64() / dom_nav.as_secs_f64()
    );
    println!(
        "lookups alone:         dom {:>10.2?}  tape {:>10.2?}",
        dom_nav.saturating_sub(dom),
        tape_nav.saturating_sub(tape)
    );
}
