#!/usr/bin/env python3
"""End-to-end harness: fhirhouse load against the parse-only ceiling and DuckDB, same run.

    python3 benches/e2e.py [--patients 2000] [--small-patients 200] [--large-patients N]
                           [--export DIR]
                           [--threads N] [--skip-duckdb] [--skip-peer] [--peer-binary PATH] [--binary PATH]
                           [--encode-only PATH] [--repeat N]

On one export (generated with `fhirhouse gen --patients N --seed 1` unless --export names
one), measures in one run, each with wall seconds, MB/s, resources/s and peak RSS
(/usr/bin/time):

0. the generator itself (`fhirhouse gen`, timed while it writes both exports);
1. the ceiling: every line read and parsed by simd-json on all cores, nothing else
   (`fhirhouse scan`, which reads exactly as a load does), and on one core;
2. `fhirhouse load` with all default views, on all cores and on one, on all cores without
   the code crosswalks (`--no-crosswalk`, for what they cost), and on all cores over a
   second export 10x smaller (--small-patients) and, with --large-patients N, a third one
   (say 10x larger; 8.8 GB for 20,000 patients), for the memory curve;
3. DuckDB (pinned, installed into a throwaway venv under the work folder) flattening
   Patient, Condition, Observation + components, MedicationRequest and Encounter with
   read_ndjson and explicit columns, then COPY TO Parquet (zstd), every column of the six
   shipped views written by hand in SQL (benches/duckdb_views.py); and fhirhouse load
   restricted to the same six views, partitioned as shipped and without their partition
   column (one file per table, as DuckDB writes); row counts are compared, and after the
   rounds the two tools' tables value for value;
4. a peer Rust SQL on FHIR CLI, helios-sof's `sof-cli` (pinned, `cargo install`ed into the
   work folder on first use; that compile takes a while), running the same six
   ViewDefinitions file by file to zstd Parquet; its row counts are compared too;
5. the Parquet encoding alone (benches/encode_only.rs: the warehouse of the all-view load,
   and of the six-view load, read back into memory and written again with the load's
   settings, on one thread), and the ceiling of the six views' five input files: with the
   ceilings, what bounds the ratios if views, crosswalks and partitioning cost nothing;
6. when DuckDB runs, the load's fixed cost: the six views over an export of one Patient
   (starting, reading the views and mappings, committing), which the bounds against DuckDB
   also count.

Every timed run but the generator and the peer runs --repeat times (default 3), in rounds
that go through all of them in turn, so that a slow spell of the host falls on every run
alike rather than on one; each run reports its median seconds and CPU seconds, its largest
peak RSS, and keeps every sample; each ratio is given from the medians and round by round.
The output of each timed run is moved aside, not deleted, until all the rounds are done
(see `retire`). Every run records its CPU seconds (user + system) beside its wall seconds, and every load
the part files it wrote. Writes the machine description and raw numbers to
benches/results/<date>-<size>.json (with the time added when a run of the day is already
there) and prints a Markdown summary for benches/RESULTS.md. Only the standard library is needed; DuckDB
comes from PyPI into <work>/duckdb-venv.
"""

import argparse
import datetime
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from duckdb_views import TABLES as DUCKDB_TABLES, duckdb_sql

ROOT = Path(__file__).resolve().parent.parent
DUCKDB_VERSION = "1.1.3"
HELIOS_SOF_VERSION = "0.2.7"
# The six views of the DuckDB comparison: those duckdb_views.py writes SQL for.
FIVE_VIEWS = list(DUCKDB_TABLES)
# The resource types the six views read.
FIVE_VIEW_TYPES = sorted({resource_type for resource_type, *_ in DUCKDB_TABLES.values()})


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns (seconds, peak RSS MB, stdout, CPU seconds)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        out = subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%e %M %U %S", *cmd], check=True, text=True,
                             capture_output=True, env=env)
        seconds, rss_kb, user, system = t.read().split()[-4:]
    return float(seconds), int(rss_kb) / 1024, out.stdout, float(user) + float(system)


def without_partition_tags(node):
    """A ViewDefinition (or part of one) with its fhirhouse/partition column tags removed."""
    if isinstance(node, list):
        return [without_partition_tags(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: without_partition_tags(v) for k, v in node.items() if k != "tag"}
    tags = [t for t in node.get("tag", []) if t.get("name") != "fhirhouse/partition"]
    if tags:
        out["tag"] = tags
    return out


def retire(path, trash):
    """Moves a timed run's output out of the way, into `trash`, which is emptied only before
    and after all the rounds. Deleting it here instead would put the deletion seconds before
    the next load: on ext4 without a journal (this project's CI machines) a file or folder
    created within a minute or more of a deletion makes the kernel scan past every inode freed in
    that time (`recently_deleted`): 13% of the CPU of a six-view load of 94 MB, which
    creates some 480 files and folders where DuckDB creates six."""
    if path.exists():
        trash.mkdir(parents=True, exist_ok=True)
        path.rename(trash / f"{path.name}-{len(list(trash.iterdir()))}")


def median(values):
    """The middle value; the mean of the two middle ones for an even count."""
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def summary(samples):
    """One run's samples as one result: median seconds and CPU seconds, the largest peak
    RSS (the memory target is a ceiling), the other fields of the last sample, and every
    sample's seconds and CPU seconds."""
    last = samples[-1]
    return {**last, "seconds": median([s["seconds"] for s in samples]),
            "cpu_seconds": median([s["cpu_seconds"] for s in samples]),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in samples),
            "seconds_samples": [s["seconds"] for s in samples],
            "cpu_seconds_samples": [s["cpu_seconds"] for s in samples]}


def export_bytes(export):
    return sum(p.stat().st_size for p in Path(export).glob("*.ndjson*"))


def generate(fhirhouse, patients, dest, seed=1):
    """Writes a fresh export of `patients` patients; returns (seconds, peak RSS MB, CPU seconds)."""
    shutil.rmtree(dest, ignore_errors=True)
    seconds, rss, _, cpu = timed([str(fhirhouse), "-q", "gen", "--patients", str(patients), "--seed", str(seed),
                                  "--out", str(dest)])
    return seconds, rss, cpu


def machine():
    """What the numbers were measured on, for the results file."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor())
    flags = next((line.split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return {"cpus": os.cpu_count(), "cpu_model": model, "virtual_machine": "hypervisor" in flags,
            "platform": platform.platform(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def code_version(fhirhouse):
    """The commit the numbers were measured on (with `-dirty` for uncommitted changes) and
    the binary's own version line."""
    try:
        commit = sh(["git", "describe", "--always", "--dirty"], cwd=ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"commit": commit, "binary": str(fhirhouse), "version": sh([str(fhirhouse), "--version"]).stdout.strip()}


def peer_sof_cli(work, explicit):
    """helios-sof's sof-cli: the given binary, or one installed under work/helios (installed now
    if missing). None, with the reason printed, when it cannot be had."""
    if explicit:
        return explicit.resolve()
    binary = work / "helios" / "bin" / "sof-cli"
    if not binary.exists():
        print(f"installing helios-sof {HELIOS_SOF_VERSION} from crates.io (release build)...", file=sys.stderr)
        done = subprocess.run(["cargo", "install", "--locked", "helios-sof", "--version", HELIOS_SOF_VERSION,
                               "--root", str(work / "helios"), "--target-dir", str(work / "helios-target")],
                              text=True, capture_output=True)
        if done.returncode != 0:
            print(f"peer skipped: cargo install helios-sof failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
    return binary


def run_peer(sof_cli, export, out, views, threads):
    """Runs each view over its resource type's files; returns (seconds, peak RSS MB, CPU seconds, errors)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    seconds, rss, cpu, errors = 0.0, 0.0, 0.0, {}
    for view in views:
        resource = json.loads((ROOT / "schemas" / f"{view}.json").read_text())["resource"]
        for i, source in enumerate(sorted(Path(export).glob(f"{resource}.*ndjson"))):
            cmd = [str(sof_cli), "-v", str(ROOT / "schemas" / f"{view}.json"), "-b", str(source), "-f", "parquet",
                   "--parquet-compression", "zstd", "--threads", str(threads), "-o", str(out / f"{view}-{i:03}.parquet")]
            try:
                s, r, _, c = timed(cmd)
            except subprocess.CalledProcessError as e:
                errors[view] = (e.stderr or "").strip()[-500:]
                break
            seconds, rss, cpu = seconds + s, max(rss, r), cpu + c
    return seconds, rss, cpu, errors


def duckdb_python(work):
    venv = work / "duckdb-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        sh([sys.executable, "-m", "venv", str(venv)])
        sh([str(python), "-m", "pip", "install", "-q", f"duckdb=={DUCKDB_VERSION}"])
    return python


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--small-patients", type=int,
                    help="patients in the second, smaller export for the memory curve (default: a tenth; 0: none)")
    ap.add_argument("--large-patients", type=int, default=0,
                    help="patients in a third, larger export, loaded for the memory curve only (default: none)")
    ap.add_argument("--export", type=Path, help="use this export instead of generating one")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--skip-duckdb", action="store_true")
    ap.add_argument("--skip-peer", action="store_true", help="skip helios-sof's sof-cli")
    ap.add_argument("--peer-binary", type=Path, help="use this sof-cli binary instead of installing one")
    ap.add_argument("--debug", action="store_true", help="use the debug build (a quick check of the harness)")
    ap.add_argument("--binary", type=Path, help="use this fhirhouse binary instead of building one")
    ap.add_argument("--encode-only", type=Path,
                    help="the encode_only bench binary (built unless --binary is given; without one, step 5 is skipped)")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache/fhirhouse/bench")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of the timed runs; each reports its median (default 3)")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    trash = work / "trash"
    shutil.rmtree(trash, ignore_errors=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/fhirhouse/target"))
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    # Only the binary: building examples or benches would pull dev-dependencies into the
    # feature set and rebuild the whole stack in release.
    if args.binary:
        fhirhouse = args.binary.resolve()
    else:
        profile = [] if args.debug else ["--release"]
        subprocess.run(["cargo", "build", *profile, "--locked", "--bin", "fhirhouse"], check=True, cwd=ROOT, env=env)
        fhirhouse = target / ("debug" if args.debug else "release") / "fhirhouse"
    encode_only = args.encode_only.resolve() if args.encode_only else None
    if encode_only is None and not args.binary and not args.debug:
        # Like --release, but with the dev-dependencies in the feature set: on a fresh target
        # folder this builds the stack once more.
        built = subprocess.run(["cargo", "bench", "--locked", "-p", "fhirhouse", "--bench", "encode_only", "--no-run",
                                "--message-format=json"], check=True, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               text=True)
        encode_only = next(Path(m["executable"]) for m in map(json.loads, built.stdout.splitlines())
                           if m.get("reason") == "compiler-artifact" and m.get("executable")
                           and m["target"]["name"] == "encode_only")
    if encode_only is None:
        print("encode-only floor skipped: no --encode-only binary "
              "(cargo bench -p fhirhouse --bench encode_only --no-run prints its path)", file=sys.stderr)

    runs = {}

    def record(name, seconds, rss, cpu, mb=None, **extra):
        mb = size_mb if mb is None else mb
        runs[name] = {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss, "mb": mb, "mb_per_s": mb / seconds,
                      **extra}
        if "resources" in extra:
            runs[name]["resources_per_s"] = extra["resources"] / seconds
        elif "lines" in extra:
            runs[name]["lines_per_s"] = extra["lines"] / seconds
        print(f"{name:32} {seconds:8.2f} s {mb / seconds:8.1f} MB/s {rss:8.0f} MB", file=sys.stderr)

    # The timed runs that are repeated: (name, MB read, function timing one sample).
    measurements = []

    def sample(seconds, rss, cpu, **extra):
        return {"seconds": seconds, "peak_rss_mb": rss, "cpu_seconds": cpu, **extra}

    export, small = args.export, None
    if export is None:
        export = work / f"export-{args.patients}"
        s, rss, cpu = generate(fhirhouse, args.patients, export)
        size_mb = export_bytes(export) / 1e6
        record(f"gen_{args.patients}p", s, rss, cpu, patients=args.patients)
    size_mb = export_bytes(export) / 1e6
    if args.small_patients is None:
        args.small_patients = max(1, args.patients // 10) if args.export is None else 0
    if args.small_patients:
        small = work / f"export-{args.small_patients}"
        s, rss, cpu = generate(fhirhouse, args.small_patients, small)
        record(f"gen_{args.small_patients}p", s, rss, cpu, mb=export_bytes(small) / 1e6, patients=args.small_patients)
    large = None
    if args.large_patients:
        large = work / f"export-{args.large_patients}"
        s, rss, cpu = generate(fhirhouse, args.large_patients, large)
        record(f"gen_{args.large_patients}p", s, rss, cpu, mb=export_bytes(large) / 1e6, patients=args.large_patients)

    def scan(paths, threads):
        s, rss, out, cpu = timed([str(fhirhouse), "scan", *paths, "--threads", str(threads), "--json"])
        return sample(s, rss, cpu, lines=json.loads(out)["lines"])

    for threads in sorted({args.threads, 1}, reverse=True):
        measurements.append((f"ceiling_{threads}t", size_mb, lambda threads=threads: scan([str(export)], threads)))
    # The ceiling of what the six-view load reads: the files of their five resource types.
    five_files = sorted(str(p) for t in FIVE_VIEW_TYPES for p in Path(export).glob(f"{t}.*ndjson*"))
    measurements.append((f"ceiling_five_{args.threads}t", sum(Path(f).stat().st_size for f in five_files) / 1e6,
                         lambda: scan(five_files, args.threads)))
    encoding_samples = {}

    views5 = work / "five-views"
    shutil.rmtree(views5, ignore_errors=True)
    views5.mkdir()
    # The same views without their partition column: one file per table, as DuckDB writes.
    views5_flat = work / "five-views-unpartitioned"
    shutil.rmtree(views5_flat, ignore_errors=True)
    views5_flat.mkdir()
    for v in FIVE_VIEWS:
        shutil.copy(ROOT / "schemas" / f"{v}.json", views5)
        view = json.loads((ROOT / "schemas" / f"{v}.json").read_text())
        (views5_flat / f"{v}.json").write_text(json.dumps(without_partition_tags(view)))
    counts = {}
    # (name, export, threads, views folder, extra arguments)
    loads = [(f"load_all_{args.threads}t", export, args.threads, None, []),
             (f"load_all_nocrosswalk_{args.threads}t", export, args.threads, None, ["--no-crosswalk"]),
             ("load_all_1t", export, 1, None, []),
             (f"load_five_{args.threads}t", export, args.threads, views5, []),
             (f"load_five_unpartitioned_{args.threads}t", export, args.threads, views5_flat, [])]
    if small:
        loads.append((f"load_all_small_{args.threads}t", small, args.threads, None, []))
    if large:
        loads.append((f"load_all_large_{args.threads}t", large, args.threads, None, []))

    def load_command(source, out, threads, views):
        # Through the manifest when there is one, as a user would: it declares each file's type,
        # so a load with five views leaves the other types' files unparsed.
        manifest = Path(source) / "manifest.json"
        cmd = [str(fhirhouse), "-q", "load", str(manifest if manifest.exists() else source), "--out", str(out),
               "--threads", str(threads)]
        return cmd + ["--views", str(views)] if views else cmd

    def timed_load(source, threads, views, extra=()):
        """Loads `source` into <work>/wh, the previous load's output retired first; returns
        the warehouse folder, seconds, peak RSS and CPU seconds."""
        wh = work / "wh"
        retire(wh, trash)
        s, rss, _, cpu = timed(load_command(source, wh, threads, views) + list(extra))
        return wh, s, rss, cpu

    def load(name, source, threads, views, extra):
        wh, s, rss, cpu = timed_load(source, threads, views, extra)
        report = json.loads(next((wh / "_fhirhouse" / "loads").glob("*.json")).read_text())
        rows = {t["table"]: t["rows"] for t in report["tables"]}
        if views:
            counts["fhirhouse" if views == views5 else "fhirhouse_unpartitioned"] = rows
        timing = sample(s, rss, cpu, resources=report["totals"]["loaded"], rows=sum(rows.values()),
                        files=sum(t["files"] for t in report["tables"]))
        if encode_only and threads == args.threads and not extra and source == export:
            # Kept apart from the load's own sample: the rounds below file it under `encoding`.
            timing["encoded"] = json.loads(sh([str(encode_only), str(wh), "--json"]).stdout)
        return timing

    for name, source, threads, views, extra in loads:
        measurements.append((name, export_bytes(source) / 1e6,
                             lambda args_=(name, source, threads, views, extra): load(*args_)))

    # What every load pays whatever its size (starting, reading the views and mappings,
    # creating and committing the snapshot): the six views over an export of one Patient.
    # The DuckDB bounds below count it, so it is timed only when DuckDB runs.
    one_patient = work / "export-one-patient"
    shutil.rmtree(one_patient, ignore_errors=True)
    patient_files = sorted(Path(export).glob("Patient.*ndjson*"))
    if patient_files and not args.skip_duckdb:
        one_patient.mkdir()
        opener = gzip.open if patient_files[0].suffix == ".gz" else open
        with opener(patient_files[0], "rb") as f:
            (one_patient / "Patient.000.ndjson").write_bytes(f.readline())

        def fixed_load():
            _, s, rss, cpu = timed_load(one_patient, args.threads, views5)
            return sample(s, rss, cpu)

        measurements.append((f"load_fixed_{args.threads}t", export_bytes(one_patient) / 1e6, fixed_load))

    count_script = ("import duckdb, json, sys\ncon = duckdb.connect()\n"
                    "print(json.dumps({t: con.execute(f\"SELECT count(*) FROM '{sys.argv[1]}/{t}-*.parquet'\").fetchone()[0] "
                    f"for t in {FIVE_VIEWS!r}}}))\n")
    if not args.skip_peer:
        sof_cli = peer_sof_cli(work, args.peer_binary)
        if sof_cli:
            out = work / "peer-out"
            s, rss, cpu, errors = run_peer(sof_cli, export, out, FIVE_VIEWS, args.threads)
            if errors:
                runs["peer_errors"] = errors
                print(f"sof-cli failed on: {', '.join(errors)}", file=sys.stderr)
            else:
                record(f"sof_cli_five_{args.threads}t", s, rss, cpu)
                if not args.skip_duckdb:
                    out_json = sh([str(duckdb_python(work)), "-c", count_script, str(out)]).stdout
                    counts["sof_cli"] = json.loads(out_json.strip().splitlines()[-1])

    if not args.skip_duckdb:
        python = duckdb_python(work)
        duckdb_out = work / "duckdb-out"
        sql = duckdb_sql(export, duckdb_out, args.threads)
        # The statements are timed inside the process, so that DuckDB's seconds leave out
        # starting Python and importing duckdb (0.13 s here); the process's own wall seconds
        # are kept beside them.
        script = ("import duckdb, json, sys, time\ncon = duckdb.connect()\nstart = time.perf_counter()\n"
                  "con.execute(sys.argv[1])\nseconds = time.perf_counter() - start\n"
                  "print(json.dumps({'seconds': seconds, 'rows': {t: con.execute(f\"SELECT count(*) FROM "
                  f"'{{sys.argv[2]}}/{{t}}.parquet'\").fetchone()[0] for t in {FIVE_VIEWS!r}}}}}))\n")

        def duckdb():
            retire(duckdb_out, trash)
            duckdb_out.mkdir()
            process_seconds, rss, stdout, cpu = timed([str(python), "-c", script, sql, str(duckdb_out)])
            out = json.loads(stdout.strip().splitlines()[-1])
            counts["duckdb"] = out["rows"]
            return sample(out["seconds"], rss, cpu, process_seconds=process_seconds)

        measurements.append((f"duckdb_five_{args.threads}t", size_mb, duckdb))

    repeat = max(1, args.repeat)
    samples = {name: [] for name, _, _ in measurements}
    for round_ in range(1, repeat + 1):
        for name, mb, run in measurements:
            one = run()
            encoded = one.pop("encoded", None)
            samples[name].append(one)
            print(f"{name:32} {one['seconds']:8.2f} s {mb / one['seconds']:8.1f} MB/s {one['peak_rss_mb']:8.0f} MB"
                  f"  (round {round_})", file=sys.stderr)
            if encoded:
                encoding_samples.setdefault(name, []).append(encoded)
                print(f"{'  encoding alone':32} {encoded['encode_seconds']:8.2f} s (one thread)", file=sys.stderr)
    shutil.rmtree(trash, ignore_errors=True)
    value_check = None
    if not args.skip_duckdb:
        # Untimed: the six-view warehouse once more, compared value for value with DuckDB's
        # tables of the last round, so that the ratio is of the same work.
        check = work / "check-wh"
        shutil.rmtree(check, ignore_errors=True)
        sh(load_command(export, check, args.threads, views5))
        value_check = json.loads(sh([str(duckdb_python(work)), str(Path(__file__).resolve().parent / "duckdb_views.py"),
                                     "compare", str(check), str(duckdb_out), str(views5)]).stdout)
        shutil.rmtree(check, ignore_errors=True)
    for name, mb, _ in measurements:
        result = summary(samples[name])
        record(name, result.pop("seconds"), result.pop("peak_rss_mb"), result.pop("cpu_seconds"), mb=mb, **result)
    encoding = {}
    for name, encoded in encoding_samples.items():
        encoding[name] = {**encoded[-1], "encode_seconds": median([e["encode_seconds"] for e in encoded]),
                          "encode_seconds_samples": [e["encode_seconds"] for e in encoded]}

    ratios, ratios_per_round = {}, {}

    def ratio(key, numerator, denominator, minus=0.0):
        """numerator's seconds / denominator's, from the medians, and round by round: two
        runs of one round ran minutes apart at most, so their ratio is the least touched by
        the host's drift."""
        if numerator not in runs or denominator not in runs:
            return
        a, b = runs[numerator], runs[denominator]
        ratios[key] = a["seconds"] / b["seconds"] - minus
        rounds = list(zip(a.get("seconds_samples", []), b.get("seconds_samples", [])))
        if len(rounds) > 1:
            ratios_per_round[key] = [x / y - minus for x, y in rounds]

    n = args.threads
    ratio("load_vs_ceiling", f"ceiling_{n}t", f"load_all_{n}t")
    ratio("scaling_load", "load_all_1t", f"load_all_{n}t")
    # The control: how much faster the host runs parse-only work on all threads than on one.
    # A load cannot scale better than this; on a shared host it can fall well below `n`.
    ratio("scaling_ceiling", "ceiling_1t", f"ceiling_{n}t")
    # What the crosswalks add to a load (issue 5's budget: at most 0.10).
    ratio("crosswalk_cost", f"load_all_{n}t", f"load_all_nocrosswalk_{n}t", minus=1.0)
    if "duckdb" in counts:
        ratio("duckdb_vs_fhirhouse_five", f"duckdb_five_{n}t", f"load_five_{n}t")
        ratios["row_counts_equal"] = counts["duckdb"] == {t: counts["fhirhouse"][t] for t in FIVE_VIEWS}
        ratios["values_equal"] = all(t["columns_equal"] and t["only_fhirhouse"] == t["only_duckdb"] == 0
                                     for t in value_check.values())
        # Like for like: DuckDB writes one file per table, unpartitioned.
        ratio("duckdb_vs_fhirhouse_five_unpartitioned", f"duckdb_five_{n}t", f"load_five_unpartitioned_{n}t")
        ratios["row_counts_equal_unpartitioned"] = counts["duckdb"] == {
            t: counts["fhirhouse_unpartitioned"][t] for t in FIVE_VIEWS}
    if f"sof_cli_five_{n}t" in runs:
        # The peer runs once: its ratio has no rounds.
        ratio("sof_cli_vs_fhirhouse_five", f"sof_cli_five_{n}t", f"load_five_{n}t")
        if "sof_cli" in counts:
            ratios["sof_cli_row_counts_equal"] = counts["sof_cli"] == {t: counts["fhirhouse"][t] for t in FIVE_VIEWS}
    # What the ratios could be if everything but the parse and the Parquet encoding cost
    # nothing, with both spread perfectly over the threads; against DuckDB also with the
    # load's fixed cost counted (`_with_fixed_cost`), which no load avoids.
    duckdb_seconds = runs.get(f"duckdb_five_{args.threads}t", {}).get("seconds")
    fixed_seconds = runs.get(f"load_fixed_{args.threads}t", {}).get("seconds")
    for load, ceiling, key, baseline in [
            (f"load_all_{args.threads}t", f"ceiling_{args.threads}t", "load_vs_ceiling_bound",
             runs[f"ceiling_{args.threads}t"]["seconds"]),
            (f"load_five_{args.threads}t", f"ceiling_five_{args.threads}t", "duckdb_vs_fhirhouse_five_bound",
             duckdb_seconds),
            (f"load_five_unpartitioned_{args.threads}t", f"ceiling_five_{args.threads}t",
             "duckdb_vs_fhirhouse_five_unpartitioned_bound", duckdb_seconds)]:
        if load not in encoding:
            continue
        floor_cpu = runs[ceiling]["cpu_seconds"] + encoding[load]["encode_seconds"]
        floor_seconds = max(runs[ceiling]["seconds"], floor_cpu / args.threads)
        encoding[load]["floor_seconds"] = floor_seconds
        # The load's CPU that is neither parse nor encoding: views, crosswalks, partitioning, I/O.
        encoding[load]["other_cpu_seconds"] = runs[load]["cpu_seconds"] - floor_cpu
        if baseline:
            ratios[key] = baseline / floor_seconds
            if fixed_seconds and key.startswith("duckdb_"):
                ratios[f"{key}_with_fixed_cost"] = baseline / (floor_seconds + fixed_seconds)
    if small:
        big, little = runs[f"load_all_{args.threads}t"], runs[f"load_all_small_{args.threads}t"]
        ratios["size_ratio"] = big["mb"] / little["mb"]
        ratios["rss_growth"] = big["peak_rss_mb"] / little["peak_rss_mb"]
    if large:
        big, larger = runs[f"load_all_{args.threads}t"], runs[f"load_all_large_{args.threads}t"]
        ratios["size_ratio_large"] = larger["mb"] / big["mb"]
        ratios["rss_growth_large"] = larger["peak_rss_mb"] / big["peak_rss_mb"]
    gens = [r for name, r in runs.items() if name.startswith("gen_")]
    if gens:
        ratios["gen_mb_per_s"] = max(gens, key=lambda r: r["mb"])["mb_per_s"]
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "code": code_version(fhirhouse),
        "export": {"path": str(export), "mb": size_mb, "lines": runs[f"ceiling_{args.threads}t"]["lines"]},
        "duckdb_version": None if args.skip_duckdb else DUCKDB_VERSION,
        "build": "debug" if args.debug else "release",
        "repeat": repeat, "runs": runs, "encoding_alone": encoding,
        "ratios_per_round": ratios_per_round, "row_counts": counts, "duckdb_value_check": value_check,
        "ratios": ratios,
    }
    results = ROOT / "benches" / "results"
    results.mkdir(exist_ok=True)
    size = args.patients if args.export is None else "custom"
    stem = f"{datetime.date.today().isoformat()}-{size}{'-debug' if args.debug else ''}"
    path = results / f"{stem}.json"
    if path.exists():
        # A second run on the same day keeps the first one's numbers: RESULTS.md links them.
        path = results / f"{stem}-{datetime.datetime.now().strftime('%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n| run | seconds (median) | range | CPU seconds | MB/s | resources/s | peak RSS MB | part files |\n"
          f"|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in runs.items():
        if "seconds" not in r:
            continue
        spread = r.get("seconds_samples", [r["seconds"]])
        # A scan counts lines, each one resource in a valid export.
        per_s = r.get("resources_per_s", r.get("lines_per_s"))
        print(f"| {name} | {r['seconds']:.2f} | {min(spread):.2f}–{max(spread):.2f} | {r['cpu_seconds']:.2f} | "
              f"{r['mb_per_s']:.1f} | {'' if per_s is None else f'{per_s:,.0f}'} | {r['peak_rss_mb']:.0f} | "
              f"{r.get('files', '')} |")
    for name, e in encoding.items():
        print(f"\n{name}: encoding alone {e['encode_seconds']:.2f} s on one thread ({e['files']} files, "
              f"{e['parquet_bytes'] / 1e6:.1f} MB); parse + encoding on {args.threads} threads at best "
              f"{e['floor_seconds']:.2f} s; the load's other CPU {e['other_cpu_seconds']:.2f} s")

    def line(key, value):
        if not isinstance(value, float):
            return f"- {key}: {value}"
        rounds = ratios_per_round.get(key)
        return f"- {key}: {value:.2f}" + (f" (round by round: {', '.join(f'{r:.2f}' for r in rounds)})"
                                          if rounds else "")
    print("\n" + "\n".join(line(k, v) for k, v in ratios.items()))
    print(f"\nraw numbers: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
