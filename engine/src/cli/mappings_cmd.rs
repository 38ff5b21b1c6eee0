//! `fhirhouse mappings`: inspect and validate mapping folders.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::EXIT_SOME_FAILED;
use crate::counted;
use crate::load::Catalog;
use crate::terminology::check::check;
use crate::terminology::MappingSource;

pub(super) const LONG_ABOUT: &str = "\
Inspect and validate the mapping tables that crosswalk codes during a load: crosswalk CSVs \
and FHIR ConceptMaps, value sets, code lists, ICD-10-CM categories and the CMS-HCC reference \
tables, named by a folder's manifest.json.

Validate the shipped mappings (built into the binary), or a folder of your own:

    fhirhouse mappings check
    fhirhouse mappings check mappings/
    fhirhouse mappings check my-mappings/ --views my-views/

The check reads every table (header, fields, relationships), looks for duplicate keys, \
checks crosswalk codes against the code list of their system where the folder ships one \
(ICD-10-CM FY2026), and checks the bindings against the views' columns.

Exit status: 0 when the folder is valid, 1 when it has errors, 2 when it cannot be read at all.";

/// Arguments of `fhirhouse mappings`.
#[derive(Debug, Args)]
pub struct MappingsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: MappingsCommand,
}

/// The `mappings` subcommands.
#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Validate a mapping folder (default: the shipped mappings).
    Check {
        /// A folder with a manifest.json [default: the shipped mappings].
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        /// A folder of ViewDefinitions the bindings refer to [default: the shipped views].
        #[arg(long, value_name = "DIR")]
        views: Option<PathBuf>,
    },
}

/// Runs `fhirhouse mappings`.
pub(super) fn run(args: &MappingsArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let MappingsCommand::Check { dir, views } = &args.command;
    let source = dir.clone().map_or(MappingSource::Embedded, MappingSource::Dir);
    let catalog = match views {
        Some(dir) => Catalog::from_dir(dir)?,
        None => Catalog::shipped()?,
    };
    let views: Vec<_> = catalog.layouts.iter().zip(&catalog.views).map(|(l, v)| (l.name.clone(), v.schema())).collect();
    let report = check(&source, &views);
    // Exit status 2 only when the folder cannot be opened; broken tables (even all of them)
    // are errors of a readable folder, each reported, status 1.
    if report.unreadable {
        return Err(anyhow::anyhow!("{}: {}", source.describe(), report.errors[0]));
    }
    if !quiet {
        for (name, kind, rows) in &report.tables {
            sayln!("  {name:<24} {kind:<11} {rows:>8} rows");
        }
        for warning in &report.warnings {
            sayln!("warning: {warning}");
        }
    }
    for error in &report.errors {
        sayln!("error: {error}");
    }
    if report.ok() {
        if !quiet {
            sayln!("{}: {}, valid", source.describe(), counted(report.tables.len() as u64, "table", "tables"));
        }
        Ok(ExitCode::SUCCESS)
    } else {
        sayln!("{}: {}", source.describe(), counted(report.errors.len() as u64, "error", "errors"));
        Ok(ExitCode::from(EXIT_SOME_FAILED))
    }
}
