//! `shoestring diff RUN_A RUN_B`: exit 0 when the runs are identical, 1
//! when they differ, 2 on an error (a missing or unreadable run).

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// `shoestring diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The first run directory.
    pub a: PathBuf,
    /// The second run directory.
    pub b: PathBuf,
}

/// Runs `shoestring diff`.
pub fn run(a: DiffArgs) -> ExitCode {
    match shoestring::run::diff::diff(&a.a, &a.b) {
        Ok(report) => {
            println!("A: {}\nB: {}", a.a.display(), a.b.display());
            println!("{report}");
            if report.identical() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
