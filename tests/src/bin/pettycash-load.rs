//! `pettycash-load`: drives a running `pettycash serve` over HTTP with a mixed workload and
//! reports per-endpoint counts, latency percentiles and throughput. See `pettycash-load --help`
//! and `docs/performance.md` ("HTTP load").

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = pettycash_tests::load::Args::parse();
    match pettycash_tests::load::run(args).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pettycash-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
