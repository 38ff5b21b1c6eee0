//! Runs one view over one NDJSON file, single-threaded, for instruction-level profiling and
//! quick wall-clock checks.
//!
//! ```text
//! cargo build --release --example view_profile
//! valgrind --tool=callgrind target/release/examples/view_profile schemas/observation.json Observation.000.ndjson view
//! valgrind --tool=callgrind target/release/examples/view_profile schemas/observation.json Observation.000.ndjson parse
//! target/release/examples/view_profile schemas/observation.json Observation.000.ndjson time
//! ```
//!
//! `parse` only parses each line (the ceiling); `view` parses and evaluates the view into
//! Arrow builders, cutting a batch every 8,192 rows, as `benches/view_core.rs` does. The
//! difference of the two instruction counts is the view's cost, free of timing noise.
//! `time` runs both passes alternately in one process and prints the best wall time of
//! each and their ratio: a minute's check between the criterion runs that are the record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fhirhouse::view::{CompiledView, ResourceParser, ViewBatchBuilder};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, view, input, mode] = args.as_slice() else {
        eprintln!("usage: view_profile <view.json> <file.ndjson> parse|view|time");
        std::process::exit(2);
    };
    let view =
        Arc::new(CompiledView::from_json_str(&std::fs::read_to_string(view).expect("view file")).expect("valid view"));
    let data = std::fs::read(input).expect("input file");
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut builder = ViewBatchBuilder::new(view);
    let mut pass = |evaluate: bool| -> (usize, Duration) {
        let started = Instant::now();
        let mut scratch = Vec::new();
        let mut parser = ResourceParser::default();
        let mut rows = 0usize;
        for line in &lines {
            scratch.clear();
            scratch.extend_from_slice(line);
            let parsed = parser.parse(&mut scratch).expect("valid JSON");
            let doc = parsed.doc();
            if evaluate {
                rows += builder.append(doc).expect("view evaluates");
                if builder.len() >= 8192 {
                    builder.finish();
                }
            } else {
                std::hint::black_box(&doc);
            }
        }
        builder.finish();
        (rows, started.elapsed())
    };
    match mode.as_str() {
        "time" => {
            let (mut parse, mut view) = (Duration::MAX, Duration::MAX);
            for _ in 0..30 {
                parse = parse.min(pass(false).1);
                view = view.min(pass(true).1);
            }
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            println!(
                "{} resources: parse {:.2} ms, parse+view {:.2} ms, parse+view at {:.0}% of parse throughput",
                lines.len(),
                ms(parse),
                ms(view),
                100.0 * parse.as_secs_f64() / view.as_secs_f64()
            );
        }
        mode => {
            let (rows, _) = pass(mode == "view");
            println!("{} resources, {rows} rows", lines.len());
        }
    }
}
