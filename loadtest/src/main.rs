//! `trackgate-load`: runs the load, prints the report, writes it as JSON
//! when asked. Exit codes: 0 after a run, 1 when end-to-end verification
//! failed, 2 for invalid options or an unusable target.

use std::process::ExitCode;

use clap::Parser;
use trackgate_load::{run, samples, Args, LoadError};

fn main() -> ExitCode {
    let args = Args::parse();
    if args.sample {
        return match samples(&args) {
            Ok(bodies) => {
                for b in bodies {
                    println!("{b}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("trackgate-load: {e}");
                ExitCode::from(2)
            }
        };
    }
    let report = match run(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trackgate-load: {e}");
            return match e {
                LoadError::Target(_) | LoadError::Option(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            };
        }
    };
    print!("{}", report.human());
    if let Some(path) = &args.json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(anyhow::Error::from)
            .and_then(|j| std::fs::write(path, j).map_err(anyhow::Error::from));
        if let Err(e) = written {
            eprintln!("trackgate-load: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    match &report.verify {
        Some(v) if !v.passed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}
