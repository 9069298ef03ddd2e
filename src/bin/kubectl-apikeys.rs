//! `kubectl-apikeys`: the kubectl plugin (`kubectl apikeys …` once it is on PATH).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = apikey_operator::plugin::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(apikey_operator::plugin::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line, whatever the error: scripts and humans read the first line only.
            eprintln!("error: {}", error.to_string().replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}
