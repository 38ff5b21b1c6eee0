#!/usr/bin/env python3
"""Shipped analyses at scale: the care-gap suite and CMS-HCC scoring on a generated export.

    python3 benches/reports.py --binary PATH [--patients 10000] [--threads N] [--work DIR]

Generates an export (`fhirhouse gen --patients N --seed 7`), loads it into a warehouse, then
times, each under /usr/bin/time (wall seconds, peak RSS):

1. `fhirhouse report care_gaps` (all five measures, summary), and its per-patient result;
2. `fhirhouse report hcc` for V28 and V24 (per-patient scores, diagnoses from 2019, active
   Conditions), and V28's per-HCC evidence result.

The generator's sample data ends in 2020, so the measurement period is 2019 and the HCC
service year 2019. Writes the raw numbers to benches/results/<date>-reports.json and prints
a Markdown table for benches/RESULTS.md. Only the standard library is needed.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import ROOT, export_bytes, generate, machine, timed  # noqa: E402

ANALYSES = {
    "care_gaps_summary": ["care_gaps", "--period-start", "2019-01-01"],
    "care_gaps_patients": ["care_gaps", "--period-start", "2019-01-01", "--result", "patients"],
    "hcc_v28_patients": ["hcc", "--service-from", "2019-01-01", "--service-to", "2019-12-31",
                         "--conditions", "active", "--result", "patients"],
    "hcc_v24_patients": ["hcc", "--model", "V24", "--service-from", "2019-01-01", "--service-to", "2019-12-31",
                         "--conditions", "active", "--result", "patients"],
    "hcc_v28_hccs": ["hcc", "--service-from", "2019-01-01", "--service-to", "2019-12-31",
                     "--conditions", "active", "--result", "hccs"],
}


def csv_rows(path):
    with open(path, encoding="utf-8") as f:
        return max(sum(1 for _ in f) - 1, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", type=Path, required=True, help="a release fhirhouse binary")
    ap.add_argument("--patients", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache/fhirhouse/bench")
    args = ap.parse_args()
    fhirhouse = str(args.binary.resolve())
    export = args.work / f"export-{args.patients}-seed7"
    warehouse = args.work / f"warehouse-{args.patients}"
    results = args.work / "report-results"
    runs = {}

    if not (export / "manifest.json").exists():
        s, rss, _cpu = generate(fhirhouse, args.patients, export, seed=7)
        runs["gen"] = {"seconds": s, "peak_rss_mb": rss}
    mb = export_bytes(export) / 1e6
    shutil.rmtree(warehouse, ignore_errors=True)
    s, rss, _out, _cpu = timed([fhirhouse, "-q", "load", str(export), "--out", str(warehouse),
                       "--threads", str(args.threads)])
    runs["load"] = {"seconds": s, "peak_rss_mb": rss, "mb": mb, "mb_per_s": mb / s}

    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    for name, cli in ANALYSES.items():
        out = results / f"{name}.csv"
        s, rss, _out, _cpu = timed([fhirhouse, "-q", "report", cli[0], str(warehouse), *cli[1:], "-o", str(out)])
        runs[name] = {"seconds": s, "peak_rss_mb": rss, "rows": csv_rows(out)}
        print(f"{name}: {s:.2f} s, {rss:.0f} MB, {runs[name]['rows']} rows", file=sys.stderr)

    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "export": {"path": str(export), "patients": args.patients, "mb": mb},
        "threads": args.threads,
        "runs": runs,
        "care_gaps_summary": (results / "care_gaps_summary.csv").read_text(encoding="utf-8"),
    }
    out = ROOT / "benches" / "results" / f"{datetime.date.today().isoformat()}-reports.json"
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    print("| run | seconds | peak RSS | result rows |\n|---|---:|---:|---:|")
    for name, run in runs.items():
        rows = run.get("rows", "")
        print(f"| {name} | {run['seconds']:.2f} | {run['peak_rss_mb']:.0f} MB | {rows} |")


if __name__ == "__main__":
    main()
