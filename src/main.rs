//! podrun's command-line entry: parses arguments and hands each subcommand to the library.
use clap::Parser;
use podrun::cli::{self, Cli};

fn main() {
    let cli = Cli::parse();
    let code = match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            cli::report_error(&err);
            1
        }
    };
    std::process::exit(code);
}
